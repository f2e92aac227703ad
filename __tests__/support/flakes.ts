// Fixture flakes for end-to-end tests: flakes without nixpkgs whose `docker` output is an image in one of
// the formats dockerTools produces (archives made by support/archives.ts, copied into the store by a plain
// derivation), a streamLayeredImage-like script, a non-image, or a failing build.
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { nixTestEnv } from './nix.js';
import { makeImageArchive, type ArchiveLayout, type Compression, type LayerSpec } from './archives.js';

export type FixtureKind = 'gzip' | 'none' | 'zstd' | 'stream' | 'not-image' | 'failing';

export interface FixtureFlake {
  dir: string;
  /** `path:<dir>`: copied as a directory, no git needed. */
  flake: string;
  attr: string;
  /** What the image must come out as, for image fixtures. */
  expected?: { configDigest: string; diffIDs: string[] };
}

export interface FixtureOptions {
  kind: FixtureKind;
  layout?: ArchiveLayout;
  layers?: LayerSpec[];
  /** Makes the store paths of this fixture unique to one test. */
  salt?: string;
}

const run = promisify(execFile);

const defaultLayers: LayerSpec[] = [
  { size: 200_000, seed: 'app', compressible: true },
  { size: 300_000, seed: 'lib', compressible: false },
  { size: 50_000, seed: 'etc', compressible: true },
];

function derivation(name: string, script: string, salt: string): string {
  return `derivation {
      name = ${JSON.stringify(name)};
      system = "x86_64-linux";
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      salt = ${JSON.stringify(salt)};
      args = [ "-c" ${JSON.stringify(script)} ];
    }`;
}

export async function makeFixtureFlake(opts: FixtureOptions): Promise<FixtureFlake> {
  const dir = await mkdtemp(join(tmpdir(), `nia-flake-${opts.kind}-`));
  const salt = opts.salt ?? basename(dir);
  let drv: string;
  let expected: FixtureFlake['expected'];
  if (opts.kind === 'not-image') {
    drv = derivation('not-an-image', 'mkdir -p $out/bin $out/share && echo hi > $out/share/readme', salt);
  } else if (opts.kind === 'failing') {
    drv = derivation('broken-image', 'echo compiling...; echo "error: the build is broken on purpose" >&2; exit 3', salt);
  } else {
    const compression: Compression = opts.kind === 'stream' ? 'none' : opts.kind;
    const archive = await makeImageArchive({
      dir,
      name: 'image',
      compression,
      layout: opts.layout ?? 'layered',
      layers: opts.layers ?? defaultLayers,
    });
    const file = basename(archive.path);
    expected = { configDigest: archive.configDigest, diffIDs: archive.diffIDs };
    drv =
      opts.kind === 'stream'
        ? // Like streamLayeredImage: the output is an executable that writes the archive to stdout.
          derivation('stream-image', `printf '#!/bin/sh\\nexec cat %s\\n' \${./${file}} > $out && chmod +x $out`, salt)
        : derivation(file, `cp \${./${file}} $out`, salt);
  }
  await writeFile(join(dir, 'flake.nix'), `{\n  outputs = { self }: {\n    docker = ${drv};\n  };\n}\n`);
  return { dir, flake: `path:${dir}`, attr: 'docker', expected };
}

export interface ClosureFlake extends FixtureFlake {
  /** Where each build of `base` and `app` appends a line (base, app): what was built, job by job. */
  records: string;
  /** Rewrites the flake with another app version (base unchanged); `failApp`: app's builder fails. */
  setVersion(version: string, opts?: { failApp?: boolean }): Promise<void>;
}

/**
 * A flake shaped like a real one for the store cache: `base` (slow, rarely changes) ← `app` (slow, has a
 * version) ← `docker`, a .tar.gz docker-archive whose layers are those two store paths, assembled in the
 * builder with tar and sha256sum like buildLayeredImage does. `base` and `app` are outputs too.
 */
export async function makeClosureFlake(version = '1', buildSeconds = 1): Promise<ClosureFlake> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-flake-closure-'));
  const records = await mkdtemp(join(tmpdir(), 'nia-records-'));
  await chmod(records, 0o777); // builders run as the nixbld users
  // ...and not always as the same one (concurrent builds take other users), so the record file exists,
  // writable by all, before any builder appends to it.
  await writeFile(join(records, 'builds'), '');
  await chmod(join(records, 'builds'), 0o666);
  const salt = basename(dir);
  const image = [
    'set -e',
    'w=$(mktemp -d)',
    'cd $w',
    'for p in $base $app; do',
    '  tar --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -cf l.tar $p 2>/dev/null',
    '  h=$(sha256sum l.tar | cut -c1-64)',
    '  mkdir $h && mv l.tar $h/layer.tar && echo $h >> order',
    'done',
    'diffs=$(sed \'s/.*/"sha256:&"/\' order | paste -sd, -)',
    'layers=$(sed \'s|.*|"&/layer.tar"|\' order | paste -sd, -)',
    'printf \'{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/app"]},"rootfs":{"type":"layers","diff_ids":[%s]}}\' "$diffs" > config.json',
    'c=$(sha256sum config.json | cut -c1-64)',
    'mv config.json $c.json',
    'printf \'[{"Config":"%s.json","RepoTags":["cache:latest"],"Layers":[%s]}]\' $c "$layers" > manifest.json',
    'tar --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -cf - $(cat order) $c.json manifest.json | gzip -n > $out',
  ].join('\n');
  const write = async (v: string, opts: { failApp?: boolean } = {}) => {
    const drv = (name: string, deps: string, script: string) =>
      `derivation { name = ${JSON.stringify(name)}; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; salt = ${JSON.stringify(salt)}; ${deps} args = [ "-c" ${JSON.stringify(script)} ]; }`;
    await writeFile(
      join(dir, 'flake.nix'),
      `{
  outputs = { self }: rec {
    base = ${drv('cache-base', '', `echo base >> ${records}/builds; sleep ${buildSeconds}; mkdir -p $out/lib; head -c 2000000 /dev/urandom > $out/lib/libbase.so; yes base-library | head -c 2000000 >> $out/lib/libbase.so`)};
    app = ${drv('cache-app', 'inherit base;', `echo app >> ${records}/builds; ${opts.failApp ? 'echo the app does not compile; exit 3; ' : ''}sleep ${buildSeconds}; mkdir -p $out/bin; printf '#!/bin/sh\\necho version ${v}\\n# uses %s\\n' $base > $out/bin/app; chmod +x $out/bin/app`)};
    docker = ${drv('cache-image.tar.gz', 'inherit base app;', image)};
  };
}
`,
    );
  };
  await write(version);
  return { dir, flake: `path:${dir}`, attr: 'docker', records, setVersion: write };
}

/** Deletes a flake's outputs from the store, as a fresh runner would not have them; returns their paths. */
export async function forgetOutputs(flake: FixtureFlake, attrs: string[]): Promise<string[]> {
  const env = { ...process.env, ...nixTestEnv() };
  const paths: string[] = [];
  for (const attr of attrs) {
    const { stdout } = await run('nix', ['path-info', `${flake.flake}#${attr}`], { env }).catch(() => ({ stdout: '' }));
    if (stdout.trim()) paths.push(stdout.trim());
  }
  if (paths.length) await run('nix', ['store', 'delete', ...paths], { env });
  return paths;
}
