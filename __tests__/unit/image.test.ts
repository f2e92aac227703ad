// Archive reading and layer compression on archives in every layout and compression dockerTools writes.
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { makeImageArchive, type Compression } from '../support/archives.js';
import { detectSource } from '../../src/image/format.js';
import { readLayers } from '../../src/image/archive.js';
import { compressLayer } from '../../src/image/compress.js';
import { historyStorePaths } from '../../src/image/input.js';
import { scanLayerTar } from '../../src/image/store-paths.js';

const layers = [
  { size: 70_000, seed: 'a', compressible: true },
  { size: 90_000, seed: 'b', compressible: false },
];

async function hashBodies(path: string) {
  const source = await detectSource(path);
  const seen: { name: string; hint?: string; sha: string; size: number }[] = [];
  const meta = await readLayers(source, async (entry, open) => {
    const body = open();
    const h = createHash('sha256');
    let size = 0;
    for await (const c of body) {
      h.update(c as Buffer);
      size += (c as Buffer).length;
    }
    seen.push({ name: entry.name, hint: entry.diffIDHint, sha: `sha256:${h.digest('hex')}`, size });
  });
  return { source, meta, seen };
}

describe('reading docker-archives', () => {
  const cases: { compression: Compression; layout: 'layered' | 'buildImage'; format: string }[] = [
    { compression: 'gzip', layout: 'layered', format: 'docker-archive+gzip' },
    { compression: 'gzip', layout: 'buildImage', format: 'docker-archive+gzip' },
    { compression: 'none', layout: 'layered', format: 'docker-archive' },
    { compression: 'zstd', layout: 'layered', format: 'docker-archive+zstd' },
  ];
  it.each(cases)('$compression / $layout', async ({ compression, layout, format }) => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-img-'));
    const made = await makeImageArchive({ dir, name: 'img', compression, layout, layers });
    const { source, meta, seen } = await hashBodies(made.path);
    expect(source.format).toBe(format);
    expect(meta.config.digest).toBe(made.configDigest);
    expect(meta.config.diffIDs).toEqual(made.diffIDs);
    // Layers come in archive order (sorted by name for buildImage); the manifest gives the image order.
    const byName = new Map(seen.map((s) => [s.name, s.sha]));
    expect(meta.manifest.layers.map((n) => byName.get(n))).toEqual(made.diffIDs);
    // Layered archives name each layer by its diff id; buildImage does not.
    for (const s of seen) expect(s.hint === s.sha).toBe(layout === 'layered');
  });

  it('reads a streamLayeredImage script from its stdout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-img-'));
    await chmod(dir, 0o755); // the script runs as nobody, as it would from the store
    const made = await makeImageArchive({ dir, name: 'img', compression: 'none', layers });
    const script = join(dir, 'stream');
    await writeFile(script, `#!/bin/sh\nexec cat ${made.path}\n`);
    await chmod(script, 0o755);
    const { source, meta, seen } = await hashBodies(script);
    expect(source.format).toBe('stream');
    expect(meta.config.digest).toBe(made.configDigest);
    expect(seen.map((s) => s.sha)).toEqual(made.diffIDs);
  });

  it('reports a failing stream script with its exit code and stderr', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-img-'));
    await chmod(dir, 0o755); // the script runs as nobody, as it would from the store
    const script = join(dir, 'stream');
    await writeFile(script, '#!/bin/sh\necho "no space left" >&2\nexit 4\n');
    await chmod(script, 0o755);
    await expect(hashBodies(script)).rejects.toThrow(/exited with code 4: no space left/);
  });

  it('names the path and what it found for anything else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-img-'));
    await writeFile(join(dir, 'readme'), 'hello');
    await expect(detectSource(join(dir, 'readme'))).rejects.toThrow(`${join(dir, 'readme')} is not a container image: expected a docker-archive`);
    await expect(detectSource(dir)).rejects.toThrow(/found a directory with readme/);
    const gz = await makeImageArchive({ dir, name: 'x', compression: 'gzip', layers: [] });
    expect((await detectSource(gz.path)).format).toBe('docker-archive+gzip');
  });

  it('rejects a tarball without manifest.json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-img-'));
    const p = pack();
    p.entry({ name: 'hello.txt' }, 'hello');
    p.finalize();
    await pipeline(p, createWriteStream(join(dir, 'plain.tar')));
    await expect(hashBodies(join(dir, 'plain.tar'))).rejects.toThrow(`${join(dir, 'plain.tar')} is not a docker-archive: it has no manifest.json`);
  });
});

describe('compressLayer', () => {
  it('gives the diff id of the raw bytes, a reproducible gzip digest, and a file that unzips to the input', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-cmp-'));
    const input = join(dir, 'raw');
    const raw = Buffer.from('x'.repeat(100_000) + 'y'.repeat(1000));
    await writeFile(input, raw);
    const a = await compressLayer(createReadStream(input), { dir });
    const b = await compressLayer(createReadStream(input), { dir });
    expect(a.diffID).toBe(`sha256:${createHash('sha256').update(raw).digest('hex')}`);
    expect(a.digest).toBe(b.digest);
    const gz = await readFile(a.file);
    expect(a.size).toBe(gz.length);
    expect(a.digest).toBe(`sha256:${createHash('sha256').update(gz).digest('hex')}`);
    expect(gunzipSync(gz).equals(raw)).toBe(true);
    expect(a.uncompressedSize).toBe(raw.length);
  });
});

describe("the store paths dockerTools' history comments list", () => {
  const config = (...comments: string[]) => Buffer.from(JSON.stringify({ history: comments.map((comment) => ({ created: '1970-01-01T00:00:01+00:00', comment })) }));
  const a = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12';
  const b = '/nix/store/zyxwvsrqpnmlkjihgfdcba9876543210-glibc-2.40';

  it('are taken as listed when every entry is a store path', () => {
    expect(historyStorePaths(config(`store paths: ['${a}', '${b}']`, `store paths: ['${b}']`))).toEqual([[a, b], [b]]);
  });

  it('are not taken from a comment naming anything else: that layer is read for its paths instead', () => {
    // Relative names would reach nix-store resolved against the working directory; an option-like one as a flag.
    const listed = historyStorePaths(
      config(`store paths: ['app']`, `store paths: ['${a}', '--delete']`, `store paths: ['/nix/store/../etc/x']`, `store paths: ['/nix/store/eeee${'0'.repeat(28)}-bad-hash']`, `store paths: ['${a}']`),
    );
    expect(listed).toEqual([undefined, undefined, undefined, undefined, [a]]);
  });
});

describe('the store paths a layer tar holds', () => {
  it('are the top directories under the store with store names; other directories there are not store paths', async () => {
    const good = '0123456789abcdfghijklmnpqrsvwxyz-hello-2.12';
    const tar = pack();
    tar.entry({ name: `nix/store/${good}/bin/hello` }, 'x');
    tar.entry({ name: 'nix/store/76b5a357391276b282a516f54f48ef3c-lib/libx.so' }, 'y'); // hex, not Nix's base-32
    tar.entry({ name: 'nix/store/.links/abc' }, 'z');
    tar.entry({ name: 'etc/link', type: 'symlink', linkname: `/nix/store/${good}/etc/hello.conf` });
    tar.finalize();
    expect(await scanLayerTar(tar as unknown as AsyncIterable<Buffer>)).toEqual([`/nix/store/${good}`]);
  });
});
