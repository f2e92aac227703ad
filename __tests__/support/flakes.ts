// Fixture flakes for end-to-end tests: flakes without nixpkgs whose `docker` output is an image in one of
// the formats dockerTools produces (archives made by support/archives.ts, copied into the store by a plain
// derivation), a streamLayeredImage-like script, a non-image, or a failing build.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
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
