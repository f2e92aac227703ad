// The push: decide what the registry already has, make, compress and upload only the rest, then tag.
//
// Shape (after go-containerregistry's remote/write.go and nix2container): the plan is made before any
// layer is read. A layer is reused as is, never read nor compressed, when the registry holds it under one
// of the target tags, the reuse tags, or the record the store cache keeps: by its key (what fixes its
// bytes, an annotation this action writes) or by the diff id its input announces. Every candidate is
// confirmed with HEAD first. Every other layer is compressed on the thread pool to a temporary file,
// checked with HEAD and uploaded only if missing.
//
// What a reused layer is trusted for: the registry's own config mapped that blob to this diff id (or this
// key) under a manifest we read, and HEAD found the blob; its content is not hashed again. A layer that is
// read is hashed, and its diff id must be the one the image config names.
//
// The manifest is PUT under the tags only when every blob is in place, so nothing half-pushed is tagged.
// The first failure aborts everything in flight (compressions, uploads, the reader) and is reported as is.
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { compressLayer, LAYERS_AT_ONCE } from '../image/compress.js';
import { archiveInput, ImageMismatchError } from '../image/input.js';
import type { ImageInput, ImageSource, LayerSource } from '../image/types.js';
import type { RegistryClient } from './client.js';
import { limiter } from './limit.js';
import { buildOciManifest, knownLayers, LAYER_KEY_ANNOTATION, sha256Digest, type BuiltManifest, type KnownLayer } from './manifest.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';

/** Read size of a compressed layer going out: fewer, larger socket writes than the 64 KiB default. */
const UPLOAD_CHUNK = 1024 * 1024;
/** Uploads in flight at once. */
const UPLOADS = 4;

export type LayerAction = 'reused' | 'present' | 'uploaded' | 'computed';

export interface LayerReport extends Descriptor {
  diffID: string;
  action: LayerAction;
  /** The key annotation, when the layer has one. */
  key?: string;
  storePaths?: string[];
}

export interface PushOptions {
  /** The image to push: an input (archive or plan), or an archive in the store. */
  input?: ImageInput;
  source?: ImageSource;
  /** Absent when push is false: the digest is computed, nothing is sent. */
  client?: RegistryClient;
  tags: string[];
  /** Further tags of the repository whose layers may be reused (an earlier build's, e.g. latest). */
  reuseTags?: string[];
  /** Layers known from elsewhere (the store cache's record of earlier pushes); confirmed with HEAD. */
  known?: KnownLayer[];
  logger: Logger;
  /** Parent for temporary files (RUNNER_TEMP on a runner). */
  tmpDir?: string;
  /** gzip level for layers; part of the blob digest, so keep it fixed for reproducible digests. */
  compressionLevel?: number;
  /** Blob uploads in flight at once. */
  uploads?: number;
  /** Annotations of the manifest itself (what produced the image: a later job finds it by them). */
  annotations?: Record<string, string>;
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
  /** Where the layers came from (the input's description). */
  input: string;
}

export { ImageMismatchError };

/** Compressed layers on disk at once, at most: those compressing, and those waiting for or in upload. */
export function spoolLimit(uploads = UPLOADS): number {
  return LAYERS_AT_ONCE + uploads;
}

interface Reuse {
  byDiffID: Map<string, KnownLayer>;
  byKey: Map<string, KnownLayer>;
}

