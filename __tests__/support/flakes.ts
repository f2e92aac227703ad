// Fixture flakes for end-to-end tests: flakes without nixpkgs whose `docker` output is an image in one of
// the formats dockerTools produces (archives made by support/archives.ts, copied into the store by a plain
// derivation), a streamLayeredImage-like script, a non-image, or a failing build.
import { chmod, copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { repoRoot } from './action.js';
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
/** baseBytes: the size of base's library (half random, half compressible; default 4 MB). */
export async function makeClosureFlake(version = '1', buildSeconds = 1, baseBytes = 4_000_000): Promise<ClosureFlake> {
  const half = Math.floor(baseBytes / 2);
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
    base = ${drv('cache-base', '', `echo base >> ${records}/builds; sleep ${buildSeconds}; mkdir -p $out/lib; head -c ${half} /dev/urandom > $out/lib/libbase.so; yes base-library | head -c ${baseBytes - half} >> $out/lib/libbase.so`)};
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

export interface DockerToolsFlake extends FixtureFlake {
  /** Attributes of the one image: the stream script (streamLayeredImage), .tar.gz (buildLayeredImage,
   *  pigz -nTR) and .tar (compressor = "none"). */
  attrs: { stream: string; tarGz: string; tar: string };
  /** Where each build of a package appends its name: what was built, job by job. */
  records: string;
  /** Rewrites the flake with another app version: only the app package (and the customisation layer,
   *  which links to it) changes. */
  setVersion(version: string): Promise<void>;
}

/**
 * A flake shaped exactly as nixpkgs dockerTools' derivations are, without nixpkgs: packages `base` (real
 * machine code: a copy of the host's ls, with a hardlink, a symlink, an empty directory, a name over 100
 * characters and non-ASCII names) and `app` (a source tree with a version); a customisation layer
 * (`layer.tar` and `checksum`, tarred as nixpkgs does); the `<name>-conf.json` conf; the stream script, a
 * `writePython3 "stream"`-like derivation from a `stream_layered_image.py` source (the test's own
 * reference, support/dockertools.py, which follows nixpkgs' rules); `stream-<name>`, a runCommand whose
 * buildCommand is `makeWrapper <script> $out --add-flags <conf>`; and the archives, runCommands piping
 * that stream into `pigz -nTR > $out` or `> $out`.
 */
export interface DockerToolsOptions {
  version?: string;
  /** The image's architecture in its conf (GOARCH names: amd64, arm64): the files are the same. */
  architecture?: string;
  salt?: string;
  /** More packages, each a store layer between base and app, holding copies of these host files or
   *  directories (real machine code and source trees, for benchmarks): `cp -a` into `$out/<basename>`. */
  packages?: { name: string; sources: string[] }[];
  /** A conf key this action does not know (as a newer nixpkgs might add): its plan is refused, and the
   *  image's archive is built and read. */
  unknownConfKey?: boolean;
}

export async function makeDockerToolsFlake(opts: DockerToolsOptions = {}): Promise<DockerToolsFlake> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-flake-dockertools-'));
  const records = await mkdtemp(join(tmpdir(), 'nia-records-'));
  await chmod(records, 0o777);
  await writeFile(join(records, 'builds'), '');
  await chmod(join(records, 'builds'), 0o666);
  await copyFile(join(repoRoot, '__tests__', 'support', 'dockertools.py'), join(dir, 'stream_layered_image.py'));
  const salt = opts.salt ?? basename(dir);
  const long = `${'deeply-nested-directory-name/'.repeat(4)}a-file-whose-name-makes-the-path-longer-than-one-hundred-characters.txt`;
  const packages = (opts.packages ?? []).map((p, i) => ({ ...p, attr: `pkg${i}` }));
  const write = async (version: string) => {
    const base = [
      `echo base >> ${records}/builds`,
      'mkdir -p $out/bin $out/lib $out/share/empty "$out/share/$(dirname ' + long + ')"',
      'cp /bin/ls $out/bin/ls && chmod 755 $out/bin/ls',
      'ln $out/bin/ls $out/bin/dir',
      'ln -s ls $out/bin/vdir',
      'head -c 300000 /bin/ls > $out/lib/libbase.so',
      `echo long > "$out/share/${long}"`,
      "printf 'caf\\303\\251\\n' > \"$out/share/caf\\303\\251.txt\"",
      "printf 'x\\n' > \"$out/share/\\346\\227\\245\\346\\234\\254-\\360\\237\\220\\263.txt\"",
      'echo a > $out/share/a-b; mkdir $out/share/a; echo b > $out/share/a/b; echo c > $out/share/a.txt',
    ].join('\n');
    const app = [
      `echo app >> ${records}/builds`,
      'mkdir -p $out/bin $out/src/lib',
      `printf '#!/bin/sh\\necho version ${version}\\n# uses %s\\n' $base > $out/bin/app`,
      'chmod +x $out/bin/app',
      `for i in 1 2 3 4 5; do printf 'module %s version ${version}\\n' $i > $out/src/lib/module$i.py; done`,
    ].join('\n');
    const customisation = [
      'mkdir -p root/bin root/etc',
      'ln -s $app/bin/app root/bin/app',
      'echo "ID=fixture" > root/etc/os-release',
      'mkdir $out',
      '(cd root && tar --sort=name --numeric-owner --mtime=@1 --hard-dereference -cf $out/layer.tar .)',
      'sha256sum $out/layer.tar | cut -c1-64 > $out/checksum',
    ].join('\n');
    // The conf as nixpkgs' jq writes it: baseJson's keys (sorted by builtins.toJSON), then the added ones.
    const conf = [
      'cat > $out <<JSON',
      '{',
      `  "architecture": "${opts.architecture ?? 'amd64'}",`,
      '  "config": { "Cmd": ["/bin/app"], "Env": ["PATH=/bin", "GREETING=h\u00e9llo \u65e5\u672c"], "ExposedPorts": { "8080/tcp": {} }, "Labels": { "zeta": "1", "alpha": "2" }, "WorkingDir": "/" },',
      '  "os": "linux",',
      '  "store_dir": "/nix/store",',
      '  "from_image": null,',
      `  "store_layers": [["$base"], ${packages.map((p) => `["$${p.attr}"], `).join('')}["$app"]],`,
      '  "customisation_layer": "$customisation",',
      '  "repo_tag": "fixture:latest",',
      '  "created": "1970-01-01T00:00:01+00:00",',
      '  "mtime": "1970-01-01T00:00:01+00:00",',
      '  "uid": "0",',
      '  "gid": 0,',
      '  "uname": "root",',
      `  "gname": "root"${opts.unknownConfKey ? ',' : ''}`,
      ...(opts.unknownConfKey ? ['  "a_future_key": 1'] : []),
      '}',
      'JSON',
    ].join('\n');
    const wrapper = `makeWrapper() { printf '#!/bin/sh\\nexec %s %s "$@"\\n' "$1" "$4" > "$2"; chmod +x "$2"; }; eval "$buildCommand"`;
    const drv = (name: string, attrs: string, script: string) =>
      `derivation { name = ${JSON.stringify(name)}; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; salt = ${JSON.stringify(salt)}; ${attrs} args = [ "-c" ${JSON.stringify(script)} ]; }`;
    const runCommand = (name: string, attrs: string, command: string) =>
      `derivation { name = ${JSON.stringify(name)}; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; salt = ${JSON.stringify(salt)}; ${attrs} buildCommand = ${command}; args = [ "-c" ${JSON.stringify(wrapper)} ]; }`;
    await writeFile(
      join(dir, 'flake.nix'),
      `{
  outputs = { self }: rec {
    base = ${drv('fixture-base', '', base)};
    app = ${drv(`fixture-app-${version}`, 'inherit base;', app)};
    customisation = ${drv('fixture-customisation-layer', 'inherit app;', customisation)};
${packages.map((p) => `    ${p.attr} = ${drv(`fixture-${p.name}`, '', [`echo ${p.name} >> ${records}/builds`, 'mkdir -p $out', ...p.sources.map((src) => `cp -a ${src} $out/`)].join('\n'))};\n`).join('')}    conf = ${drv('fixture-conf.json', `inherit base app customisation ${packages.map((p) => p.attr).join(' ')};`, conf)};
    script = ${drv('stream', 'src = ./stream_layered_image.py;', `printf '#!/bin/sh\\nexec /usr/bin/python3 %s stream "$@"\\n' $src > $out; chmod +x $out`)};
    docker-stream = ${runCommand('stream-fixture', '', '"makeWrapper ${script} $out --add-flags ${conf}"')};
    docker = ${runCommand('fixture.tar.gz', '', '"${docker-stream} | pigz -nTR > $out"')};
    docker-tar = ${runCommand('fixture.tar', '', '"${docker-stream} > $out"')};
  };
}
`,
    );
  };
  await write(opts.version ?? '1');
  return { dir, flake: `path:${dir}`, attr: 'docker', attrs: { stream: 'docker-stream', tarGz: 'docker', tar: 'docker-tar' }, records, setVersion: write };
}

/** What a fixture flake's builders recorded building, in order ("base", "app", …): what each job built. */
export async function builtSoFar(flake: { records: string }): Promise<string[]> {
  return (await readFile(join(flake.records, 'builds'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
}
