// Compresses one layer for upload: hashes the raw tar (its diff id) and the gzip stream (its blob digest)
// as the bytes go by, and writes the gzip stream to a temporary file. zlib runs on libuv's thread pool,
// so several layers compress on several cores at once. Output is deterministic: Node's gzip header
// carries no name and no mtime, and the level is fixed, so the same layer gives the same digest.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import type { CompressedLayer } from './types.js';

/** The gzip level of pushed layers. Part of every blob digest: changing it changes every digest. */
export const DEFAULT_LEVEL = 6;

class Measure extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

export interface CompressOptions {
  /** Directory for the temporary file. */
  dir: string;
  level?: number;
}

export async function compressLayer(raw: Readable, opts: CompressOptions): Promise<CompressedLayer> {
  const file = join(opts.dir, `layer-${randomBytes(8).toString('hex')}.tar.gz`);
  const before = new Measure();
  const after = new Measure();
  await pipeline(
    raw,
    before,
    createGzip({ level: opts.level ?? DEFAULT_LEVEL, chunkSize: 256 * 1024, strategy: constants.Z_DEFAULT_STRATEGY }),
    after,
    createWriteStream(file),
  );
  return {
    diffID: `sha256:${before.hash.digest('hex')}`,
    digest: `sha256:${after.hash.digest('hex')}`,
    size: after.bytes,
    uncompressedSize: before.bytes,
    file,
  };
}
