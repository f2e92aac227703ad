// One image, several repositories (tags naming other registries or repositories, as docker/metadata-action
// writes them): one image, one digest, in every repository. The image is made and pushed to the first
// repository (by digest), each layer compressed at most once; every later repository gets exactly that
// result's blobs and manifest bytes: a blob it holds is left, one an earlier repository of the same
// registry holds is mounted from there, any other is copied from the first registry (its digest checked).
// Only when every repository holds every blob is anything tagged, repository by repository. With one
// repository this is exactly pushImage.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { FailFast } from './fail-fast.js';
import { limiter } from './limit.js';
import { readLayerRecord, recordLayers } from '../nix/layer-record.js';
import type { ImageInput } from '../image/types.js';
import type { RegistryClient } from './client.js';
import { findExisting, retag, type Existing, type Wanted } from './existing.js';
import { ImageMismatchError } from '../image/input.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';
import type { KnownLayer } from './manifest.js';
import { READ_CHUNK } from '../hash.js';
import { pushImage, tagAll, type LayerReport, type PushOptions, type PushResult } from './push.js';
import { tagsOf, type ReuseRef } from './reference.js';

export interface PushTarget {
  client: RegistryClient;
  /** Tags in this repository (none with push-by-digest). */
  tags: string[];
  reuse: ReuseRef[];
  /** This repository's record of layers last pushed (the store cache's): see knownFromRecord. */
  known: KnownLayer[];
}

export type CommonPushOptions = Pick<PushOptions, 'logger' | 'tmpDir' | 'annotations' | 'compression'> & { byDigest?: boolean };

/** Blobs copied between registries at once. */
const COPIES = 4;

/** registry/repository: the key of a repository's layer record, and its name in messages. */
export const recordKey = (t: Pick<PushTarget, 'client'>): string => `${t.client.registry}/${t.client.repository}`;

/** The store cache's record of the layers last pushed to the target's repository (none without a store
 *  cache), each bound to that repository: trusted by a push to it alone. An entry without a media type
 *  is a gzip layer (records before zstd). */
export async function knownFromRecord(dir: string | undefined, target: Pick<PushTarget, 'client'>, pin?: string | null): Promise<KnownLayer[]> {
  if (!dir) return [];
  const recordedFor = recordKey(target);
  return (await readLayerRecord(dir, recordedFor, pin)).map((l) => ({
    diffID: l.diffID,
    desc: { mediaType: l.mediaType ?? MediaTypes.ociLayerGzip, digest: l.digest, size: l.size },
    ...(l.key ? { key: l.key } : {}),
    recordedFor,
  }));
}

/** Adds the layers of a push (made, trusted, or checked by hashing) to the record of the target's
 *  repository; returns the digest of the record written. `pin`: as knownFromRecord's (the record kept
 *  only if it is still the one this job verified or wrote). */
export async function recordPushed(dir: string, target: Pick<PushTarget, 'client'>, result: PushResult, pin?: string | null): Promise<string> {
  return recordLayers(
    dir,
    recordKey(target),
    result.layers.map((l) => ({ diffID: l.diffID, digest: l.digest, size: l.size, ...(l.key ? { key: l.key } : {}), ...(l.mediaType === MediaTypes.ociLayerGzip ? {} : { mediaType: l.mediaType }) })),
    pin,
  );
}

