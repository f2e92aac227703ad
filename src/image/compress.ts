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
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { constants, crc32, deflateRaw, type ZlibOptions } from 'node:zlib';
import type { CompressedLayer } from './types.js';

/** The gzip level of pushed layers. Part of every blob digest: changing it changes every digest.
 *  Level 4 gives the ratio of skopeo's default (Go) compressor on machine code, at about 1.7 times the
 *  speed of level 6, which would save only 1% more bytes (see README, Benchmarks). */
export const DEFAULT_LEVEL = 4;
/** Names this compressor's output: part of every layer key (image/plan.ts), so a change to the blocks,
 *  the level or the stored-block rule must change it. */
export function compressorID(level = DEFAULT_LEVEL): string {
  return `gzip/pigz-blocks-1MiB/level-${level}/v1`;
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

/** The input re-cut into fixed blocks (the last one shorter), whatever the sizes of the chunks read. */
async function* fixedBlocks(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of input) {
    // A plain .tar is read in chunks of exactly one block: pass them on without a copy.
    if (bytes === 0 && chunk.length === BLOCK) {
      yield chunk;
      continue;
    }
    pending.push(chunk);
    bytes += chunk.length;
    if (bytes < BLOCK) continue;
    let all = Buffer.concat(pending);
    while (all.length >= BLOCK) {
      yield all.subarray(0, BLOCK);
      all = all.subarray(BLOCK);
    }
    pending = [all];
    bytes = all.length;
  }
  if (bytes > 0) yield Buffer.concat(pending);
}

export interface CompressOptions {
  /** Directory for the temporary file. */
  dir: string;
  level?: number;
  /** Blocks of this layer compressing at once (default: blocksInFlight()). */
  parallel?: number;
}

export async function compressLayer(raw: Readable, opts: CompressOptions): Promise<CompressedLayer> {
  const file = join(opts.dir, `layer-${randomBytes(8).toString('hex')}.tar.gz`);
  const level = opts.level ?? DEFAULT_LEVEL;
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
    for await (const block of fixedBlocks(raw)) {
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
