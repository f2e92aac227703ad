// Layers made from a dockerTools layer plan (image/types.ts StorePlan, read from the image's derivation by nix/):
// each store layer's tar is made in-process from the store, byte for byte what nixpkgs'
// stream_layered_image.py writes for it; the customisation layer is the layer.tar nixpkgs already built.
// No archive is built, compressed or inflated. Each layer carries a key naming what fixes its bytes, so a
// later push whose layer has the same key reuses the registry's blob without making the layer at all.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compressorID, type Compression } from './compress.js';
import { imageConfigBytes, parseTime, type ConfigSource } from './docker-config.js';
import { isJsonObject, parsePythonJson, type JsonValue } from './pyjson.js';
import { checkLayerInputs, LAYER_MAKER_VERSION, storeLayerTar, UnsupportedImageError, type TarParams } from './store-layer.js';
import type { ImageInput, LayerListing, StorePlan } from './types.js';
import { READ_CHUNK, sha256Digest } from '../hash.js';

export type { StorePlan };

export { UnsupportedImageError };

/** The tar parameters of the plan's store layers; throws UnsupportedImageError for a time we cannot make exactly. */
export function tarParams(plan: StorePlan): TarParams {
  return { mtime: parseTime(plan.mtime).epochSeconds, uid: plan.uid, gid: plan.gid, uname: plan.uname, gname: plan.gname, storeDir: plan.storeDir };
}

/** What the image config is made from; throws UnsupportedImageError for a value we cannot write exactly. */
export function configSource(plan: StorePlan): ConfigSource {
  parseTime(plan.created);
  const conf = parsePythonJson(plan.confText);
  const config: JsonValue | undefined = isJsonObject(conf) ? conf.get('config') : undefined;
  if (!isJsonObject(config)) throw new UnsupportedImageError("the conf's config is not an object");
  return { created: plan.created, architecture: plan.architecture, config, storeLayers: plan.storeLayers, customisationLayer: plan.customisationLayer };
}

function digestOf(value: unknown): string {
  return sha256Digest(JSON.stringify(value));
}

/** The key of a store layer: its paths, the tar parameters, the layer maker's and the compressor's versions
 *  (gzip or zstd, the level, and for zstd the implementation: a zstd key never names a gzip blob). */
export function storeLayerKey(paths: string[], tar: TarParams, compression?: Compression): string {
  return digestOf({ maker: `store-layer/${LAYER_MAKER_VERSION}`, compressor: compressorID(compression), paths, tar });
}

/** The key of a customisation layer: its store path fixes its layer.tar. */
export function customisationLayerKey(path: string, compression?: Compression): string {
  return digestOf({ maker: 'customisation-layer/1', compressor: compressorID(compression), path });
}

/** The diff id nixpkgs recorded beside the customisation layer's layer.tar. */
export async function customisationDiffID(path: string): Promise<string> {
  const checksum = (await readFile(join(path, 'checksum'), 'utf8')).trim();
  if (!/^[0-9a-f]{64}$/.test(checksum)) throw new Error(`${path}/checksum does not hold a sha256: "${checksum.slice(0, 80)}"`);
  return `sha256:${checksum}`;
}

/** The keys of a plan's layers, in config order (store layers, then the customisation layer). */
export function planKeys(plan: StorePlan, compression?: Compression): string[] {
  const tar = tarParams(plan);
  return [...plan.storeLayers.map((paths) => storeLayerKey(paths, tar, compression)), customisationLayerKey(plan.customisationLayer, compression)];
}

/** `compression` must be the one the push compresses with: it is part of every key. */
export function planInput(plan: StorePlan, opts: { compression?: Compression } = {}): ImageInput {
  // Everything that could refuse the plan does so here, before anything is made or pushed.
  const tar = tarParams(plan);
  for (const paths of plan.storeLayers) checkLayerInputs(paths, tar);
  const source = configSource(plan);
  const names = plan.storeLayers.map((_, i) => `layer ${i + 1}`);
  const custName = `layer ${plan.storeLayers.length + 1} (customisation)`;
  const keys = planKeys(plan, opts.compression);
  return {
    description: `${plan.storeLayers.length + 1} layers made from the store (dockerTools layer plan)`,
    async readLayers(visit): Promise<LayerListing> {
      for (const [i, paths] of plan.storeLayers.entries()) {
        await visit({ name: names[i]!, key: keys[i]!, storePaths: paths, seekable: true }, () => storeLayerTar(paths, tar));
      }
      const custTar = join(plan.customisationLayer, 'layer.tar');
      await visit(
        { name: custName, key: keys.at(-1)!, diffIDHint: await customisationDiffID(plan.customisationLayer), storePaths: [plan.customisationLayer], seekable: true },
        () => createReadStream(custTar, { highWaterMark: READ_CHUNK }),
      );
      return {
        order: [...names, custName],
        config: (diffIDs) => imageConfigBytes(source, diffIDs),
        keys,
        storePaths: [...plan.storeLayers, [plan.customisationLayer]],
      };
    },
  };
}
