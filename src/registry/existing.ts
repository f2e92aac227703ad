// The registry as the image's binary cache: a manifest under one of the given tags whose annotations say
// it was produced by exactly what would produce it now (the caller's `wanted` annotations: the image
// derivation and the settings that shape the bytes) is the image. Before it is trusted, HEAD confirms its
// config and every layer; then it is put under the target tags like a fresh push would, nothing else
// being sent. This module never knows what the annotations mean.
import type { RegistryClient } from './client.js';
import { knownLayers, type BuiltManifest } from './manifest.js';
import { sha256Digest } from '../hash.js';
import { tagAll, type LayerReport, type PushResult } from './push.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';

export interface Existing {
  /** The tag it was found under. */
  foundUnder: string;
  manifest: BuiltManifest;
  config: Descriptor;
  layers: LayerReport[];
  /** What each tag read while looking held (its manifest's digest; null: absent): re-tagging leaves a
   *  tag that names the image already as it is, without reading it again. */
  held: Record<string, string | null>;
}

export interface FindResult {
  existing?: Existing;
  /** One line: where it was found, or why no tag had it. */
  reason: string;
}

interface Parsed {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  annotations?: Record<string, string>;
}

/** Producer annotations a manifest must carry: one set, or several alternatives (any one, whole, will do). */
export type Wanted = Record<string, string> | Record<string, string>[];

/** Looks under `tags` (in order) for a manifest carrying every `wanted` annotation (of one alternative), with
 *  all its blobs present. */
export async function findExisting(client: RegistryClient, tags: string[], wanted: Wanted, logger: Logger): Promise<FindResult> {
  const alternatives = Array.isArray(wanted) ? wanted : [wanted];
  const misses: string[] = [];
  const held: Record<string, string | null> = {};
  for (const tag of [...new Set(tags)]) {
    let got: Awaited<ReturnType<RegistryClient['getManifest']>>;
    try {
      got = await client.getManifest(tag);
    } catch (error) {
      logger.info(`cannot read the manifest under ${tag}: ${error instanceof Error ? error.message : String(error)}`);
      misses.push(`${tag}: unreadable`);
      continue;
    }
    held[tag] = got?.digest ?? null;
    if (!got) {
      misses.push(`${tag}: absent`);
      continue;
    }
    let parsed: Parsed;
    try {
      parsed = JSON.parse(got.bytes.toString('utf8')) as Parsed;
    } catch {
      misses.push(`${tag}: not JSON`);
      continue;
    }
    const matches = alternatives.some((w) => Object.entries(w).every(([k, v]) => parsed.annotations?.[k] === v));
    if (parsed.mediaType !== MediaTypes.ociManifest || !parsed.config?.digest || !Array.isArray(parsed.layers) || !matches) {
      misses.push(`${tag}: made from something else`);
      continue;
    }
    const config = parsed.config;
    const configBytes = await client.getBlob(config.digest).catch(() => undefined);
    const layers = configBytes ? knownLayers(got.bytes, configBytes) : [];
    if (!configBytes || layers.length !== parsed.layers.length) {
      misses.push(`${tag}: its config is gone or does not match its layers`);
      continue;
    }
    const present = await Promise.all(layers.map((l) => client.hasBlob(l.desc.digest)));
    if (!present.every(Boolean)) {
      misses.push(`${tag}: ${present.filter((p) => !p).length} of its layers are gone`);
      continue;
    }
    return {
      existing: {
        foundUnder: tag,
        manifest: { mediaType: MediaTypes.ociManifest, bytes: got.bytes, digest: got.digest },
        config: { mediaType: config.mediaType ?? MediaTypes.ociConfig, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ ...l.desc, diffID: l.diffID, action: 'reused' as const, ...(l.key ? { key: l.key } : {}) })),
        held,
      },
      reason: `the manifest under ${tag} was made from the same derivation with the same settings, and the registry holds its config and every layer`,
    };
  }
  return { reason: misses.length ? `no tag holds this image (${misses.join('; ')})` : 'no tag to look under' };
}

/** Puts an existing image under every tag: a push that sends nothing but manifests. */
export async function retag(client: RegistryClient, tags: string[], existing: Existing, started = Date.now()): Promise<PushResult> {
  if (sha256Digest(existing.manifest.bytes) !== existing.manifest.digest) throw new Error('manifest digest mismatch');
  await tagAll(client, tags, existing.manifest, existing.held);
  return {
    digest: existing.manifest.digest,
    manifest: existing.manifest,
    config: existing.config,
    layers: existing.layers,
    pushed: true,
    bytesUploaded: 0,
    bytesSkipped: existing.layers.reduce((n, l) => n + l.size, existing.config.size),
    layersMade: 0,
    seconds: (Date.now() - started) / 1000,
    input: `already in the registry under ${existing.foundUnder}`,
  };
}
