// Multi-platform images: the images a matrix of jobs pushed by digest (one per runner architecture) put
// together in one OCI image index, each entry's platform (os, architecture, variant) read from that
// image's own config. Every image named must be in the repository; the index is pushed under the tags
// only once all of them were found.
import type { RegistryClient } from './client.js';
import { sha256Digest, type BuiltManifest } from './manifest.js';
import { tagAll } from './push.js';
import { MediaTypes, type Descriptor } from './types.js';

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
  descriptor: Descriptor & { platform: Platform };
}

export interface MergeResult {
  index: BuiltManifest;
  images: MergedImage[];
}

/**
 * The digest an entry of `merge` names: `sha256:…`, or a reference ending in `@sha256:…` (of this
 * repository: the repository part must be `repository` when given), or a tag of this repository.
 */
export function mergeRef(entry: string, repository: string): string {
  const at = entry.lastIndexOf('@');
  if (at >= 0) {
    const digest = entry.slice(at + 1);
    const name = entry.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new MergeError(`merge: ${entry} does not end in @sha256:<64 hex digits>`);
    if (name !== '' && !name.endsWith(`/${repository}`) && name !== repository) {
      throw new MergeError(`merge: ${entry} is not in ${repository}: every image merged must be in the repository of the index`);
    }
    return digest;
  }
  if (/^sha256:[0-9a-f]{64}$/.test(entry)) return entry;
  const colon = entry.lastIndexOf(':');
  return colon >= 0 && !entry.slice(colon).includes('/') ? entry.slice(colon + 1) : entry;
}

function platformOf(config: unknown, ref: string): Platform {
  const c = config as { os?: unknown; architecture?: unknown; variant?: unknown };
  if (typeof c?.os !== 'string' || typeof c.architecture !== 'string') throw new MergeError(`merge: the config of ${ref} names no os and architecture`);
  return { architecture: c.architecture, os: c.os, ...(typeof c.variant === 'string' && c.variant ? { variant: c.variant } : {}) };
}

/** Reads each image named, in order, and builds the index; nothing is written. */
export async function buildIndex(client: RegistryClient, entries: string[], repository: string, annotations?: Record<string, string>): Promise<MergeResult> {
  if (entries.length === 0) throw new MergeError('merge: expected at least one image digest or reference');
  const images: MergedImage[] = [];
  for (const entry of entries) {
    const ref = mergeRef(entry, repository);
    const got = await client.getManifest(ref);
    if (!got) throw new MergeError(`merge: ${entry} is not in ${repository}`);
    const manifest = JSON.parse(got.bytes.toString('utf8')) as { mediaType?: string; config?: Descriptor };
    const mediaType = manifest.mediaType ?? got.mediaType;
    if ((mediaType !== MediaTypes.ociManifest && mediaType !== MediaTypes.dockerManifest) || !manifest.config?.digest) {
      throw new MergeError(`merge: ${entry} is ${mediaType || 'not an image manifest'}, not a single image`);
    }
    const platform = platformOf(JSON.parse((await client.getBlob(manifest.config.digest)).toString('utf8')), entry);
    const same = images.find((i) => JSON.stringify(i.descriptor.platform) === JSON.stringify(platform));
    if (same) throw new MergeError(`merge: ${entry} and ${same.ref} are both ${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`);
    images.push({ ref: entry, descriptor: { mediaType, digest: got.digest, size: got.bytes.length, platform } });
  }
  const body = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: images.map((i) => i.descriptor),
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { index: { mediaType: MediaTypes.ociIndex, bytes, digest: sha256Digest(bytes) }, images };
}

/** Builds the index and puts it under every tag (by its digest when there is no tag). */
export async function mergeImages(client: RegistryClient, entries: string[], tags: string[], repository: string, annotations?: Record<string, string>): Promise<MergeResult> {
  const merged = await buildIndex(client, entries, repository, annotations);
  await tagAll(client, tags.length > 0 ? tags : [merged.index.digest], merged.index);
  return merged;
}
