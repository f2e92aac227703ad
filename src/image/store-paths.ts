// The store paths whose files are in an image: every path of every store layer, and what the dockerTools
// customisation layer links to (its `contents` are symlinks into the store). A layer whose store paths are
// not known (an archive without dockerTools' history comments) is read: its store paths are the top
// directories under the store directory in its tar.
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Transform } from 'node:stream';
import { readLayers } from './archive.js';
import { TarNames } from './tar-header.js';
import type { ImageSource } from './types.js';
import { READ_CHUNK } from '../hash.js';

export const DEFAULT_STORE_DIR = '/nix/store';

/** A store path's last part as Nix makes it: 32 characters of Nix's base-32, a dash, a name. */
const STORE_NAME = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/** A store path: directly in the store directory, a store name. What an image's files or history claim to
 *  be a store path goes to Nix only when it is one (Nix refuses a whole query over one malformed path or
 *  one outside its store, and would resolve a relative one against the working directory). */
export function isStorePath(path: string, storeDir = DEFAULT_STORE_DIR): boolean {
  return path.startsWith(`${storeDir}/`) && STORE_NAME.test(path.slice(storeDir.length + 1));
}

/** The store path holding `path` (a path in the image, absolute or relative to its root), if it is in the store. */
function storePathOf(path: string, storeDir: string): string | undefined {
  const rel = posix.normalize(`/${path}`);
  const prefix = `${storeDir}/`;
  if (!rel.startsWith(prefix)) return undefined;
  const top = rel.slice(prefix.length).split('/')[0];
  return top && STORE_NAME.test(top) ? `${storeDir}/${top}` : undefined;
}

/** The store paths a tar's entries are in (held) and its symlinks point into (linked), gathered as it passes. */
class StorePathsOfTar {
  readonly held = new Set<string>();
  readonly linked = new Set<string>();
  readonly names: TarNames;

  constructor(storeDir: string) {
    this.names = new TarNames((entry) => {
      const inStore = storePathOf(entry.name, storeDir);
      if (inStore) this.held.add(inStore);
      if (entry.flag === '2' && entry.linkname) {
        const target = entry.linkname.startsWith('/') ? entry.linkname : posix.join(posix.dirname(`/${entry.name}`), entry.linkname);
        const to = storePathOf(target, storeDir);
        if (to) this.linked.add(to);
      }
    });
  }

  /** Both, sorted. */
  all(): string[] {
    return [...new Set([...this.held, ...this.linked])].sort();
  }
}

/** The store paths a layer tar holds (its entries under the store directory) and those its symlinks point into, sorted. */
export async function scanLayerTar(tar: AsyncIterable<Buffer>, storeDir = DEFAULT_STORE_DIR): Promise<string[]> {
  const scan = new StorePathsOfTar(storeDir);
  for await (const chunk of tar) scan.names.write(chunk);
  return scan.all();
}

/**
 * A pass-through that reads the store paths of the layer tar going through it (held and linked, as
 * scanLayerTar): `onPaths` hears them once the whole tar has passed, never for a stream cut short. Chunks
 * go on as they came (no copy); only headers are parsed.
 */
export function storePathsTap(onPaths: (paths: string[]) => void, storeDir = DEFAULT_STORE_DIR): Transform {
  const scan = new StorePathsOfTar(storeDir);
  return new Transform({
    // 1 MiB pieces pass without a pause, as the readers feeding it read them.
    readableHighWaterMark: READ_CHUNK,
    writableHighWaterMark: READ_CHUNK,
    transform(chunk: Buffer, _enc, done) {
      scan.names.write(chunk);
      done(null, chunk);
    },
    flush(done) {
      onPaths(scan.all());
      done();
    },
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

/** The store paths in the layers of an archive, read from the layers themselves: every layer but those whose
 *  directory is named by a diff id in `skip` (their paths are known). A name is only a hint: a directory
 *  named otherwise (a v1 layer id) is read. A layer skipped is never opened (a plain .tar is seeked past it). */
export async function archiveStorePaths(source: ImageSource, storeDir = DEFAULT_STORE_DIR, skip?: Set<string>): Promise<string[]> {
  const found = new Set<string>();
  await readLayers(source, async (entry, open) => {
    if (skip && entry.diffIDHint && skip.has(entry.diffIDHint)) return;
    for (const p of await scanLayerTar(open(), storeDir)) found.add(p);
  });
  return [...found].sort();
}

export interface ImageStorePathsOptions {
  /** Per layer, the store paths it holds where known (the push result's layers, the plan's layers). */
  layers: (string[] | undefined)[];
  /** Per layer, its diff id: with it, only the layers whose paths are not known are read from the archive. */
  diffIDs?: string[];
  /** The archive, read when a layer's store paths are not known. */
  archive?: ImageSource;
  storeDir?: string;
}

/**
 * The store paths of the image, sorted. A customisation layer named as a layer's store path stands for
 * what its layer.tar holds in the store and links to, not for itself (its files are not in the image).
 * A layer whose paths are not known (or whose customisation layer is not in this store) is read from the
 * archive: only that layer when `diffIDs` says which it is, else the whole archive. Undefined when such a
 * layer has no archive to be read from.
 */
export async function imageStorePaths(opts: ImageStorePathsOptions): Promise<string[] | undefined> {
  const storeDir = opts.storeDir ?? DEFAULT_STORE_DIR;
  if (opts.layers.length === 0) return opts.archive ? archiveStorePaths(opts.archive, storeDir) : undefined;
  const found = new Set<string>();
  const known = new Set<string>();
  let unknown = false;
  for (const [i, paths] of opts.layers.entries()) {
    const custom = paths?.length === 1 ? await customisationLayer(paths[0]!) : undefined;
    if (paths && !custom) {
      for (const path of paths) found.add(path);
    } else if (custom?.readable) {
      for (const p of await scanLayerTar(createReadStream(join(paths![0]!, 'layer.tar'), { highWaterMark: READ_CHUNK }), storeDir)) found.add(p);
    } else {
      unknown = true;
      continue;
    }
    const diffID = opts.diffIDs?.[i];
    if (diffID) known.add(diffID);
  }
  if (unknown) {
    if (!opts.archive) return undefined;
    // Every layer but those known by their diff id: a directory name that is not one is read all the same.
    for (const p of await archiveStorePaths(opts.archive, storeDir, known)) found.add(p);
  }
  return [...found].sort();
}