export async function pushToAll(input: ImageInput, targets: PushTarget[], opts: CommonPushOptions): Promise<PushResult[]> {
  const [first] = targets;
  if (!first) throw new Error('pushToAll needs a target');
  const common = { logger: opts.logger, tmpDir: opts.tmpDir, annotations: opts.annotations, compression: opts.compression };
  if (targets.length === 1) {
    return [await pushImage({ ...common, input, client: first.client, tags: first.tags, byDigest: opts.byDigest, reuseTags: first.reuse, known: first.known })];
  }
  opts.logger.info(`pushing to ${recordKey(first)} (by digest; tags once every repository has the image)`);
  // Each layer made here goes to the later registries from its compressed file as soon as it is made,
  // beside the first registry's upload, never downloaded back. What they then lack (layers the first had
  // already, the config) is copied once the first holds the image.
  const placers = targets.slice(1).map((t, i) => blobPlacer(first.client, t.client, targets.slice(0, i + 1).map((x) => x.client), opts.logger));
  // A repository in the first one's registry waits for it, then mounts the blob (nothing sent again).
  const sameAsFirst = targets.slice(1).map((t) => t.client.registry === first.client.registry);
  const onMade = async (desc: Descriptor, file: string, inFirst: Promise<void>, signal: AbortSignal): Promise<void> => {
    await Promise.all(placers.map(async (p, i) => (sameAsFirst[i] ? inFirst.then(() => p.place(desc, file, signal)) : p.place(desc, file, signal))));
  };
  // Pushed by digest, the layers under its tags are still the first to look at.
  const made = await pushImage({ ...common, input, client: first.client, tags: [], byDigest: true, reuseTags: [...first.tags, ...first.reuse], known: first.known, onMade });
  const results: PushResult[] = [made];
  for (const [i, target] of targets.slice(1).entries()) {
    opts.logger.info(`copying ${made.digest} to ${recordKey(target)} (by digest)`);
    results.push(await copyImage(made, first.client, target.client, targets.slice(0, i + 1).map((t) => t.client), opts.logger, placers[i]));
  }
  if (!opts.byDigest) await tagEverywhere(targets, results);
  return results;
}

/**
 * Puts the image `made` (pushed by `source`) into the target's repository, blob for blob and byte for
 * byte: a blob the target holds is left; one a repository of the same registry in `before` holds is
 * mounted; any other is streamed from the source registry, its digest checked as it comes. Then the
 * manifest, by digest.
 */
/** Places blobs in one later repository, each once: left where it is, mounted from an earlier repository
 *  of the same registry, uploaded from a local file when there is one, else streamed from the source. */
interface BlobPlacer {
  /** `signal`: the placement stops (its requests aborted) when the push or copy it serves fails. */
  place(blob: Descriptor, file?: string, signal?: AbortSignal): Promise<LayerReport['action']>;
  bytes: { uploaded: number; skipped: number };
}

function blobPlacer(source: RegistryClient, target: RegistryClient, before: RegistryClient[], logger: Logger): BlobPlacer {
  const mountFrom = [...new Set(before.filter((c) => c.registry === target.registry && c.repository !== target.repository).map((c) => c.repository))];
  target.allowPull(mountFrom);
  const slots = limiter(COPIES);
  const bytes = { uploaded: 0, skipped: 0 };
  const placed = new Map<string, Promise<LayerReport['action']>>();
  const place = (blob: Descriptor, file?: string, signal?: AbortSignal): Promise<LayerReport['action']> => {
    const known = placed.get(blob.digest);
    if (known) return known;
    const action = slots(async (): Promise<LayerReport['action']> => {
      signal?.throwIfAborted();
      if (await target.hasBlob(blob.digest, { signal })) {
        bytes.skipped += blob.size;
        return 'reused';
      }
      for (const from of mountFrom) {
        if (await target.mountBlob(blob.digest, from, { signal })) {
          bytes.skipped += blob.size;
          return 'mounted';
        }
      }
      // The registry checks the digest of what it is sent, whichever copy it comes from.
      await target.uploadBlob(blob, () => (file ? createReadStream(file, { highWaterMark: READ_CHUNK }) : Readable.from(source.blobPieces(blob.digest, blob.size, { signal }))), { signal });
      bytes.uploaded += blob.size;
      logger.info(`${file ? 'uploaded' : 'copied'} ${blob.digest} (${blob.size} bytes) ${file ? 'as made' : `from ${source.registry}/${source.repository}`} to ${target.registry}/${target.repository}`);
      return 'uploaded';
    });
    placed.set(blob.digest, action);
    action.catch(() => undefined);
    return action;
  };
  return { place, bytes };
}

