// Builds the image manifest pushed under each tag. Pure: same inputs, same bytes, same digest.
import { createHash } from 'node:crypto';
import { MediaTypes, type Descriptor } from './types.js';

export interface BuiltManifest {
  mediaType: string;
  bytes: Buffer;
  digest: string;
}

export function sha256Digest(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** An OCI image manifest: config and layers in the order of the config's rootfs.diff_ids. */
export function buildOciManifest(config: Descriptor, layers: Descriptor[]): BuiltManifest {
  const body = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { mediaType: MediaTypes.ociManifest, bytes, digest: sha256Digest(bytes) };
}

interface ParsedManifest {
  config?: Descriptor;
  layers?: Descriptor[];
}

/**
 * The layers of a manifest the registry already has, keyed by their diff id (from that image's config):
 * what lets a push skip compressing a layer whose content the registry already holds.
 * Returns an empty map for anything that is not a single-image manifest.
 */
export function layersByDiffID(manifestBytes: Buffer, configBytes: Buffer): Map<string, Descriptor> {
  const found = new Map<string, Descriptor>();
  let manifest: ParsedManifest;
  let config: { rootfs?: { diff_ids?: unknown } };
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as ParsedManifest;
    config = JSON.parse(configBytes.toString('utf8')) as typeof config;
  } catch {
    return found;
  }
  const diffIDs = config.rootfs?.diff_ids;
  const layers = manifest.layers;
  if (!Array.isArray(diffIDs) || !Array.isArray(layers) || diffIDs.length !== layers.length) return found;
  layers.forEach((layer, i) => {
    const diffID = diffIDs[i];
    const reusable =
      layer.mediaType === MediaTypes.ociLayerGzip || layer.mediaType === MediaTypes.dockerLayerGzip;
    if (typeof diffID === 'string' && reusable && typeof layer.digest === 'string' && Number.isInteger(layer.size)) {
      // Whatever the old manifest called it, the blob is gzip: describe it with the OCI type we push.
      found.set(diffID, { mediaType: MediaTypes.ociLayerGzip, digest: layer.digest, size: layer.size });
    }
  });
  return found;
}