/** Layers the registry holds under the given tags or in `known`, each confirmed with HEAD. */
async function planReuse(client: RegistryClient, tags: string[], known: KnownLayer[], logger: Logger): Promise<Reuse> {
  const candidates: KnownLayer[] = [...known];
  const found: string[] = known.length > 0 ? ['the store cache record'] : [];
  for (const tag of tags) {
    // The plan only saves work: a tag that cannot be read (a config the registry lost, a document we do
    // not parse) leaves its layers to be made and checked one by one, as if it were absent.
    try {
      const existing = await client.getManifest(tag);
      if (!existing) continue;
      const parsed = JSON.parse(existing.bytes.toString('utf8')) as { config?: Descriptor };
      if (!parsed.config?.digest) continue; // an index or something else: nothing to reuse from it
      const config = await client.getBlob(parsed.config.digest);
      candidates.push(...knownLayers(existing.bytes, config));
      found.push(tag);
    } catch (error) {
      logger.info(`cannot reuse the layers under ${tag}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const present = new Map<string, Promise<boolean>>();
  const reuse: Reuse = { byDiffID: new Map(), byKey: new Map() };
  await Promise.all(
    candidates.map(async (layer) => {
      let head = present.get(layer.desc.digest);
      if (!head) present.set(layer.desc.digest, (head = client.hasBlob(layer.desc.digest)));
      if (!(await head)) return;
      reuse.byDiffID.set(layer.diffID, layer);
      if (layer.key) reuse.byKey.set(layer.key, layer);
    }),
  );
  if (reuse.byDiffID.size > 0) {
    logger.info(`${reuse.byDiffID.size} layer(s) of ${found.join(', ')} in the registry: those in this image are neither made nor uploaded`);
  }
  return reuse;
}

/** Runs tasks; the first failure aborts the rest (through `signal`) and is the one reported. */
class FailFast {
  readonly controller = new AbortController();
  private first?: unknown;
  private readonly tasks: Promise<unknown>[] = [];

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  fail(error: unknown): void {
    if (this.first !== undefined) return;
    this.first = error;
    this.controller.abort(error);
  }

  /** Throws the first failure, if any. */
  check(): void {
    if (this.first !== undefined) throw this.first;
  }

  track<T>(task: Promise<T>): Promise<T> {
    task.catch((e: unknown) => this.fail(e));
    this.tasks.push(task);
    return task;
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.tasks);
    this.check();
  }
}

export async function pushImage(opts: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const { client, tags, logger } = opts;
  const input = opts.input ?? (opts.source ? archiveInput(opts.source) : undefined);
  if (!input) throw new Error('pushImage needs an input or a source');
  const work = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'nix-image-push-'));
  const uploads = opts.uploads ?? UPLOADS;
  const compressSlots = limiter(LAYERS_AT_ONCE);
  const uploadSlots = limiter(uploads);
  // A layer holds a spool slot from before it is compressed until its file is removed after upload, so
  // temp disk stays under spoolLimit() compressed layers whatever the image's size.
  const spoolSlots = limiter(spoolLimit(uploads));
  const run = new FailFast();
  const opened = new Set<Readable>();
  run.signal.addEventListener('abort', () => {
    for (const s of opened) s.destroy();
  });
  let bytesUploaded = 0;
  let bytesSkipped = 0;

  try {
    // 1. Plan before reading: which layers the registry already holds.
    const reuse = client
      ? await planReuse(client, [...new Set([...tags, ...(opts.reuseTags ?? [])])], opts.known ?? [], logger)
      : { byDiffID: new Map<string, KnownLayer>(), byKey: new Map<string, KnownLayer>() };

    // 2. One pass over the input: reuse known layers unread, make and compress the others (each on all
    //    cores, block by block) and upload them in the background while the reader moves on.
    const byDiffID = new Map<string, Promise<LayerReport>>();
    const byName = new Map<string, Promise<LayerReport>>();
    const listing = await input.readLayers(async (layer: LayerSource, open) => {
      run.check();
      const known = (layer.key ? reuse.byKey.get(layer.key) : undefined) ?? (layer.diffIDHint ? reuse.byDiffID.get(layer.diffIDHint) : undefined);
      const same = layer.diffIDHint ? byDiffID.get(layer.diffIDHint) : undefined;
      if (known || same) {
        const report = same ?? Promise.resolve<LayerReport>({ ...known!.desc, diffID: known!.diffID, action: 'reused' });
        if (!same) {
          bytesSkipped += known!.desc.size;
          byDiffID.set(known!.diffID, report);
        }
        byName.set(layer.name, report);
        return;
      }
      const compressed = deferred<Awaited<ReturnType<typeof compressLayer>>>();
      const task = run.track(
        spoolSlots(async (): Promise<LayerReport> => {
          run.check();
          const compress = async () => {
            run.check();
            const raw = open();
            opened.add(raw);
            try {
              return await compressLayer(raw, { dir: work, level: opts.compressionLevel });
            } finally {
              opened.delete(raw);
            }
          };
          // A seekable input is read several layers at once; a stream is read in order, as it comes.
          const made = await (layer.seekable ? compressSlots(compress) : compress()).catch((e: unknown) => {
            compressed.reject(e);
            throw e;
          });
          compressed.resolve(made);
          const desc = { mediaType: MediaTypes.ociLayerGzip, digest: made.digest, size: made.size };
          try {
            if (!client) return { ...desc, diffID: made.diffID, action: 'computed' };
            return await uploadSlots(async () => {
              run.check();
              if (await client.hasBlob(made.digest, { signal: run.signal })) {
                bytesSkipped += made.size;
                return { ...desc, diffID: made.diffID, action: 'present' as const };
              }
              run.check();
              await client.uploadBlob({ digest: made.digest, size: made.size }, () => {
                const body = createReadStream(made.file, { highWaterMark: UPLOAD_CHUNK });
                opened.add(body);
                body.once('close', () => opened.delete(body));
                if (run.signal.aborted) body.destroy();
                return body;
              }, { signal: run.signal });
              bytesUploaded += made.size;
              logger.info(`uploaded ${made.digest} (${formatBytes(made.size)}, ${layer.name})`);
              return { ...desc, diffID: made.diffID, action: 'uploaded' as const };
            });
          } finally {
            await rm(made.file, { force: true });
          }
        }),
      );
      task.catch(() => undefined);
      compressed.promise.catch(() => undefined);
      if (layer.diffIDHint) byDiffID.set(layer.diffIDHint, task);
      byName.set(layer.name, task);
      // A stream must be read before the visitor returns.
      if (!layer.seekable) await Promise.race([compressed.promise, task]);
    }).catch((error: unknown) => {
      // The reader stopped because a layer failed: that failure is the one to report.
      run.check();
      throw error;
    });
    await run.settle();

    // 3. Layers in config order; each must exist and match the config's diff ids.
    const layers: LayerReport[] = [];
    for (const [i, name] of listing.order.entries()) {
      const report = byName.get(name);
      if (!report) throw new ImageMismatchError(`the image names layer ${name}, but it has no such entry`);
      const layer = { ...(await report) };
      const key = listing.keys?.[i];
      if (key) layer.key = key;
      const paths = listing.storePaths?.[i];
      if (paths) layer.storePaths = paths;
      layers.push(layer);
    }
    const configBytes = listing.config(layers.map((l) => l.diffID));

    // 4. The config blob, then the manifest under every tag: only now is anything tagged.
    const config: Descriptor = { mediaType: MediaTypes.ociConfig, digest: sha256Digest(configBytes), size: configBytes.length };
    const manifest = buildOciManifest(
      config,
      layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.key ? { annotations: { [LAYER_KEY_ANNOTATION]: l.key } } : {}) })),
      opts.annotations,
    );
    if (client) {
      if (await client.hasBlob(config.digest)) bytesSkipped += config.size;
      else {
        await client.uploadBlobBytes(configBytes);
        bytesUploaded += config.size;
      }
      await tagAll(client, tags, manifest);
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
      input: input.description,
    };
  } finally {
    run.controller.abort();
    await rm(work, { recursive: true, force: true });
  }
}

/** PUTs the manifest under every tag; a failure says which tags were moved and which were not. */
export async function tagAll(client: RegistryClient, tags: string[], manifest: BuiltManifest): Promise<void> {
  for (const [i, tag] of tags.entries()) {
    try {
      const digest = await client.putManifest(tag, manifest.bytes, manifest.mediaType);
      if (digest !== manifest.digest) {
        throw new ImageMismatchError(`the registry stored the manifest for ${tag} as ${digest}, expected ${manifest.digest}`);
      }
    } catch (error) {
      if (tags.length > 1 && error instanceof Error) {
        const moved = tags.slice(0, i);
        error.message +=
          ` (tags moved to ${manifest.digest}: ${moved.length ? moved.join(', ') : 'none'};` +
          ` not moved: ${tags.slice(i).join(', ')})`;
      }
      throw error;
    }
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
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
