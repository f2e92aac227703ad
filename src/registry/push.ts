// The push: decide what the registry already has, make, compress and upload only the rest, then tag.
//
// Shape (after go-containerregistry's remote/write.go and nix2container): the plan is made before any
// layer is read. A layer is reused as is, never read nor compressed, when the registry holds it under one
// of the target tags, the reuse tags, or the record the store cache keeps: by its key (what fixes its
// bytes, an annotation this action writes) or by the diff id its input announces. Every candidate is
// confirmed with HEAD first. A reuse tag may name another repository of the same registry
// (`mono/base:latest`): a layer found only there is mounted into the target repository (a POST with
// ?mount=&from=, no bytes sent), or, when the registry will not mount it, made and uploaded like any
// other. Every other layer is compressed on the thread pool to a temporary file, checked with HEAD and
// uploaded only if missing.
//
// What a reused layer is trusted for: a mapping diff id (or key) → blob is taken as is only when this
// action made it for the target repository: a layer of a target-repository manifest carrying our key
// annotation, or an entry of this action's layer record for that repository. Any other (another
// repository's config, a target-repository manifest another tool pushed, a record kept for another
// repository) is a claim: the blob is downloaded, inflated and hashed once (verify.ts) and used only when
// it holds the diff id claimed; a layer matched by key against such a claim must itself hash (uncompressed)
// to that diff id. A layer that is read is hashed, and its diff id must be the one the image config names.
//
// The manifest is PUT under the tags only when every blob is in place, so nothing half-pushed is tagged.
// The first failure aborts everything in flight (compressions, uploads, the reader) and is reported as is.
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { compressLayer, DEFAULT_COMPRESSION, LAYERS_AT_ONCE, type Compression } from '../image/compress.js';
import { archiveInput, ImageMismatchError } from '../image/input.js';
import { zstdDescription } from '../image/zstd.js';
import type { ImageInput, ImageSource, LayerListing, LayerSource } from '../image/types.js';
import type { ClientStats, RegistryClient } from './client.js';
import { AuthError } from './transport/error.js';
import { FailFast } from './fail-fast.js';
import { limiter } from './limit.js';
import { buildOciManifest, knownLayers, LAYER_KEY_ANNOTATION, layerMediaType, type BuiltManifest, type KnownLayer } from './manifest.js';
import type { ReuseRef } from './reference.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';
import { READ_CHUNK, sha256Digest } from '../hash.js';
import { blobDiffID, layerDiffID, recalledDiffID, rememberDiffID } from './verify.js';

/** How often a long push says how far its uploads are. */
const PROGRESS_MS = 10_000;
/** Uploads in flight at once. */
const UPLOADS = 4;

/** reused: known before reading and in the repository; mounted: known from another repository of the
 *  registry and mounted from there, never read; present: read, then found by HEAD; uploaded; computed: no push. */
export type LayerAction = 'reused' | 'mounted' | 'present' | 'uploaded' | 'computed';

export interface LayerReport extends Descriptor {
  diffID: string;
  action: LayerAction;
  /** The key annotation, when the layer has one. */
  key?: string;
  storePaths?: string[];
  /** Reused on another's word (another repository, another tool, another record): its blob was
   *  downloaded and hashed in this process, and holds diffID. */
  verified?: true;
}

export interface PushOptions {
  /** The image to push: an input (archive or plan), or an archive in the store. */
  input?: ImageInput;
  source?: ImageSource;
  /** Absent when push is false: the digest is computed, nothing is sent. */
  client?: RegistryClient;
  tags: string[];
  /** Further tags whose layers may be reused (an earlier build's, e.g. latest): a string is a tag of the
   *  target repository; a ReuseRef may name another repository of the registry (layers mounted from it). */
  reuseTags?: (string | ReuseRef)[];
  /** Layers known from the store cache's record of earlier pushes; confirmed with HEAD. Trusted unread
   *  only when recordedFor is this registry/repository; any other is verified before use (and mounted
   *  from its repository when that is in this registry). */
  known?: KnownLayer[];
  logger: Logger;
  /** Parent for temporary files (RUNNER_TEMP on a runner). */
  tmpDir?: string;
  /** gzip (the default, level 4) or zstd, and the level: part of every blob digest and layer key. Only
   *  blobs of the same media type are reused: a zstd push never names a gzip blob, nor the other way round. */
  compression?: Compression;
  /** Blob uploads in flight at once. */
  uploads?: number;
  /** Push under no tag: the manifest is PUT by its digest only. */
  byDigest?: boolean;
  /** Annotations of the manifest itself (what produced the image: a later job finds it by them). */
  annotations?: Record<string, string>;
  /** Hears each layer blob made here, with its compressed file (kept until what it returns settles), a
   *  promise of the registry holding it, and the push's signal (aborted at its first failure): a push to
   *  several registries sends it on from the file, and stops when the push does. */
  onMade?: (desc: Descriptor, file: string, inRegistry: Promise<void>, signal: AbortSignal) => Promise<void>;
}

