// zstd layers against the real Distribution registry, compressed by the Node vitest runs on (Node 24, whose
// node:zlib has zstd; e2e/zstd.test.ts runs the action on a Node without it, where the zstd command
// compresses): frames that
// inflate to the layer, the same bytes whatever the parallelism; a zstd push never reuses a gzip blob, from
// a tag or from the store cache's record, nor a gzip push a zstd one, and each gives the digest it gives
// alone; a zstd layer another tool pushed elsewhere is inflated and hashed before it is mounted; a push to
// two registries compresses each layer once.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { emptySkopeoBlobCache, podmanPull } from '../support/clients.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';
import { compressLayer, type Compression } from '../../src/image/compress.js';
import { archiveInput } from '../../src/image/input.js';
import { detectSource } from '../../src/image/format.js';
import { layerRecordFile, readLayerRecord } from '../../src/nix/layer-record.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';
import { parseImageName, parseReuseTags } from '../../src/registry/reference.js';
import { knownFromRecord, pushToAll, recordPushed } from '../../src/registry/targets.js';
import { blobDiffID, inflationLimit } from '../../src/registry/verify.js';
import { MediaTypes } from '../../src/registry/types.js';

const exec = promisify(execFile);
const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const fast = { attempts: 3, baseMs: 20, maxMs: 100, budgetMs: 5_000 };
const gzip: Compression = { algorithm: 'gzip', level: 4 };
const zstd: Compression = { algorithm: 'zstd', level: 3 };
const ZSTD_MAGIC = '28b52ffd';
const GZIP_MAGIC = '1f8b';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** zstd -d of a file or of bytes, by the zstd command (a decoder this action does not contain). */
async function unzstd(bytes: Buffer): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-unzstd-'));
  await writeFile(join(dir, 'blob.zst'), bytes);
  const { stdout } = await exec('zstd', ['-d', '-c', '-q', join(dir, 'blob.zst')], { encoding: 'buffer', maxBuffer: 256 << 20 });
  return stdout;
}

let work: string;
let image: MadeArchive;
let registry: TestRegistry;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-zstd-'));
  image = await makeImageArchive({
    dir: work,
    name: 'zstd',
    compression: 'none',
    layers: [
      { size: 9_500_000, seed: 'zstd-big', compressible: true }, // three 4 MiB blocks: three frames
      { size: 300_000, seed: 'zstd-random', compressible: false },
      { size: 5_000, seed: 'zstd-small', compressible: true },
    ],
  });
  registry = await startRegistry({});
});
afterAll(async () => registry?.stop());

const client = (host: string, repository: string) => new RegistryClient({ registry: host, repository, insecure: true, logger: quiet, retry: fast });

