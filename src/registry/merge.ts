// Multi-platform images: the images a matrix of jobs pushed by digest (one per runner architecture) put
// together in one index, each entry's platform (os, architecture, variant) read from that image's own
// config: an OCI image index of OCI images, a Docker manifest list of Docker images (see indexOf).
//
// The entries of `merge` are read against the first repository `tags` names (the index's home): a digest
// or a bare tag is an image there; `other/app:v1` or `other/app@sha256:…` an image of another repository
// of the same registry; another registry is refused (reference.ts, parseMergeEntry). An index can only
// list manifests its repository holds, so every repository the index goes to (every one `tags` names)
// first gets every image it lacks: mounted from the repository it was read from when in the same
// registry (refused, saying which, when the registry will not mount), copied blob by blob from the home
// registry otherwise (after mounting from an earlier repository of that registry where it can), then the
// image manifest and the index by digest. Only when every repository holds all of it is anything tagged,
// repository by repository; a failure half-way says which repositories and tags moved.
import { Readable } from 'node:stream';
import { ImageMismatchError } from '../image/input.js';
import type { RegistryClient } from './client.js';
import { limiter } from './limit.js';
import type { BuiltManifest } from './manifest.js';
import { sha256Digest } from '../hash.js';
import { tagAll } from './push.js';
import { parseMergeEntry, sameRegistry, type MergeEntry } from './reference.js';
import { inTurn, recordKey, type PushTarget } from './targets.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';

export class MergeError extends Error {
  override name = 'MergeError';
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface MergedImage {
  /** What the merge input named, as given. */
  ref: string;
  /** The repository it was read from: the index's home, or another of its registry. */
  repository: string;
  descriptor: Descriptor & { platform: Platform };
}

/** How an image got into a repository: there already, mounted within the registry, or copied from another. */
export type PlaceAction = 'present' | 'mounted' | 'copied';

/** What one repository the index went to got. */
export interface MergedRepository {
  /** The registry's API host and the repository (the client's). */
  registry: string;
  repository: string;
  /** The tags the index is under (none: by its digest only). */
  tags: string[];
  /** Per image of the index, in its order. */
  images: { digest: string; action: PlaceAction }[];
}

export interface MergeResult {
  index: BuiltManifest;
  images: MergedImage[];
  /** One per target, in the targets' order. */
  repositories: MergedRepository[];
}

/** An image read from the registry: what the index lists, and what a repository needs to hold it. */
interface FoundImage extends MergedImage {
  manifest: { bytes: Buffer; mediaType: string };
  /** The config, then the layers, each once: what must be in a repository before the manifest goes in. */
  blobs: Descriptor[];
}

/** Blobs mounted or copied into one repository at once. */
const PLACES = 4;

const platformName = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

function platformOf(config: unknown, ref: string): Platform {
  const c = config as { os?: unknown; architecture?: unknown; variant?: unknown };
  if (typeof c?.os !== 'string' || typeof c.architecture !== 'string') throw new MergeError(`merge: the config of ${ref} names no os and architecture`);
  return { architecture: c.architecture, os: c.os, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) };
}

/** A layer a registry need not hold (foreign or non-distributable: fetched from its `urls`). */
const elsewhere = (d: Descriptor & { urls?: unknown }): boolean => /foreign|nondistributable/.test(d.mediaType) || Array.isArray(d.urls);

/** Reads each entry's image where it is, in order: manifest, config (for the platform), the blobs it needs. */
async function readImages(client: RegistryClient, entries: MergeEntry[]): Promise<FoundImage[]> {
  client.allowPull([...new Set(entries.map((e) => e.repository))]);
  const images: FoundImage[] = [];
  for (const { entry, repository, reference } of entries) {
    const from = { repository };
    const got = await client.getManifest(reference, from);
    if (!got) throw new MergeError(`merge: ${entry} is not in ${repository}`);
    const manifest = JSON.parse(got.bytes.toString('utf8')) as { mediaType?: string; config?: Descriptor; layers?: Descriptor[] };
    const mediaType = manifest.mediaType ?? got.mediaType;
    if ((mediaType !== MediaTypes.ociManifest && mediaType !== MediaTypes.dockerManifest) || !manifest.config?.digest) {
      throw new MergeError(`merge: ${entry} is ${mediaType || 'not an image manifest'}, not a single image`);
    }
    const platform = platformOf(JSON.parse((await client.getBlob(manifest.config.digest, from)).toString('utf8')), entry);
    const same = images.find((i) => platformName(i.descriptor.platform) === platformName(platform));
    if (same) throw new MergeError(`merge: ${entry} and ${same.ref} are both ${platformName(platform)}`);
    const blobs = new Map<string, Descriptor>();
    for (const b of [manifest.config, ...(manifest.layers ?? [])]) if (!elsewhere(b) && !blobs.has(b.digest)) blobs.set(b.digest, { mediaType: b.mediaType, digest: b.digest, size: b.size });
    images.push({
      ref: entry,
      repository,
      descriptor: { mediaType, digest: got.digest, size: got.bytes.length, platform },
      manifest: { bytes: got.bytes, mediaType },
      blobs: [...blobs.values()],
    });
  }
  return images;
}

/**
 * The index of the images, in order, in the kind its entries allow: an OCI image index of OCI manifests,
 * a Docker manifest list of Docker manifests (Quay, and registries like it, refuse Docker manifests in an
 * OCI index). A mix is refused: an image cannot change kind without its manifest, and so its digest,
 * changing. A Docker manifest list has no annotations: given ones are left out, in one info line.
 */