export interface PushResult {
  digest: string;
  manifest: BuiltManifest;
  config: Descriptor;
  layers: LayerReport[];
  pushed: boolean;
  bytesUploaded: number;
  bytesSkipped: number;
  /** Layers compressed by this push (a layer is compressed once per job, whatever the repositories). */
  layersMade: number;
  seconds: number;
  /** Where the layers came from (the input's description). */
  input: string;
  /** Requests the registry client sent again, by cause (absent without a registry). */
  retries?: ClientStats;
}

export { ImageMismatchError };

/** Compressed layers on disk at once, at most: those compressing, and those waiting for or in upload. */
export function spoolLimit(uploads = UPLOADS): number {
  return LAYERS_AT_ONCE + uploads;
}

/** A layer the registry holds: in the target repository, or (mountFrom) only in another one. Trusted: this
 *  action made the mapping for the target repository; any other is verified before use. */
type Candidate = KnownLayer & { mountFrom?: string; trusted: boolean };

interface Reuse {
  byDiffID: Map<string, Candidate>;
  byKey: Map<string, Candidate>;
}

/** The reuse tags as references: plain strings are tags of the target repository. */
function reuseRefs(client: RegistryClient, tags: string[], reuseTags: (string | ReuseRef)[]): ReuseRef[] {
  const refs = [...tags, ...reuseTags].map((t) => (typeof t === 'string' ? { repository: client.repository, tag: t } : t));
  const seen = new Set<string>();
  return refs.filter((r) => {
    const key = `${r.repository}:${r.tag}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

/** A record entry as a candidate: trusted for the repository it was recorded for; one recorded for
 *  another repository of this registry is a claim to verify, mounted from there; any other, a claim
 *  about a blob the target repository may hold. */
function fromRecord(client: RegistryClient, layer: KnownLayer): Candidate {
  const own = `${client.registry}/${client.repository}`;
  if (layer.recordedFor === own) return { ...layer, trusted: true };
  const prefix = `${client.registry}/`;
  const repository = layer.recordedFor?.startsWith(prefix) ? layer.recordedFor.slice(prefix.length) : undefined;
  return { ...layer, trusted: false, ...(repository ? { mountFrom: repository } : {}) };
}

/** How much a candidate is worth: trusted in the target, claimed in the target, to be mounted. */
const rank = (c: Candidate): number => (c.mountFrom ? 0 : c.trusted ? 2 : 1);

/**
 * Layers the registry holds under the given references or in `known`, each confirmed with HEAD in the
 * target repository; one found only under another repository's tag is confirmed there, to be mounted.
 * A claim this process already found false (the blob hashed to another diff id) is left out.
 */
async function planReuse(client: RegistryClient, refs: ReuseRef[], known: KnownLayer[], logger: Logger, mediaType: string): Promise<Reuse> {
  const candidates: Candidate[] = known.map((l) => fromRecord(client, l));
  const found: string[] = known.length > 0 ? ['the store cache record'] : [];
  for (const ref of refs) {
    const other = ref.repository !== client.repository;
    const name = other ? `${ref.repository}:${ref.tag}` : ref.tag;
    const from = other ? { repository: ref.repository } : {};
    // The plan only saves work: a tag that cannot be read (a config the registry lost, a document we do
    // not parse) leaves its layers to be made and checked one by one, as if it were absent.
    try {
      const existing = await client.getManifest(ref.tag, from);
      if (!existing) continue;
      const parsed = JSON.parse(existing.bytes.toString('utf8')) as { config?: Descriptor };
      if (!parsed.config?.digest) continue; // an index or something else: nothing to reuse from it
      const config = await client.getBlob(parsed.config.digest, from);
      // Only our key annotation in the target repository's own manifests makes a mapping ours.
      candidates.push(...knownLayers(existing.bytes, config).map((l): Candidate => (other ? { ...l, mountFrom: ref.repository, trusted: false } : { ...l, trusted: l.key !== undefined })));
      found.push(name);
    } catch (error) {
      logger.info(`cannot reuse the layers under ${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const heads = new Map<string, Promise<boolean>>();
  const head = (digest: string, repository?: string): Promise<boolean> => {
    const key = `${repository ?? ''}@${digest}`;
    let h = heads.get(key);
    if (!h) {
      h = client.hasBlob(digest, repository ? { repository } : {});
      // Another repository the credentials may not read (401, 403: Harbor) lends no layer.
      if (repository) h = h.catch((e: unknown) => (e instanceof AuthError ? false : Promise.reject(e)));
      heads.set(key, h);
    }
    return h;
  };
  const reuse: Reuse = { byDiffID: new Map(), byKey: new Map() };
  const put = (layer: Candidate): void => {
    const held = reuse.byDiffID.get(layer.diffID);
    if (!held || rank(layer) > rank(held)) reuse.byDiffID.set(layer.diffID, layer);
    const byKey = layer.key ? reuse.byKey.get(layer.key) : undefined;
    if (layer.key && (!byKey || rank(layer) > rank(byKey))) reuse.byKey.set(layer.key, layer);
  };
  // Only blobs compressed as this push compresses (see KnownLayer.desc).
  const sameType = candidates.filter((layer) => layer.desc.mediaType === mediaType);
  await Promise.all(
    sameType.map(async (layer) => {
      const recalled = layer.trusted ? undefined : await recalledDiffID(layer.desc.digest)?.catch(() => undefined);
      if (recalled !== undefined && recalled !== layer.diffID) return;
      if (await head(layer.desc.digest)) return put({ ...layer, mountFrom: undefined });
      if (layer.mountFrom && (await head(layer.desc.digest, layer.mountFrom))) put(layer);
    }),
  );
  if (reuse.byDiffID.size > 0) {
    const all = [...reuse.byDiffID.values()];
    const mounts = all.filter((l) => l.mountFrom).length;
    const claims = all.filter((l) => !l.trusted).length;
    logger.info(
      `${reuse.byDiffID.size} layer(s) of ${found.join(', ')} in the registry` +
        (mounts > 0 ? ` (${mounts} in other repositories, to be mounted)` : '') +
        (claims > 0 ? `, ${claims} of them on another's word (each checked before use)` : '') +
        ': those in this image are neither made nor uploaded',
    );
  }
  return reuse;
}

/** Every ~10 s while uploads are in flight, one line: bytes sent of those started, and the rate. No
 *  line at all for a push that is over sooner. */
export class UploadProgress {
  private inFlight = 0;
  private started = 0;
  private total = 0;
  private sentBytes = 0;
  private lastSent = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly logger: Logger, private readonly everyMs = PROGRESS_MS) {}

  start(size: number): void {
    this.inFlight++;
    this.started++;
    this.total += size;
    this.timer ??= setInterval(() => this.tick(), this.everyMs).unref();
  }

  sent(n: number): void {
    this.sentBytes += n;
  }

  done(_size: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  private tick(): void {
    if (this.inFlight === 0) return;
    const rate = (this.sentBytes - this.lastSent) / (this.everyMs / 1000);
    this.lastSent = this.sentBytes;
    this.logger.info(`uploading: ${formatBytes(this.sentBytes)} of ${formatBytes(this.total)} sent (${this.started} layer(s) started, ${this.inFlight} in flight), ${formatBytes(Math.round(rate))}/s`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export async function pushImage(opts: PushOptions): Promise<PushResult> {
  const started = Date.now();
  const { client, tags, logger } = opts;
  const input = opts.input ?? (opts.source ? archiveInput(opts.source) : undefined);
  if (!input) throw new Error('pushImage needs an input or a source');
  const compression = opts.compression ?? DEFAULT_COMPRESSION;
  if (compression.algorithm === 'zstd') logger.info(`layers compressed with zstd level ${compression.level}, by ${zstdDescription()}`);
  const work = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'nix-image-push-'));
  const uploads = opts.uploads ?? UPLOADS;
  const compressSlots = limiter(LAYERS_AT_ONCE);
  const uploadSlots = limiter(uploads);
  // A layer holds a spool slot from before it is compressed until its file is removed after upload, so
  // temp disk stays under spoolLimit() compressed layers whatever the image's size.
  const spoolSlots = limiter(spoolLimit(uploads));
  const run = new FailFast();
  const progress = new UploadProgress(logger);
  const opened = new Set<Readable>();
  run.signal.addEventListener('abort', () => {
    for (const s of opened) s.destroy();
  });
  let bytesUploaded = 0;
  let bytesSkipped = 0;
  let layersMade = 0;

  try {
    // 1. Plan before reading: which layers the registry already holds (here, or in other repositories).
    let reuse: Reuse = { byDiffID: new Map(), byKey: new Map() };
    if (client) {
      const refs = reuseRefs(client, tags, opts.reuseTags ?? []);
      const recorded = (opts.known ?? []).map((l) => fromRecord(client, l).mountFrom).filter((r): r is string => r !== undefined);
      client.allowPull([...refs.map((r) => r.repository), ...recorded]);
      reuse = await planReuse(client, refs, opts.known ?? [], logger, layerMediaType(compression.algorithm));
    }

    // 2. One pass over the input: reuse known layers unread, make and compress the others (each on all
    //    cores, block by block) and upload them in the background while the reader moves on.
    const byDiffID = new Map<string, Promise<LayerReport>>();
    const byName = new Map<string, Promise<LayerReport>>();
    /** A claim about a blob, checked: the layer's own diff id is the one claimed (hashed uncompressed when
     *  only its key matched), and so is what the blob inflates to. */
    const confirm = async (claim: Candidate, layer: LayerSource, open: () => Readable): Promise<boolean> => {
      const where = claim.mountFrom ? ` of ${claim.mountFrom}` : '';
      let own = layer.diffIDHint;
      if (own === undefined) {
        // A stream is read once: it is made, not hashed first.
        if (!layer.seekable) return false;
        const raw = open();
        opened.add(raw);
        try {
          own = await layerDiffID(raw, run.signal);
        } finally {
          opened.delete(raw);
        }
      }
      if (own !== claim.diffID) {
        logger.info(`${layer.name} (${own}) is not the layer ${claim.desc.digest}${where} holds by its key (${claim.diffID}): making it`);
        return false;
      }
      let holds: string;
      try {
        holds = await blobDiffID(client!, claim.desc, { ...(claim.mountFrom ? { repository: claim.mountFrom } : {}), signal: run.signal });
      } catch (error) {
        run.check();
        logger.info(`cannot check blob ${claim.desc.digest}${where} (${error instanceof Error ? error.message : String(error)}): making ${layer.name}`);
        return false;
      }
      if (holds !== claim.diffID) {
        logger.warning(`blob ${claim.desc.digest}${where} is said to hold ${claim.diffID} but inflates to ${holds}: not used, making ${layer.name}`);
        return false;
      }
      return true;
    };
    const reading = input.readLayers(async (layer: LayerSource, open) => {
      run.check();
      const same = layer.diffIDHint ? byDiffID.get(layer.diffIDHint) : undefined;
      if (same) {
        byName.set(layer.name, same);
        return;
      }
      let known: Candidate | undefined;
      for (const claim of new Set([layer.key ? reuse.byKey.get(layer.key) : undefined, layer.diffIDHint ? reuse.byDiffID.get(layer.diffIDHint) : undefined])) {
        if (!claim || (!claim.trusted && !(await confirm(claim, layer, open)))) continue;
        known = claim;
        break;
      }
      run.check();
      if (known) {
        // Known from another repository: mounted, or (the registry will not) made and uploaded below.
        const mounted = known.mountFrom ? await client!.mountBlob(known.desc.digest, known.mountFrom, { signal: run.signal }) : false;
        if (!known.mountFrom || mounted) {
          const report = Promise.resolve<LayerReport>({ ...known.desc, diffID: known.diffID, action: mounted ? 'mounted' : 'reused', ...(known.trusted ? {} : { verified: true as const }) });
          bytesSkipped += known.desc.size;
          byDiffID.set(known.diffID, report);
          byName.set(layer.name, report);
          if (mounted) logger.info(`mounted ${known.desc.digest} (${formatBytes(known.desc.size)}, ${layer.name}) from ${known.mountFrom}`);
          return;
        }
        logger.info(`the registry did not mount ${known.desc.digest} from ${known.mountFrom}: making and uploading ${layer.name}`);
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
              return await compressLayer(raw, { dir: work, compression });
            } finally {
              opened.delete(raw);
            }
          };
          // A seekable input is read several layers at once; a stream is read in order, as it comes.
          const made = await (layer.seekable ? compressSlots(compress) : compress()).catch((e: unknown) => {
            compressed.reject(e);
            throw e;
          });
          layersMade++;
          rememberDiffID(made.digest, made.diffID);
          compressed.resolve(made);
          const desc = { mediaType: layerMediaType(compression.algorithm), digest: made.digest, size: made.size };
          // The later registries get it from the same file, beside this registry's upload.
          let mirrored: Promise<void> | undefined;
          try {
            if (!client) return { ...desc, diffID: made.diffID, action: 'computed' };
            const upload = uploadSlots(async () => {
              run.check();
              if (await client.hasBlob(made.digest, { signal: run.signal })) {
                bytesSkipped += made.size;
                return { ...desc, diffID: made.diffID, action: 'present' as const };
              }
              run.check();
              progress.start(made.size);
              await client.uploadBlob({ digest: made.digest, size: made.size }, () => {
                const body = createReadStream(made.file, { highWaterMark: READ_CHUNK });
                body.on('data', (chunk: string | Buffer) => progress.sent(chunk.length));
                opened.add(body);
                body.once('close', () => opened.delete(body));
                if (run.signal.aborted) body.destroy();
                return body;
              }, { signal: run.signal });
              bytesUploaded += made.size;
              progress.done(made.size);
              logger.info(`uploaded ${made.digest} (${formatBytes(made.size)}, ${layer.name})`);
              return { ...desc, diffID: made.diffID, action: 'uploaded' as const };
            });
            // The later registries get it from the same file, beside this registry's upload.
            const inRegistry = upload.then(() => undefined);
            inRegistry.catch(() => undefined); // the upload's own failure is the task's; a listener may not wait on it
            mirrored = opts.onMade?.(desc, made.file, inRegistry, run.signal);
            // Either failing fails the push at once: the other (this layer's copy elsewhere, or its upload
            // here) is aborted, not waited for.
            upload.catch((e: unknown) => run.fail(e));
            mirrored?.catch((e: unknown) => run.fail(e));
            const report = await upload;
            await mirrored;
            return report;
          } finally {
            await mirrored?.catch(() => undefined); // its reads of the file end before the file goes
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
    });
    // The first failure is reported as it happens, not when the reader gets round to noticing (a reader
    // may be waiting on its producer: a stream script between two writes). A reader still going then
    // finds the run failed at its next layer and makes nothing more.
    reading.catch(() => undefined);
    let listing: LayerListing;
    try {
      listing = await Promise.race([reading, run.failed]);
    } catch (error) {
      // A layer failed (that failure is the one to report), or the reader did (then everything in flight
      // is aborted). Either way the tasks end before their temporary files go.
      run.fail(error);
      await run.settle();
      throw error;
    }
    await run.settle();

    // 3. Layers in config order; each must exist and match the config's diff ids.
    const layers: LayerReport[] = [];
    // Read once, now that every layer's read has ended (an archive's store paths fill in as they end).
    const storePaths = listing.storePaths;
    for (const [i, name] of listing.order.entries()) {
      const report = byName.get(name);
      if (!report) throw new ImageMismatchError(`the image names layer ${name}, but it has no such entry`);
      const layer = { ...(await report) };
      const key = listing.keys?.[i];
      if (key) layer.key = key;
      const paths = storePaths?.[i];
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
      // push-by-digest: the manifest goes under its own digest, no tag.
      await tagAll(client, opts.byDigest || tags.length === 0 ? [manifest.digest] : tags, manifest);
    }
    return {
      digest: manifest.digest,
      manifest,
      config,
      layers,
      pushed: client !== undefined,
      bytesUploaded,
      bytesSkipped,
      layersMade,
      seconds: (Date.now() - started) / 1000,
      input: input.description,
      ...(client ? { retries: client.stats } : {}),
    };
  } finally {
    progress.stop();
    run.controller.abort();
    await rm(work, { recursive: true, force: true });
  }
}

/** PUTs the manifest under every tag; a failure says which tags were moved and which were not. A tag
 *  already naming the manifest is left as it is (client.putTag: one HEAD, none when `held` says what the
 *  tag holds); a digest is PUT as is. */
export async function tagAll(client: RegistryClient, tags: string[], manifest: BuiltManifest, held: Record<string, string | null> = {}): Promise<void> {
  for (const [i, tag] of tags.entries()) {
    try {
      const digest = tag.startsWith('sha256:')
        ? await client.putManifest(tag, manifest.bytes, manifest.mediaType)
        : await client.putTag(tag, manifest, Object.hasOwn(held, tag) ? { held: held[tag] } : {});
      if (digest !== manifest.digest) {
        throw new ImageMismatchError(`the registry stored the manifest for ${tag} as ${digest}, expected ${manifest.digest}`);
      }
    } catch (error) {
      if (tags.length > 1 && error instanceof Error) {
        const moved = tags.slice(0, i);
        error.message +=
          ` (tags moved to ${manifest.digest}: ${moved.length ? moved.join(', ') : 'none'};` +
          ` not moved: ${tags.slice(i).join(', ')})`;
        // For a caller tagging several repositories: this one is partly tagged.
        if (moved.length > 0) (error as Error & { tagsMoved?: string[] }).tagsMoved = moved;
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
