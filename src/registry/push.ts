// The push: decide what the registry already has, compress and upload only the rest, then tag.
//
// Shape (after go-containerregistry's remote/write.go and nix2container): the plan is made from
// diff ids before anything is compressed. A layer whose diff id the registry already holds under one of
// the target tags or the reuse tags is reused as is (its body is skipped in the archive, never
// compressed); every other layer is spooled, gzip-compressed on the thread pool, checked with HEAD and
// uploaded only if missing.
// The manifest is PUT under the tags only when every blob is in place, so nothing half-pushed is tagged.
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compressLayer, LAYERS_AT_ONCE } from '../image/compress.js';
import { readLayers } from '../image/archive.js';
import type { ImageSource, LayerEntry } from '../image/types.js';
import type { RegistryClient } from './client.js';
import { limiter } from './limit.js';
import { buildOciManifest, layersByDiffID, sha256Digest, type BuiltManifest } from './manifest.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';

/** Read size of a compressed layer going out: fewer, larger socket writes than the 64 KiB default. */
const UPLOAD_CHUNK = 1024 * 1024;

export type LayerAction = 'reused' | 'present' | 'uploaded' | 'computed';

export interface LayerReport extends Descriptor {
  diffID: string;
  action: LayerAction;
}

export interface PushOptions {
  source: ImageSource;
  /** Absent when push is false: the digest is computed, nothing is sent. */
  client?: RegistryClient;
  tags: string[];
  /** Further tags of the repository whose layers may be reused (an earlier build's, e.g. latest). */
  reuseTags?: string[];
  logger: Logger;
  /** Parent for temporary files (RUNNER_TEMP on a runner). */
  tmpDir?: string;
  /** gzip level for layers; part of the blob digest, so keep it fixed for reproducible digests. */
  compressionLevel?: number;
  /** Blob uploads in flight at once. */
  uploads?: number;
}

export interface PushResult {
  digest: string;
  manifest: BuiltManifest;
  config: Descriptor;
  layers: LayerReport[];
  pushed: boolean;
  bytesUploaded: number;
  bytesSkipped: number;
  seconds: number;
}

export class ImageMismatchError extends Error {
  override name = 'ImageMismatchError';
}

