// What a blob holds, as facts: a layer blob's digest fixes its bytes, and so the diff id it inflates to
// (gzip, or zstd by its media type: image/zstd.ts inflates it, by Node or by the zstd command). A diff id
// another repository's config, a manifest another tool pushed or a record from elsewhere claims for a
// blob is only a claim; the blob is downloaded, inflated and hashed before it goes into an
// image, and what it gave is kept for the rest of the process (it holds in every repository and registry).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { zstdInflate } from '../image/zstd.js';
import type { ReadOptions, RegistryClient } from './client.js';
import { MediaTypes } from './types.js';

/** Blob digest → the diff id its content inflates to, for blobs hashed (or made) in this process. */
const inflated = new Map<string, Promise<string>>();

/** The diff id of a layer blob, downloaded from the client's registry (opts.repository: another
 *  repository of it), inflated (zstd when its media type says so, else gzip) and hashed; once per blob
 *  per process. Rejects when the blob cannot be read or is not what its type says. */
export function blobDiffID(client: RegistryClient, blob: { digest: string; size: number; mediaType?: string }, opts: ReadOptions = {}): Promise<string> {
  let known = inflated.get(blob.digest);
  if (!known) {
    known = hashInflated(client, blob, opts);
    inflated.set(blob.digest, known);
    known.catch(() => {
      if (inflated.get(blob.digest) === known) inflated.delete(blob.digest);
    });
  }
  return known;
}

/** What a blob is known to inflate to in this process, without reading it. */
export function recalledDiffID(digest: string): Promise<string> | undefined {
  return inflated.get(digest);
}

/** A layer this process compressed: its blob's diff id is known. */
export function rememberDiffID(digest: string, diffID: string): void {
  inflated.set(digest, Promise.resolve(diffID));
}

/** The most a borrowed blob may inflate to before it is given up on (and the layer made instead): far
 *  beyond any real layer's ratio, so a small crafted blob cannot keep the job hashing for hours. */
export function inflationLimit(compressedSize: number): number {
  return compressedSize * 1024 + 64 * 1024 * 1024;
}

async function hashInflated(client: RegistryClient, blob: { digest: string; size: number; mediaType?: string }, opts: ReadOptions): Promise<string> {
  const hash = createHash('sha256');
  const limit = inflationLimit(blob.size);
  let total = 0;
  await pipeline(
    Readable.from(client.blobPieces(blob.digest, blob.size, opts)),
    blob.mediaType === MediaTypes.ociLayerZstd ? zstdInflate : createGunzip(),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        total += chunk.length;
        if (total > limit) throw new Error(`blob ${blob.digest} inflates past ${limit} bytes (${blob.size} compressed): not checked further`);
        hash.update(chunk);
      }
    },
    opts.signal ? { signal: opts.signal } : {},
  );
  return `sha256:${hash.digest('hex')}`;
}

/** The diff id of an uncompressed layer: the sha256 of its bytes. */
export async function layerDiffID(raw: Readable, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    raw,
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) hash.update(chunk);
    },
    signal ? { signal } : {},
  );
  return `sha256:${hash.digest('hex')}`;
}