export function indexOf(images: MergedImage[], annotations?: Record<string, string>, logger?: Logger): BuiltManifest {
  const docker = images.filter((i) => i.descriptor.mediaType === MediaTypes.dockerManifest);
  const oci = images.filter((i) => i.descriptor.mediaType !== MediaTypes.dockerManifest);
  if (docker.length > 0 && oci.length > 0) {
    throw new MergeError(
      `merge: ${oci.map((i) => i.ref).join(', ')} ${oci.length === 1 ? 'is an OCI image' : 'are OCI images'} and ${docker.map((i) => i.ref).join(', ')} ` +
        `${docker.length === 1 ? 'a Docker image' : 'Docker images'}: one index lists one kind (an OCI index, or a Docker manifest list), and an image ` +
        `cannot change kind without its digest changing: push them all as one kind`,
    );
  }
  const mediaType = docker.length > 0 ? MediaTypes.dockerManifestList : MediaTypes.ociIndex;
  const keep = annotations && Object.keys(annotations).length > 0 ? annotations : undefined;
  if (keep && mediaType === MediaTypes.dockerManifestList) {
    logger?.info(`merge: the images are Docker manifests, so the index is a Docker manifest list, which has no annotations: ${Object.keys(keep).join(', ')} left out`);
  }
  const body = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((i) => i.descriptor),
    ...(keep && mediaType === MediaTypes.ociIndex ? { annotations: keep } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { mediaType, bytes, digest: sha256Digest(bytes) };
}

/**
 * Puts `image` (read by `source` from image.repository) into the target's repository by digest. A
 * repository holding the manifest holds its blobs (a registry checks them at PUT) and is left as is.
 * Otherwise each blob missing there is mounted: in the image's own registry from the repository it was
 * read from, and the registry refusing that is an error naming the entry and the blob; in another
 * registry from an earlier repository of that registry (`before`), else copied from the source, its
 * digest checked as it comes.
 */
async function placeImage(image: FoundImage, source: RegistryClient, target: RegistryClient, before: RegistryClient[], logger: Logger): Promise<PlaceAction> {
  const inSource = sameRegistry(target.registry, source.registry);
  if (inSource && target.repository === image.repository) return 'present';
  if (await target.hasManifest(image.descriptor.digest)) return 'present';
  const where = `${target.registry}/${target.repository}`;
  const mountFrom = inSource ? [image.repository] : [...new Set(before.filter((c) => sameRegistry(c.registry, target.registry) && c.repository !== target.repository).map((c) => c.repository))];
  target.allowPull(mountFrom);
  const slots = limiter(PLACES);
  let copied = false;
  const place = (blob: Descriptor): Promise<void> =>
    slots(async () => {
      if (await target.hasBlob(blob.digest)) return;
      for (const from of mountFrom) if (await target.mountBlob(blob.digest, from)) return;
      if (inSource) {
        const refused = target.mountRefusal(blob.digest, image.repository);
        throw new MergeError(
          `merge: ${target.registry} would not mount blob ${blob.digest} of ${image.ref} from ${image.repository} into ${target.repository} ` +
            `(${refused ? `it refused with ${refused}` : 'it opened an upload instead'}): an image goes into another repository of its registry by a cross-repository mount only`,
        );
      }
      await target.uploadBlob(blob, () => Readable.from(source.blobPieces(blob.digest, blob.size, { repository: image.repository })));
      copied = true;
      logger.info(`copied ${blob.digest} (${blob.size} bytes) of ${image.ref} from ${source.registry}/${image.repository} to ${where}`);
    });
  const settled = await Promise.allSettled(image.blobs.map(place));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  const digest = await target.putManifest(image.descriptor.digest, image.manifest.bytes, image.manifest.mediaType);
  if (digest !== image.descriptor.digest) throw new ImageMismatchError(`${where} stored the manifest ${image.descriptor.digest} of ${image.ref} as ${digest}`);
  return copied ? 'copied' : 'mounted';
}

/**
 * Builds the index of the images `entries` name and puts it under the tags of every target, the first
 * being the index's home. Nothing is tagged until every entry was read and every target holds every
 * image and the index (by digest); the tags then move repository by repository.
 */
export async function mergeToAll(targets: PushTarget[], entries: string[], annotations: Record<string, string> | undefined, logger: Logger): Promise<MergeResult> {
  const [first] = targets;
  if (!first) throw new Error('mergeToAll needs a target');
  if (entries.length === 0) throw new MergeError('merge: expected at least one image digest or reference');
  const source = first.client;
  // Every entry checked before anything is read: a typo, or another registry, fails in one line.
  const parsed = entries.map((e) => parseMergeEntry(e, { registry: source.registry, repository: source.repository }));
  const found = await readImages(source, parsed);
  const index = indexOf(found, annotations, logger);
  const repositories: MergedRepository[] = [];
  for (const [i, target] of targets.entries()) {
    const before = targets.slice(0, i).map((t) => t.client);
    const placed: MergedRepository['images'] = [];
    for (const image of found) {
      const action = await placeImage(image, source, target.client, before, logger);
      if (action !== 'present') logger.info(`${action} ${image.ref} (${image.descriptor.digest}) into ${recordKey(target)}`);
      placed.push({ digest: image.descriptor.digest, action });
    }
    // By digest first: the registry checks the index against what the repository holds before any tag moves.
    const digest = await target.client.putManifest(index.digest, index.bytes, index.mediaType);
    if (digest !== index.digest) throw new ImageMismatchError(`${recordKey(target)} stored the index ${index.digest} as ${digest}`);
    repositories.push({ registry: target.client.registry, repository: target.client.repository, tags: target.tags, images: placed });
  }
  await inTurn(targets, (target) => tagAll(target.client, target.tags, index));
  return { index, images: found.map(({ ref, repository, descriptor }) => ({ ref, repository, descriptor })), repositories };
}
