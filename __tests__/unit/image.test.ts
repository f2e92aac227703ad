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
