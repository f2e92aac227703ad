// SHA-256 as the action uses it (digests of bytes, of files, and of what flows through a stream), and the
// size of the reads that feed it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';

/** The size of file reads and stream chunks: one trip to the thread pool, and one socket write, per MiB
 *  rather than per 64 KiB. */
export const READ_CHUNK = 1024 * 1024;

/** `sha256:<hex>` of the bytes: a blob digest, as OCI writes it. */
export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The hex SHA-256 of a file's bytes, read in READ_CHUNK pieces. */
export async function sha256FileHex(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A pass-through stream that hashes (SHA-256) and counts what flows through it. */
export class HashingStream extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}