export async function copyImage(made: PushResult, source: RegistryClient, target: RegistryClient, before: RegistryClient[], logger: Logger, placer = blobPlacer(source, target, before, logger)): Promise<PushResult> {
  const started = Date.now();
  // Distinct blobs once each (an image may hold one layer twice), the config with them.
  const actions = new Map<string, Promise<LayerReport['action']>>();
  // The first failure stops the other copies (their requests aborted) and is the one reported.
  const run = new FailFast();
  for (const blob of [made.config, ...made.layers]) if (!actions.has(blob.digest)) actions.set(blob.digest, run.track(placer.place(blob, undefined, run.signal)));
  await run.settle();
  const layers: LayerReport[] = [];
  for (const l of made.layers) layers.push({ ...l, action: await actions.get(l.digest)! });
  const digest = await target.putManifest(made.digest, made.manifest.bytes, made.manifest.mediaType);
  if (digest !== made.digest) throw new ImageMismatchError(`${target.registry}/${target.repository} stored the manifest ${made.digest} as ${digest}`);
  return {
    digest: made.digest,
    manifest: made.manifest,
    config: made.config,
    layers,
    pushed: true,
    bytesUploaded: placer.bytes.uploaded,
    bytesSkipped: placer.bytes.skipped,
    layersMade: 0,
    seconds: (Date.now() - started) / 1000,
    input: `${made.input}, as pushed to ${source.registry}/${source.repository}`,
    retries: target.stats,
  };
}

/** Runs `step` for each target in turn; a failure names the repositories (and tags) done before it
 *  (the push's tags, a re-tag, a merge's index). */
export async function inTurn<T>(targets: PushTarget[], step: (target: PushTarget, i: number) => Promise<T>): Promise<T[]> {
  const done: T[] = [];
  for (const [i, target] of targets.entries()) {
    try {
      done.push(await step(target, i));
    } catch (error) {
      if (error instanceof Error && targets.length > 1) {
        const moved = targets.slice(0, i).map((t) => `${recordKey(t)} (${t.tags.length ? t.tags.join(', ') : 'no tag'})`);
        // The repository that failed may be partly tagged (tagAll says which of its tags moved).
        const partly = (error as Error & { tagsMoved?: string[] }).tagsMoved;
        const rest = targets.slice(partly ? i + 1 : i).map((t) => recordKey(t));
        error.message +=
          ` (repositories tagged already: ${moved.length ? moved.join('; ') : 'none'};` +
          (partly ? ` partly tagged: ${recordKey(targets[i]!)} (${partly.join(', ')});` : '') +
          ` not tagged: ${rest.length ? rest.join(', ') : 'none'})`;
      }
      throw error;
    }
  }
  return done;
}

/** Tags each repository in turn; a failure says which repositories were tagged already. */
async function tagEverywhere(targets: PushTarget[], results: { manifest: PushResult['manifest'] }[]): Promise<void> {
  await inTurn(targets, (target, i) => tagAll(target.client, target.tags, results[i]!.manifest));
}

export interface FoundEverywhere {
  existing?: Existing[];
  reason: string;
}

/** The image in every repository already (made from the same derivation and settings): one digest, every blob there. */
export async function findEverywhere(targets: PushTarget[], wanted: Wanted, logger: Logger): Promise<FoundEverywhere> {
  const found: Existing[] = [];
  for (const target of targets) {
    const r = await findExisting(target.client, [...target.tags, ...tagsOf(target.reuse, target.client.repository)], wanted, logger);
    if (!r.existing) return { reason: targets.length > 1 ? `${target.client.registry}/${target.client.repository}: ${r.reason}` : r.reason };
    if (found[0] && r.existing.manifest.digest !== found[0].manifest.digest) return { reason: `the repositories hold different images made from it` };
    found.push(r.existing);
  }
  const reason = found.length === 1 ? 'the manifest under ' + found[0]!.foundUnder + ' was made from the same derivation with the same settings, and the registry holds its config and every layer' : `every repository holds it (${found.map((f) => f.foundUnder).join(', ')}), made from the same derivation with the same settings`;
  return { existing: found, reason };
}

/** Puts the existing image under each repository's tags; a failure says which repositories were tagged already. */
export async function retagEverywhere(targets: PushTarget[], existing: Existing[], started: number): Promise<PushResult[]> {
  return inTurn(targets, async (target, i) => ({ ...(await retag(target.client, target.tags, existing[i]!, started)), retries: target.client.stats }));
}
