// Compresses one layer for upload, the way pigz does: the input is cut into fixed 1 MiB blocks, each
// deflated on libuv's thread pool (several blocks, and several layers, on several cores at once) with
// the previous block's last 32 KiB as its dictionary, so the ratio matches one long stream. Blocks end
// with a sync flush (byte-aligned, not final), so their outputs concatenate into one deflate stream,
// wrapped in a gzip header and trailer written here.
//
// A block whose sampled byte entropy says it will not compress (already-compressed files, random data)
// is written as stored deflate blocks instead: zlib's matcher is at its slowest on such data and gains
// nothing there.
//
// Deterministic: blocks, decisions, dictionaries and the level depend only on the layer's bytes, and the
// header carries no name and no mtime, so the same layer always gives the same blob digest.
//
// With `compression: zstd` the same loop cuts 4 MiB blocks and compresses each as a zstd frame of its
// own (image/zstd.ts): no dictionary, no stored blocks (zstd passes incompressible data through quickly),
// no header or trailer around the concatenated frames.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { constants, crc32, deflateRaw, type ZlibOptions } from 'node:zlib';
import type { CompressedLayer } from './types.js';
import { ZSTD_BLOCK, zstdCompressorID, zstdFrame } from './zstd.js';

/** The gzip level of pushed layers. Part of every blob digest: changing it changes every digest.
 *  Level 4 gives the ratio of skopeo's default (Go) compressor on machine code, at about 1.7 times the
 *  speed of level 6, which would save only 1% more bytes (see README, Benchmarks). */
export const DEFAULT_LEVEL = 4;

/** How layers are compressed: the `compression` input (`gzip`, `zstd`, `gzip:6`, `zstd:9`). */
export interface Compression {
  algorithm: 'gzip' | 'zstd';
  level: number;
}
/** Each algorithm's default level and the levels it takes. zstd's default, 3, is zstd's own; levels above
 *  19 ask decompressors for windows some refuse. */
export const COMPRESSION_LEVELS = {
  gzip: { default: DEFAULT_LEVEL, min: 1, max: 9 },
  zstd: { default: 3, min: 1, max: 19 },
} as const;
export const DEFAULT_COMPRESSION: Compression = { algorithm: 'gzip', level: DEFAULT_LEVEL };

/** Names a compressor's output: part of every layer key (image/plan.ts) and of the settings digest, so a
 *  change to the blocks, the level or the stored-block rule must change it. gzip's id is the one every
 *  earlier push used; zstd's names the implementation too (image/zstd.ts). */
export function compressorID(c: Compression = DEFAULT_COMPRESSION): string {
  return c.algorithm === 'zstd' ? zstdCompressorID(c.level) : `gzip/pigz-blocks-1MiB/level-${c.level}/v1`;
}
/** Layers compressing at once: two, so that one layer's last blocks overlap the next layer's first. */
export const LAYERS_AT_ONCE = 2;
/** Blocks of one layer on the thread pool at once: one per core, and two more so a core never waits for
 *  the main thread to hand it the next block. */
export function blocksInFlight(): number {
  return availableParallelism() + 2;
}
const BLOCK = 1024 * 1024;
const WINDOW = 32 * 1024;
const SAMPLE = 16 * 1024;
/** zlib's output buffer: deflate's worst case for one block, so a block costs one trip to the thread pool
 *  (the default 16 KiB would call back into the main thread for every 16 KiB of output). */
const OUT_CHUNK = BLOCK + BLOCK / 8;
/** Bits per byte above which a block is taken as incompressible. Text and code sit near 5, machine code near 6. */
const INCOMPRESSIBLE_BITS = 7.8;
/** gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unix. */
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);
/** A final, empty stored block: ends the deflate stream. */
const LAST = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]);


const deflate = promisify<Buffer, ZlibOptions, Buffer>(deflateRaw);

