// What, besides the image derivation, shapes the bytes this action pushes: the layer makers' and the
// compressor's versions and the manifest's form (and, as such inputs come, labels and annotations). Their
// digest and the derivation are recorded on every pushed manifest, so a later job that evaluates the same
// derivation with the same settings finds the image in the registry and builds nothing
// (registry/existing.ts); any change here must change the digest.
import { createHash } from 'node:crypto';
import { compressorID } from './compress.js';
import { LAYER_MAKER_VERSION } from './store-layer.js';

/** Manifest annotations naming what produced the image. */
export const PRODUCER_ANNOTATIONS = {
  derivation: 'io.github.nix-image-action.derivation',
  settings: 'io.github.nix-image-action.settings',
} as const;

export interface ImageSettings {
  compressionLevel?: number;
}

/** sha256 of every setting that changes a pushed byte for a given derivation. */
export function settingsDigest(s: ImageSettings = {}): string {
  const shaping = {
    compressor: compressorID(s.compressionLevel),
    storeLayer: `store-layer/${LAYER_MAKER_VERSION}`,
    customisationLayer: 'customisation-layer/1',
    manifest: 'oci-image-manifest/layer-keys/1',
  };
  return `sha256:${createHash('sha256').update(JSON.stringify(shaping)).digest('hex')}`;
}

export function producerAnnotations(drvPath: string, s: ImageSettings = {}): Record<string, string> {
  return { [PRODUCER_ANNOTATIONS.derivation]: drvPath, [PRODUCER_ANNOTATIONS.settings]: settingsDigest(s) };
}
