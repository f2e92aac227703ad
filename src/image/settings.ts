// What, besides the image derivation, shapes the bytes this action pushes: the way the layers are read
// (layers-from), the versions of every writer (store layers, customisation layer, config, compressor,
// manifest), the labels and the annotations asked for. Their
// digest and the derivation are recorded on every pushed manifest, so a later job that evaluates the same
// derivation with the same settings finds the image in the registry and builds nothing
// (registry/existing.ts); any change here must change the digest.
import { compressorID, type Compression } from './compress.js';
import { LAYER_MAKER_VERSION } from './store-layer.js';
import { sha256Digest } from '../hash.js';

/** Manifest annotations naming what produced the image. */
export const PRODUCER_ANNOTATIONS = {
  derivation: 'io.github.nix-image-action.derivation',
  settings: 'io.github.nix-image-action.settings',
} as const;

/** Bumped whenever a writer of pushed bytes changes what it writes for the same input. */
export const WRITER_VERSIONS = {
  customisationLayer: 'customisation-layer/1',
  config: 'docker-config/pyjson-indent4/1',
  labels: 'labels/1',
  manifest: 'oci-image-manifest/layer-keys/1',
} as const;

export interface ImageSettings {
  /** The compression input: gzip or zstd and the level (and, for zstd, the implementation: see compressorID). */
  compression?: Compression;
  /** The layers-from input: which way the layers are read changes what the manifest records. */
  layersFrom?: string;
  /** The labels input (into the config) and the manifest annotations the user asked for. */
  labels?: [string, string][];
  annotations?: [string, string][];
}

/** sha256 of every setting that changes a pushed byte for a given derivation. */
export function settingsDigest(s: ImageSettings = {}): string {
  const shaping = {
    compressor: compressorID(s.compression),
    storeLayer: `store-layer/${LAYER_MAKER_VERSION}`,
    ...WRITER_VERSIONS,
    layersFrom: s.layersFrom ?? 'auto',
    labels: s.labels ?? [],
    annotations: s.annotations ?? [],
  };
  return sha256Digest(JSON.stringify(shaping));
}

export function producerAnnotations(drvPath: string, s: ImageSettings = {}): Record<string, string> {
  return { [PRODUCER_ANNOTATIONS.derivation]: drvPath, [PRODUCER_ANNOTATIONS.settings]: settingsDigest(s) };
}

export const SOURCE_ANNOTATION = 'org.opencontainers.image.source';

/**
 * The annotations the pushed manifest carries besides the producer's: `org.opencontainers.image.source`,
 * the repository URL (the same on every commit, so it never changes a digest from one commit to the next;
 * ghcr.io links the package to the repository by it), then the user's, which win; a key given an empty
 * value is left out.
 */
export function manifestAnnotations(user: [string, string][], env: NodeJS.ProcessEnv = process.env): [string, string][] {
  const out = new Map<string, string>();
  if (env.GITHUB_REPOSITORY) out.set(SOURCE_ANNOTATION, `${(env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '')}/${env.GITHUB_REPOSITORY}`);
  for (const [k, v] of user) out.set(k, v);
  return [...out].filter(([, v]) => v !== '');
}
