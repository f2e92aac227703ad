// Image inputs for the push: a docker-archive read from the store (any format detectSource recognises),
// or layers made in-process from a dockerTools layer plan. The push sees only LayerSource and LayerListing,
// never which one it reads.
import { pipeline, type Readable } from 'node:stream';
import { ArchiveError, readLayers } from './archive.js';
import { isStorePath, storePathsTap } from './store-paths.js';
import type { ImageInput, ImageSource, LayerListing } from './types.js';

export class ImageMismatchError extends Error {
  override name = 'ImageMismatchError';
}

/** The store paths of each layer from dockerTools' history comments (`store paths: ['/nix/store/…']`). The
 *  archive's word: a comment naming anything but store paths (a relative name, an option-like string)
 *  lists nothing, and the layer is read for its paths like one without a comment. */
export function historyStorePaths(configBytes: Buffer): (string[] | undefined)[] {
  let config: { history?: { comment?: unknown; empty_layer?: unknown }[] };
  try {
    config = JSON.parse(configBytes.toString('utf8')) as typeof config;
  } catch {
    return [];
  }
  return (config.history ?? [])
    .filter((h) => h.empty_layer !== true)
    .map((h) => {
      const m = typeof h.comment === 'string' ? /^store paths: \[(.*)\]$/.exec(h.comment) : null;
      if (!m) return undefined;
      const paths = [...m[1]!.matchAll(/'([^'\\]*)'/g)].map((p) => p[1]!);
      return paths.every((p) => isStorePath(p)) ? paths : undefined;
    });
}

/**
 * A docker-archive: layers are visited as the archive holds them; the config is the archive's own.
 * `keys` (config order), when the archive is the output of a recognised plan read anyway, annotate the
 * layers as the plan's own push would, so both give the same manifest. With `scanStorePaths`, a layer
 * the config's history does not list store paths for gets those its tar holds and links into, when the
 * push reads it whole (a layer the registry already holds is not read, and stays unlisted).
 */
export function archiveInput(source: ImageSource, opts: { keys?: (string | undefined)[]; scanStorePaths?: boolean } = {}): ImageInput {
  return {
    description: `${source.format} ${source.path}`,
    async readLayers(visit): Promise<LayerListing> {
      // A layer read whole on the way to the push gives its store paths too (for the SBOM): no second read.
      const scanned = new Map<string, string[]>();
      const tapped = (name: string, open: () => Readable) => (): Readable => pipeline(open(), storePathsTap((paths) => scanned.set(name, paths)), () => undefined);
      const meta = await readLayers(source, (entry, open) =>
        visit({ name: entry.name, seekable: entry.seekable, ...(entry.diffIDHint ? { diffIDHint: entry.diffIDHint } : {}) }, opts.scanStorePaths ? tapped(entry.name, open) : open),
      );
      const order = meta.manifest.layers.map((name) => meta.aliases?.[name] ?? name);
      const keys = opts.keys;
      const history = historyStorePaths(meta.config.bytes);
      if (keys && keys.length !== order.length) {
        throw new ArchiveError(`${source.path} has ${order.length} layers, but its derivation's plan has ${keys.length}`);
      }
      return {
        order,
        config(diffIDs) {
          diffIDs.forEach((d, i) => {
            if (d !== meta.config.diffIDs[i]) {
              throw new ImageMismatchError(`layer ${i} (${order[i]}) has diff id ${d}, but the image config says ${meta.config.diffIDs[i]}`);
            }
          });
          return meta.config.bytes;
        },
        ...(keys ? { keys } : {}),
        // A getter: a plain .tar's layers are compressed in the background, their scans ending after this returns.
        get storePaths() {
          return order.map((name, i) => history[i] ?? scanned.get(name));
        },
      };
    },
  };
}
