// Builds the image manifest pushed under each tag. Pure: same inputs, same bytes, same digest.
import { sha256Digest } from '../hash.js';
import { MediaTypes, type Descriptor } from './types.js';

export interface BuiltManifest {
  mediaType: string;
  bytes: Buffer;
  digest: string;
}


/** The layer annotation naming what fixes a layer's bytes (see image/plan.ts): read back by later pushes,
 *  so a layer whose inputs did not change is neither made nor compressed again. */
export const LAYER_KEY_ANNOTATION = 'io.github.nix-image-action.layer.key';

/** An OCI image manifest: config and layers in the order of the config's rootfs.diff_ids; `annotations`
 *  (what produced the image, see image/settings.ts) on the manifest itself. */
export function buildOciManifest(config: Descriptor, layers: Descriptor[], annotations?: Record<string, string>): BuiltManifest {
  const body = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      ...(l.annotations && Object.keys(l.annotations).length > 0 ? { annotations: l.annotations } : {}),
    })),
    ...(annotations && Object.keys(annotations).length > 0 ? { annotations: sortedObject(annotations) } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { mediaType: MediaTypes.ociManifest, bytes, digest: sha256Digest(bytes) };
}

function sortedObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface ParsedManifest {
  config?: Descriptor;
  layers?: Descriptor[];
}

/** The media type of a layer compressed with `algorithm` (the compression input). */
export function layerMediaType(algorithm: 'gzip' | 'zstd'): string {
  return algorithm === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayerGzip;
}

/** A layer media type as the push names it: OCI gzip for either gzip type (the same bytes), OCI zstd;
 *  undefined for any other (uncompressed, foreign), which is never reused. */
export function pushedLayerType(mediaType: string | undefined): string | undefined {
  if (mediaType === MediaTypes.ociLayerGzip || mediaType === MediaTypes.dockerLayerGzip) return MediaTypes.ociLayerGzip;
  if (mediaType === MediaTypes.ociLayerZstd) return MediaTypes.ociLayerZstd;
  return undefined;
}

/** A layer the registry holds, as an earlier manifest and its config describe it. */
export interface KnownLayer {
  diffID: string;
  /** The blob, described with the type the push would give it (pushedLayerType): a push reuses only blobs
   *  of its own compression, so a zstd image never names a gzip blob, nor the other way round. */
  desc: Descriptor;
  /** The layer's key annotation, when the manifest carried one. */
  key?: string;
  /** The registry/repository whose layer record (this action's, in the store cache) holds this mapping:
   *  trusted unchecked only by a push to that same repository. */
  recordedFor?: string;
}

/** The layers of a single-image manifest with their diff ids (from its config) and key annotations. */
export function knownLayers(manifestBytes: Buffer, configBytes: Buffer): KnownLayer[] {
  let manifest: ParsedManifest;
  let config: { rootfs?: { diff_ids?: unknown } };
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as ParsedManifest;
    config = JSON.parse(configBytes.toString('utf8')) as typeof config;
  } catch {
    return [];
  }
  const diffIDs = config.rootfs?.diff_ids;
  const layers = manifest.layers;
  if (!Array.isArray(diffIDs) || !Array.isArray(layers) || diffIDs.length !== layers.length) return [];
  const found: KnownLayer[] = [];
  layers.forEach((layer, i) => {
    const diffID = diffIDs[i];
    const mediaType = pushedLayerType(layer.mediaType);
    if (typeof diffID !== 'string' || !mediaType || typeof layer.digest !== 'string' || !Number.isInteger(layer.size)) return;
    const key = layer.annotations?.[LAYER_KEY_ANNOTATION];
    found.push({
      diffID,
      desc: { mediaType, digest: layer.digest, size: layer.size },
      ...(typeof key === 'string' ? { key } : {}),
    });
  });
  return found;
}

