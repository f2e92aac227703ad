// The store paths whose files are in an image: every path of every store layer, and what the dockerTools
// customisation layer links to (its `contents` are symlinks into the store). A layer whose store paths are
// not known (an archive without dockerTools' history comments) is read: its store paths are the top
// directories under the store directory in its tar.
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { readLayers } from './archive.js';
import type { ImageSource } from './types.js';

export const DEFAULT_STORE_DIR = '/nix/store';

/** The store path holding `path` (a path in the image, absolute or relative to its root), if it is in the store. */
function storePathOf(path: string, storeDir: string): string | undefined {
  const rel = posix.normalize(`/${path}`);
  const prefix = `${storeDir}/`;
  if (!rel.startsWith(prefix)) return undefined;
  const top = rel.slice(prefix.length).split('/')[0];
  return top ? `${storeDir}/${top}` : undefined;
}

/** The store paths a layer tar holds (its entries under the store directory) and those its symlinks point into. */
export function scanLayerTar(tar: Readable, storeDir = DEFAULT_STORE_DIR): Promise<{ held: Set<string>; linked: Set<string> }> {
  const held = new Set<string>();
  const linked = new Set<string>();
  return new Promise((resolve, reject) => {
    const ex = extract();
    ex.on('entry', (header, body, next) => {
      const inStore = storePathOf(header.name, storeDir);
      if (inStore) held.add(inStore);
      if (header.type === 'symlink' && header.linkname) {
        const target = header.linkname.startsWith('/') ? header.linkname : posix.join(posix.dirname(`/${header.name}`), header.linkname);
        const to = storePathOf(target, storeDir);
        if (to) linked.add(to);
      }
      body.on('end', () => next());
      body.on('error', reject);
      body.resume();
    });
    ex.on('finish', () => resolve({ held, linked }));
    ex.on('error', reject);
    tar.on('error', reject);
    tar.pipe(ex);
  });
}

/** A dockerTools customisation layer: a store path holding `layer.tar` and `checksum` (readable: true), or
 *  one named as nixpkgs names it that this store does not hold (readable: false). */
async function customisationLayer(path: string): Promise<{ readable: boolean } | undefined> {
  try {
    await access(join(path, 'layer.tar'));
    await access(join(path, 'checksum'));
    return { readable: true };
  } catch {
    return path.endsWith('-customisation-layer') ? { readable: false } : undefined;
  }
}

/** The store paths in every layer of an archive, read from the layers themselves. */
export async function archiveStorePaths(source: ImageSource, storeDir = DEFAULT_STORE_DIR): Promise<string[]> {
  const found = new Set<string>();
  await readLayers(source, async (_entry, open) => {
    const { held, linked } = await scanLayerTar(open(), storeDir);
    for (const p of [...held, ...linked]) found.add(p);
  });
  return [...found].sort();
}

export interface ImageStorePathsOptions {
  /** Per layer, the store paths it holds where known (the push result's layers, the plan's layers). */
  layers: (string[] | undefined)[];
  /** The archive, read when a layer's store paths are not known. */
  archive?: ImageSource;
  storeDir?: string;
}

/**
 * The store paths of the image, sorted. A customisation layer named as a layer's store path stands for
 * what its layer.tar holds in the store and links to, not for itself (its files are not in the image).
 * Undefined when some layer's store paths are unknown (or its customisation layer is not in this store)
 * and there is no archive to read.
 */
export async function imageStorePaths(opts: ImageStorePathsOptions): Promise<string[] | undefined> {
  const storeDir = opts.storeDir ?? DEFAULT_STORE_DIR;
  if (opts.layers.length === 0 || opts.layers.some((l) => l === undefined)) {
    return opts.archive ? archiveStorePaths(opts.archive, storeDir) : undefined;
  }
  const found = new Set<string>();
  for (const paths of opts.layers as string[][]) {
    const custom = paths.length === 1 ? await customisationLayer(paths[0]!) : undefined;
    if (!custom) {
      for (const path of paths) found.add(path);
    } else if (custom.readable) {
      const { held, linked } = await scanLayerTar(createReadStream(join(paths[0]!, 'layer.tar')), storeDir);
      for (const p of [...held, ...linked]) found.add(p);
    } else if (opts.archive) {
      return archiveStorePaths(opts.archive, storeDir);
    } else {
      return undefined;
    }
  }
  return [...found].sort();
}