/** Layers the registry already holds under the given tags, by diff id, each confirmed with HEAD. */
async function planReuse(client: RegistryClient, tags: string[], logger: Logger): Promise<Map<string, Descriptor>> {
  const candidates = new Map<string, Descriptor>();
  const found: string[] = [];
  for (const tag of tags) {
    // The plan only saves work: a tag that cannot be read (a config the registry lost, a document we do
    // not parse) leaves its layers to be compressed and checked one by one, as if it were absent.
    try {
      const existing = await client.getManifest(tag);
      if (!existing) continue;
      const parsed = JSON.parse(existing.bytes.toString('utf8')) as { config?: Descriptor };
      if (!parsed.config?.digest) continue; // an index or something else: nothing to reuse from it
      const config = await client.getBlob(parsed.config.digest);
      for (const [diffID, desc] of layersByDiffID(existing.bytes, config)) candidates.set(diffID, desc);
      found.push(tag);
    } catch (error) {
      logger.info(`cannot reuse the layers under ${tag}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const confirmed = new Map<string, Descriptor>();
  await Promise.all(
    [...candidates].map(async ([diffID, desc]) => {
      if (await client.hasBlob(desc.digest)) confirmed.set(diffID, desc);
    }),
  );
  if (confirmed.size > 0) {
    logger.info(`${confirmed.size} layer(s) of ${found.join(', ')} in the registry: those in this image are neither compressed nor uploaded`);
  }
  return confirmed;
}

/** The diff id a layer entry announces by its directory name (streamLayeredImage / buildLayeredImage name
 *  layers `<diff id>/layer.tar`). Only a hint: the final check compares content hashes with the config. */
function diffIDOf(entry: LayerEntry): string | undefined {
  return entry.diffIDHint;
}

export async function pushImage(opts: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const { source, client, tags, logger } = opts;
  const work = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'nix-image-push-'));
  const compressSlots = limiter(LAYERS_AT_ONCE);
  const uploadSlots = limiter(opts.uploads ?? 4);
  let bytesUploaded = 0;
  let bytesSkipped = 0;

  try {
    // 1. Plan before compressing: which diff ids the registry already holds under the target tags and
    //    the reuse tags.
    //    The archive is read once; layers named by their diff id are matched against this plan unread.
    const reuse = client ? await planReuse(client, [...new Set([...tags, ...(opts.reuseTags ?? [])])], logger) : new Map<string, Descriptor>();

    // 2. One pass over the archive: skip reused layers, compress the others (each on all cores, block by
    //    block) and upload them in the background while the reader moves on.
    const byDiffID = new Map<string, Promise<LayerReport>>();
    const byName = new Map<string, Promise<LayerReport>>();
    const meta = await readLayers(source, async (entry, open) => {
      const expected = diffIDOf(entry);
      const known = expected ? reuse.get(expected) : undefined;
      const same = expected ? byDiffID.get(expected) : undefined;
      if (known || same) {
        // Not read at all from a plain .tar; skipped unread from a stream.
        const report = same ?? Promise.resolve({ ...known!, diffID: expected!, action: 'reused' as const });
        if (!same) {
          bytesSkipped += known!.size;
          byDiffID.set(expected!, report);
        }
        byName.set(entry.name, report);
        return;
      }
      // A plain .tar is read in place, several layers at once; from a compressed archive or a stream the
      // layer is compressed as it is read (the reader waits), with no copy of the raw layer on disk.
      const compress = () => compressLayer(open(), { dir: work, level: opts.compressionLevel });
      const compressed = entry.seekable ? compressSlots(compress) : Promise.resolve(await compress());
      const task = compressed.then(async (layer): Promise<LayerReport> => {
        const desc = { mediaType: MediaTypes.ociLayerGzip, digest: layer.digest, size: layer.size };
        try {
          if (!client) return { ...desc, diffID: layer.diffID, action: 'computed' };
          return await uploadSlots(async () => {
            if (await client.hasBlob(layer.digest)) {
              bytesSkipped += layer.size;
              return { ...desc, diffID: layer.diffID, action: 'present' as const };
            }
            await client.uploadBlob({ digest: layer.digest, size: layer.size }, () => createReadStream(layer.file, { highWaterMark: UPLOAD_CHUNK }));
            bytesUploaded += layer.size;
            logger.info(`uploaded ${layer.digest} (${formatBytes(layer.size)}, layer ${entry.name})`);
            return { ...desc, diffID: layer.diffID, action: 'uploaded' as const };
          });
        } finally {
          await rm(layer.file, { force: true });
        }
      });
      // Every task is awaited below; mark rejections handled so one failure does not crash the process first.
      task.catch(() => undefined);
      if (expected) byDiffID.set(expected, task);
      byName.set(entry.name, task);
    });

    const results = await Promise.allSettled([...new Set(byName.values())]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;

    // 3. Layers in config order. Each must exist, and match the config's diff ids.
    const layers: LayerReport[] = [];
    for (const [i, name] of meta.manifest.layers.entries()) {
      const target = meta.aliases?.[name] ?? name;
      const report = byName.get(target);
      if (!report) throw new ImageMismatchError(`the archive's manifest.json names layer ${name}, but the archive has no such entry`);
      const layer = await report;
      if (layer.diffID !== meta.config.diffIDs[i]) {
        throw new ImageMismatchError(
          `layer ${i} (${name}) has diff id ${layer.diffID}, but the image config says ${meta.config.diffIDs[i]}`,
        );
      }
      layers.push(layer);
    }

    // 4. The config blob, then the manifest under every tag: only now is anything tagged.
    const config: Descriptor = { mediaType: MediaTypes.ociConfig, digest: meta.config.digest, size: meta.config.bytes.length };
    const manifest = buildOciManifest(config, layers);
    if (client) {
      if (await client.hasBlob(config.digest)) bytesSkipped += config.size;
      else {
        await client.uploadBlobBytes(meta.config.bytes);
        bytesUploaded += config.size;
      }
      for (const tag of tags) {
        const digest = await client.putManifest(tag, manifest.bytes, manifest.mediaType);
        if (digest !== manifest.digest) {
          throw new ImageMismatchError(`the registry stored the manifest for ${tag} as ${digest}, expected ${manifest.digest}`);
        }
      }
    }
    return {
      digest: manifest.digest,
      manifest,
      config,
      layers,
      pushed: client !== undefined,
      bytesUploaded,
      bytesSkipped,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

export { sha256Digest };