/** Shannon entropy, in bits per byte, of four samples spread over the block. */
export function sampledEntropy(block: Buffer): number {
  const counts = new Uint32Array(256);
  let n = 0;
  const step = Math.max(SAMPLE, Math.floor(block.length / 4));
  for (let start = 0; start < block.length; start += step) {
    const end = Math.min(block.length, start + SAMPLE);
    for (let i = start; i < end; i++) counts[block[i]!]!++;
    n += end - start;
  }
  let bits = 0;
  for (const c of counts) {
    if (c === 0) continue;
    const p = c / n;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** The block as non-final stored deflate blocks (at most 65535 bytes each). */
export function storedBlocks(block: Buffer): Buffer {
  const pieces = Math.ceil(block.length / 65535);
  const out = Buffer.allocUnsafe(block.length + pieces * 5);
  let o = 0;
  for (let i = 0; i < block.length; i += 65535) {
    const len = Math.min(65535, block.length - i);
    out[o] = 0x00; // BFINAL 0, BTYPE 00 (stored), padded to the byte
    out.writeUInt16LE(len, o + 1);
    out.writeUInt16LE(len ^ 0xffff, o + 3);
    block.copy(out, o + 5, i, i + len);
    o += 5 + len;
  }
  return out;
}

/**
 * The input re-cut into fixed blocks (the last one shorter), whatever the sizes of the chunks read. Chunks
 * that do not fall on block boundaries (a layer inside a .tar.gz or a stream, or 1 MiB reads for 4 MiB
 * zstd blocks) are copied into `ring` buffers used in turn, not into a new buffer per block: a block is
 * handed out again only `ring` blocks later, so the caller must be done with a block (its compression
 * settled) by then.
 */
export async function* fixedBlocks(input: AsyncIterable<Buffer>, size: number, ring: number): AsyncGenerator<Buffer> {
  const buffers: Buffer[] = [];
  let slot = 0;
  let block: Buffer | undefined;
  let fill = 0;
  for await (const chunk of input) {
    // A plain .tar is read in chunks of exactly one block: pass them on without a copy.
    if (fill === 0 && chunk.length === size) {
      yield chunk;
      continue;
    }
    for (let at = 0; at < chunk.length; ) {
      block ??= buffers[slot] ??= Buffer.allocUnsafeSlow(size);
      const n = chunk.copy(block, fill, at, Math.min(chunk.length, at + size - fill));
      fill += n;
      at += n;
      if (fill === size) {
        yield block;
        slot = (slot + 1) % ring;
        block = undefined;
        fill = 0;
      }
    }
  }
  if (fill > 0) yield block!.subarray(0, fill);
}


export interface CompressOptions {
  /** Directory for the temporary file. */
  dir: string;
  /** Default: gzip at DEFAULT_LEVEL. */
  compression?: Compression;
  /** Blocks of this layer compressing at once (default: blocksInFlight()). */
  parallel?: number;
}

export async function compressLayer(raw: Readable, opts: CompressOptions): Promise<CompressedLayer> {
  if (opts.compression?.algorithm === 'zstd') return compressZstd(raw, opts, opts.compression.level);
  const file = join(opts.dir, `layer-${randomBytes(8).toString('hex')}.tar.gz`);
  const level = opts.compression?.level ?? DEFAULT_LEVEL;
  const parallel = opts.parallel ?? blocksInFlight();
  const diffID = createHash('sha256');
  const digest = createHash('sha256');
  let crc = 0;
  let uncompressedSize = 0;
  let size = 0;
  const out = createWriteStream(file);
  const failed = once(out, 'error').then(([e]) => Promise.reject(e as Error));
  failed.catch(() => undefined);
  const write = async (bytes: Buffer): Promise<void> => {
    digest.update(bytes);
    size += bytes.length;
    if (!out.write(bytes)) await Promise.race([once(out, 'drain'), failed]);
  };


  try {
    await write(HEADER);
    // Compressed blocks in flight, written strictly in order as they complete.
    const inFlight: Promise<Buffer>[] = [];
    let previousTail: Buffer | undefined;
    for await (const block of fixedBlocks(raw, BLOCK, parallel + 1)) {
      diffID.update(block);
      crc = crc32(block, crc);
      uncompressedSize += block.length;
      const stored = block.length >= SAMPLE && sampledEntropy(block) > INCOMPRESSIBLE_BITS;
      const task = stored
        ? Promise.resolve(storedBlocks(block))
        : deflate(block, { level, chunkSize: OUT_CHUNK, finishFlush: constants.Z_SYNC_FLUSH, ...(previousTail ? { dictionary: previousTail } : {}) });
      task.catch(() => undefined);
      inFlight.push(task);
      previousTail = Buffer.from(block.subarray(Math.max(0, block.length - WINDOW)));
      while (inFlight.length >= parallel) await write(await inFlight.shift()!);
    }
    for (const task of inFlight) await write(await task);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc >>> 0, 0);
    trailer.writeUInt32LE(uncompressedSize % 2 ** 32, 4);
    await write(Buffer.concat([LAST, trailer]));
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  } catch (error) {
    out.destroy();
    throw error;
  }
  return {
    diffID: `sha256:${diffID.digest('hex')}`,
    digest: `sha256:${digest.digest('hex')}`,
    size,
    uncompressedSize,
    file,
  };
}

/** A temporary file written in order, hashed and counted as it goes. */
function spoolFile(file: string) {
  const digest = createHash('sha256');
  let size = 0;
  const out = createWriteStream(file);
  const failed = once(out, 'error').then(([e]) => Promise.reject(e as Error));
  failed.catch(() => undefined);
  return {
    async write(bytes: Buffer): Promise<void> {
      digest.update(bytes);
      size += bytes.length;
      if (!out.write(bytes)) await Promise.race([once(out, 'drain'), failed]);
    },
    async close(): Promise<{ digest: string; size: number }> {
      out.end();
      await Promise.race([once(out, 'finish'), failed]);
      return { digest: `sha256:${digest.digest('hex')}`, size };
    },
    destroy: () => out.destroy(),
  };
}

/** The layer as concatenated zstd frames, one per 4 MiB block, `parallel` blocks on the thread pool at once. */
async function compressZstd(raw: Readable, opts: CompressOptions, level: number): Promise<CompressedLayer> {
  const file = join(opts.dir, `layer-${randomBytes(8).toString('hex')}.tar.zst`);
  const parallel = opts.parallel ?? blocksInFlight();
  const diffID = createHash('sha256');
  let uncompressedSize = 0;
  const out = spoolFile(file);
  let written: { digest: string; size: number };
  try {
    const inFlight: Promise<Buffer>[] = [];
    for await (const block of fixedBlocks(raw, ZSTD_BLOCK, parallel + 1)) {
      diffID.update(block);
      uncompressedSize += block.length;
      const task = zstdFrame(block, level);
      task.catch(() => undefined);
      inFlight.push(task);
      while (inFlight.length >= parallel) await out.write(await inFlight.shift()!);
    }
    for (const task of inFlight) await out.write(await task);
    // An empty layer is one empty frame, not an empty blob (which a decompressor may take for no zstd at all).
    if (uncompressedSize === 0) await out.write(await zstdFrame(Buffer.alloc(0), level));
    written = await out.close();
  } catch (error) {
    out.destroy();
    throw error;
  }
  return { diffID: `sha256:${diffID.digest('hex')}`, digest: written.digest, size: written.size, uncompressedSize, file };
}
