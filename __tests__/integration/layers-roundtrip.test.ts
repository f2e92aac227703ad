// Layers of several MiB through the whole push and back: pushed with pushImage to the real Distribution
// registry, pulled back by skopeo (an independent client) into an OCI layout, and every layer blob
// gunzipped three ways (Node's zlib, gzip -dc, pigz -dc), each result hashed against the config's
// rootfs.diff_ids. The layers cover compress.ts's paths: many 1 MiB blocks of text (deflated, each primed
// with the previous block's tail, joined by sync flushes), random bytes (stored blocks), machine code, a
// layer of exactly one block, one just over a block, and one of a few KiB. The blobs are deterministic:
// the same layer gives the same digest from a .tar read in parallel, a .tar.gz read as a stream, and
// compressLayer called again with other parallelism.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type LayerSpec, type MadeArchive } from '../support/archives.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';
import { compressLayer } from '../../src/image/compress.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const MiB = 2 ** 20;
/** A layer.tar of makeImageArchive: three directory headers and the file's header (2048 bytes), the file
 *  padded to 512, and tar's 1024-byte end. */
const TAR_OVERHEAD = 3072;
const tarSize = (fileSize: number) => 2048 + Math.ceil(fileSize / 512) * 512 + 1024;

const LAYERS: { what: string; spec: LayerSpec }[] = [
  { what: 'text, six blocks', spec: { size: 5 * MiB, seed: 'text', compressible: true } },
  { what: 'random bytes: stored blocks', spec: { size: 3 * MiB, seed: 'random', compressible: false } },
  { what: 'machine code', spec: { size: 3 * MiB + 12_345, seed: 'code', compressible: true, corpus: process.execPath } },
  { what: 'exactly one block', spec: { size: MiB - TAR_OVERHEAD, seed: 'one-block', compressible: true } },
  { what: 'one block and 512 bytes, random: a stored block, then a deflated one', spec: { size: MiB - TAR_OVERHEAD + 1, seed: 'over', compressible: false } },
  { what: 'an empty file: one short block', spec: { size: 0, seed: 'empty', compressible: true } },
];

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Runs `cmd args file`, returns its stdout; rejects on a non-zero exit (a bad CRC or length fails gzip). */
function decompressWith(cmd: string, file: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, ['-dc', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} -dc ${file} exited ${code}: ${err}`))));
  });
}

let work: string;
let registry: TestRegistry;
let tar: MadeArchive;
let tgz: MadeArchive;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-roundtrip-'));
  const layers = LAYERS.map((l) => l.spec);
  [registry, tar, tgz] = await Promise.all([
    startRegistry({}),
    makeImageArchive({ dir: work, name: 'rt', compression: 'none', layers }),
    makeImageArchive({ dir: work, name: 'rt', compression: 'gzip', layers }),
  ]);
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function client(repository: string): RegistryClient {
  return new RegistryClient({ registry: registry.host, repository, insecure: true, logger: quiet, retry: { attempts: 3, baseMs: 20, maxMs: 200 } });
}

describe('multi-block layers, pushed and pulled back', () => {
  let pushed: PushResult;
  /** The OCI layout skopeo pulled into, and what it holds. */
  let pulled: { dir: string; manifest: { config: { digest: string }; layers: { digest: string; size: number; mediaType: string }[] }; config: { rootfs: { diff_ids: string[] } } };
  const blob = (digest: string) => readFile(join(pulled.dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));

  beforeAll(async () => {
    pushed = await pushImage({ source: await detectSource(tar.path), client: client('rt/tar'), tags: ['latest'], logger: quiet, tmpDir: work });
    const dir = await mkdtemp(join(work, 'oci-'));
    await skopeo(['copy', `docker://${registry.host}/rt/tar:latest`, `oci:${dir}:x`]);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests).toHaveLength(1);
    const read = (d: string) => readFile(join(dir, 'blobs', 'sha256', d.slice('sha256:'.length)));
    const manifestBytes = await read(index.manifests[0]!.digest);
    // skopeo copied our manifest as is (same digest), and the config it names is the archive's own.
    expect(index.manifests[0]!.digest).toBe(pushed.digest);
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as (typeof pulled)['manifest'];
    expect(manifest.config.digest).toBe(tar.configDigest);
    const config = JSON.parse((await read(manifest.config.digest)).toString('utf8')) as (typeof pulled)['config'];
    pulled = { dir, manifest, config };
  });

  it('pulls back every blob it pushed, byte for byte what the manifest names', async () => {
    expect(pushed.layers.map((l) => l.action)).toEqual(LAYERS.map(() => 'uploaded'));
    expect(pulled.config.rootfs.diff_ids).toEqual(tar.diffIDs);
    expect(pulled.manifest.layers.map((l) => l.digest)).toEqual(pushed.layers.map((l) => l.digest));
    for (const desc of pulled.manifest.layers) {
      const bytes = await blob(desc.digest);
      expect(sha256(bytes)).toBe(desc.digest);
      expect(bytes.length).toBe(desc.size);
      expect(desc.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    }
  });

  it("gunzips every layer with Node's zlib, gzip and pigz to the config's diff ids", async () => {
    for (const [i, desc] of pulled.manifest.layers.entries()) {
      const file = join(pulled.dir, 'blobs', 'sha256', desc.digest.slice('sha256:'.length));
      const what = LAYERS[i]!.what;
      const node = gunzipSync(await readFile(file));
      expect(node.length, what).toBe(tarSize(LAYERS[i]!.spec.size));
      expect(sha256(node), what).toBe(pulled.config.rootfs.diff_ids[i]);
      // gzip and pigz check the trailer's CRC-32 and length, and exit non-zero on a mismatch.
      for (const cmd of ['gzip', 'pigz']) {
        const out = await decompressWith(cmd, file);
        expect(sha256(out), `${cmd}: ${what}`).toBe(pulled.config.rootfs.diff_ids[i]);
      }
    }
  });

  it('covers the block sizes it means to: six blocks, exactly one, one and a bit', () => {
    expect(tarSize(LAYERS[0]!.spec.size)).toBe(5 * MiB + TAR_OVERHEAD);
    expect(tarSize(LAYERS[3]!.spec.size)).toBe(MiB);
    expect(tarSize(LAYERS[4]!.spec.size)).toBe(MiB + 512);
    expect(tarSize(LAYERS[5]!.spec.size)).toBe(TAR_OVERHEAD);
  });

  it('writes a gzip header with no name and no mtime: 1f 8b, deflate, no flags, mtime 0, OS unix', async () => {
    for (const desc of pulled.manifest.layers) {
      expect([...(await blob(desc.digest)).subarray(0, 10)]).toEqual([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);
    }
  });

  it('stores random blocks (pieces of 65535 bytes, the layer as is) and deflates text, joined by sync flushes', async () => {
    const raw = gunzipSync(await blob(pushed.layers[1]!.digest));
    const random = await blob(pushed.layers[1]!.digest);
    // Each of the three full 1 MiB blocks: 16 stored pieces of 65535 bytes (BFINAL 0, BTYPE 00, LEN, NLEN),
    // then one of 16 bytes, holding the layer as is; the last 3072 bytes (tar headers and zeros) deflated.
    const storedBlock = MiB + 17 * 5;
    for (let b = 0; b < 3; b++) {
      for (let k = 0; k < 17; k++) {
        const at = 10 + b * storedBlock + k * (65535 + 5);
        const len = k < 16 ? 65535 : 16;
        const header = [0x00, len & 0xff, len >> 8, ~len & 0xff, (~len >> 8) & 0xff];
        expect([...random.subarray(at, at + 5)], `block ${b}, piece ${k}`).toEqual(header);
        const from = b * MiB + k * 65535;
        expect(random.subarray(at + 5, at + 5 + len).equals(raw.subarray(from, from + len)), `block ${b}, piece ${k}`).toBe(true);
      }
    }
    const tail = random.subarray(10 + 3 * storedBlock);
    expect((tail[0]! >> 1) & 3, 'the short last block is deflated').not.toBe(0);
    expect(gunzipSync(random).subarray(3 * MiB).length).toBe(TAR_OVERHEAD);

    const text = await blob(pushed.layers[0]!.digest);
    expect((text[10]! >> 1) & 3, 'the first block of text is deflated, not stored').not.toBe(0);
    expect(text.length).toBeLessThan(tarSize(LAYERS[0]!.spec.size) / 50);
    // Every block ends with a sync flush (an empty stored block: 00 00 ff ff); six blocks, six flushes.
    let flushes = 0;
    for (let at = text.indexOf(Buffer.from([0, 0, 0xff, 0xff])); at >= 0; at = text.indexOf(Buffer.from([0, 0, 0xff, 0xff]), at + 1)) flushes++;
    expect(flushes).toBeGreaterThanOrEqual(6);
  });

  it('compresses machine code as well as one long gzip stream at the same level (each block primed with the last 32 KiB)', async () => {
    const code = await blob(pushed.layers[2]!.digest);
    const raw = gunzipSync(code);
    const oneStream = gzipSync(raw, { level: 4 }).length;
    expect(code.length).toBeLessThan(oneStream * 1.01);
  });

  it('gives the same blob digests from a .tar read in parallel, a .tar.gz read as a stream, and compressLayer again', async () => {
    const fromStream = await pushImage({ source: await detectSource(tgz.path), client: client('rt/tgz'), tags: ['latest'], logger: quiet, tmpDir: work });
    expect(fromStream.layers.map((l) => l.action)).toEqual(LAYERS.map(() => 'uploaded'));
    expect(fromStream.layers.map((l) => l.digest)).toEqual(pushed.layers.map((l) => l.digest));
    expect(fromStream.digest).toBe(pushed.digest);

    // And once more, one block at a time and with every block at once: the same bytes.
    const dir = await mkdtemp(join(work, 'again-'));
    for (const [i, desc] of pulled.manifest.layers.entries()) {
      const raw = gunzipSync(await blob(desc.digest));
      for (const parallel of [1, 64]) {
        const again = await compressLayer(Readable.from([raw.subarray(0, 1000), raw.subarray(1000)]), { dir, parallel });
        expect(again.digest, `${LAYERS[i]!.what}, ${parallel} at once`).toBe(desc.digest);
        expect(again.diffID).toBe(pulled.config.rootfs.diff_ids[i]);
        expect(again.size).toBe(desc.size);
      }
    }
    expect((await readdir(dir)).length).toBe(LAYERS.length * 2);
  });
});