/** The image under `ref`, blob by blob: media types, first bytes, and each layer inflated and hashed. */
async function readBack(host: string, repository: string, ref: string) {
  const c = client(host, repository);
  try {
    const manifest = JSON.parse((await c.getManifest(ref))!.bytes.toString('utf8')) as { config: { digest: string }; layers: { mediaType: string; digest: string }[] };
    const config = JSON.parse((await c.getBlob(manifest.config.digest)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
    const layers = [];
    for (const l of manifest.layers) {
      const blob = await c.getBlob(l.digest);
      const zst = l.mediaType === MediaTypes.ociLayerZstd;
      layers.push({ mediaType: l.mediaType, digest: l.digest, magic: blob.subarray(0, zst ? 4 : 2).toString('hex'), diffID: sha(zst ? await unzstd(blob) : gunzipSync(blob)) });
    }
    return { manifest, diffIDs: config.rootfs.diff_ids, layers };
  } finally {
    c.close();
  }
}

async function push(repository: string, compression: Compression, opts: { tags?: string[]; reuse?: string[]; record?: string } = {}): Promise<PushResult> {
  const c = client(registry.host, repository);
  const target = { client: c };
  try {
    const result = await pushImage({
      source: await detectSource(image.path),
      client: c,
      tags: opts.tags ?? ['latest'],
      reuseTags: parseReuseTags(opts.reuse ?? [], parseImageName(registry.host, repository)),
      known: await knownFromRecord(opts.record, target),
      logger: quiet,
      tmpDir: work,
      compression,
    });
    if (opts.record) await recordPushed(opts.record, target, result);
    return result;
  } finally {
    c.close();
  }
}

describe('zstd layers', () => {
  it('are zstd frames that inflate to the layer, the same bytes whatever the parallelism or the reads', async () => {
    // 11 MB: three 4 MiB blocks, three frames.
    const raw = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i} of a layer of three frames ${(i * 7919) % 10007}\n`).join(''));
    const made = await compressLayer(Readable.from([raw]), { dir: work, compression: zstd });
    const blob = await readFile(made.file);
    expect(made.diffID).toBe(sha(raw));
    expect(made.digest).toBe(sha(blob));
    expect(made.uncompressedSize).toBe(raw.length);
    expect(blob.subarray(0, 4).toString('hex')).toBe(ZSTD_MAGIC);
    expect(sha(await unzstd(blob))).toBe(made.diffID);
    await exec('zstd', ['-t', '-q', made.file]); // every frame's checksum holds
    for (const parallel of [1, 3, 8]) {
      const again = await compressLayer(Readable.from([raw.subarray(0, 1000), raw.subarray(1000, 5_000_000), raw.subarray(5_000_000)]), { dir: work, compression: zstd, parallel });
      expect(again.digest).toBe(made.digest);
    }
    // Another level, other bytes; an empty layer is one empty frame.
    expect((await compressLayer(Readable.from([raw]), { dir: work, compression: { algorithm: 'zstd', level: 9 } })).digest).not.toBe(made.digest);
    const empty = await compressLayer(Readable.from([]), { dir: work, compression: zstd });
    expect((await unzstd(await readFile(empty.file))).length).toBe(0);
  });

  it('never mix with gzip layers in one repository, from its tags or from the record, and each image keeps its digest', async () => {
    const record = await mkdtemp(join(tmpdir(), 'nia-zstd-record-'));
    const gz = await push('mix/app', gzip, { tags: ['latest'], record });
    // The gzip image is under latest (a reuse tag) and in the record, trusted: none of its blobs is a zstd layer.
    const zs = await push('mix/app', zstd, { tags: ['zstd'], reuse: ['latest'], record });
    expect(zs.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(zs.layersMade).toBe(3);
    expect(zs.layers.map((l) => l.diffID)).toEqual(gz.layers.map((l) => l.diffID));
    expect(zs.config.digest).toBe(gz.config.digest); // one config: the diff ids are the same
    expect(zs.digest).not.toBe(gz.digest);
    // And back: gzip again, reusing from the zstd tag and the record (which holds both now) only gzip blobs.
    const gzAgain = await push('mix/app', gzip, { tags: ['gzip-again'], reuse: ['zstd'], record });
    const zsAgain = await push('mix/app', zstd, { tags: ['zstd-again'], reuse: ['latest'], record });
    expect(gzAgain.digest).toBe(gz.digest);
    expect(zsAgain.digest).toBe(zs.digest);
    expect(gzAgain.layers.map((l) => l.action)).toEqual(['reused', 'reused', 'reused']);
    expect(zsAgain.layers.map((l) => l.action)).toEqual(['reused', 'reused', 'reused']);

    const gzBlobs = new Set(gz.layers.map((l) => l.digest));
    for (const tag of ['latest', 'gzip-again']) {
      const back = await readBack(registry.host, 'mix/app', tag);
      expect(back.layers.map((l) => [l.mediaType, l.magic])).toEqual(Array(3).fill([MediaTypes.ociLayerGzip, GZIP_MAGIC]));
      expect(back.layers.map((l) => l.diffID)).toEqual(back.diffIDs);
    }
    for (const tag of ['zstd', 'zstd-again']) {
      const back = await readBack(registry.host, 'mix/app', tag);
      expect(back.layers.map((l) => [l.mediaType, l.magic])).toEqual(Array(3).fill([MediaTypes.ociLayerZstd, ZSTD_MAGIC]));
      expect(back.layers.map((l) => l.diffID)).toEqual(back.diffIDs);
      expect(back.layers.filter((l) => gzBlobs.has(l.digest))).toEqual([]);
    }
    // The record names each blob's type: zstd entries carry theirs, gzip ones none (as records always had).
    const recorded = await readLayerRecord(record, `${registry.host}/mix/app`);
    expect(recorded.filter((l) => l.mediaType === MediaTypes.ociLayerZstd).map((l) => l.digest).sort()).toEqual(zs.layers.map((l) => l.digest).sort());
    expect(recorded.filter((l) => l.mediaType === undefined).map((l) => l.digest).sort()).toEqual([...gzBlobs].sort());
    expect(JSON.parse(await readFile(layerRecordFile(record), 'utf8'))).toMatchObject({ version: 2 });
    await podmanPull(`${registry.host}/mix/app:zstd`);
  });

  it('takes a record written before zstd as gzip', async () => {
    const record = await mkdtemp(join(tmpdir(), 'nia-zstd-v1-'));
    const gz = await push('v1/app', gzip);
    const entries = gz.layers.map((l) => ({ diffID: l.diffID, digest: l.digest, size: l.size }));
    await writeFile(layerRecordFile(record), JSON.stringify({ version: 1, repositories: { [`${registry.host}/v1/app`]: entries } }));
    const known = await knownFromRecord(record, { client: client(registry.host, 'v1/app') });
    expect(known.map((k) => k.desc.mediaType)).toEqual(Array(3).fill(MediaTypes.ociLayerGzip));
    const zs = await push('v1/app', zstd, { tags: ['zstd'], record });
    expect(zs.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
  });

  it('another tool pushed in another repository are inflated and hashed, then mounted', async () => {
    // skopeo's own zstd (one frame, its own encoder): blobs this action did not make.
    await emptySkopeoBlobCache();
    await skopeo(['copy', '--dest-compress-format', 'zstd', `docker-archive:${image.path}`, `docker://${registry.host}/theirs/base:latest`]);
    const theirs = await readBack(registry.host, 'theirs/base', 'latest');
    expect(theirs.layers.every((l) => l.mediaType === MediaTypes.ociLayerZstd)).toBe(true);
    const mine = await push('mine/app', zstd, { reuse: ['theirs/base:latest'] });
    expect(mine.layers.map((l) => [l.action, l.verified])).toEqual(Array(3).fill(['mounted', true]));
    expect(mine.layers.map((l) => l.digest)).toEqual(theirs.layers.map((l) => l.digest));
    expect(mine.layersMade).toBe(0);
    // A gzip push finds nothing to take there.
    const gz = await push('mine/gzip', gzip, { reuse: ['theirs/base:latest'] });
    expect(gz.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
  });

  it('pushed to two registries are compressed once, and copied as they are', async () => {
    const second = await startRegistry({});
    try {
      const targets = [
        { client: client(registry.host, 'two/app'), tags: ['latest'], reuse: [], known: [] },
        { client: client(second.host, 'two/copy'), tags: ['v1'], reuse: [], known: [] },
      ];
      const results = await pushToAll(archiveInput(await detectSource(image.path)), targets, { logger: quiet, tmpDir: work, compression: zstd });
      expect(results.map((r) => r.layersMade)).toEqual([3, 0]);
      expect(results.map((r) => r.digest)).toEqual([results[0]!.digest, results[0]!.digest]);
      expect(results[1]!.layers.map((l) => [l.action, l.mediaType])).toEqual(Array(3).fill(['uploaded', MediaTypes.ociLayerZstd]));
      const copied = await readBack(second.host, 'two/copy', 'v1');
      expect(copied.layers.map((l) => l.diffID)).toEqual(copied.diffIDs);
      for (const t of targets) t.client.close();
    } finally {
      await second.stop();
    }
  });
});

describe('a borrowed zstd blob that inflates without end', () => {
  it('is given up on past its limit, not hashed for as long as it inflates', async () => {
    const zlibZstd = (await import('node:zlib')) as unknown as { zstdCompressSync?: (b: Buffer) => Buffer };
    if (!zlibZstd.zstdCompressSync) throw new Error('the test runs on Node with zstd in node:zlib (node_modules/.bin/node is Node 24)');
    // 256 MiB of zeros: a few KiB of zstd, far past the limit of 1024x plus 64 MiB.
    const bomb = zlibZstd.zstdCompressSync(Buffer.alloc(256 * 1024 * 1024));
    expect(inflationLimit(bomb.length)).toBeLessThan(256 * 1024 * 1024);
    const c = client(registry.host, 'zstd/bomb');
    const digest = await c.uploadBlobBytes(bomb);
    await expect(blobDiffID(c, { digest, size: bomb.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' })).rejects.toThrow(/inflates past \d+ bytes/);
    c.close();
  });
});
