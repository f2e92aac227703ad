// Image archives in the exact layouts dockerTools writes, without nixpkgs:
// - 'layered' (buildLayeredImage / streamLayeredImage): `<diff id>/layer.tar` per layer, then
//   `<config sha256>.json`, then manifest.json, as stream_layered_image.py writes them;
// - 'buildImage': `<layer id>/{VERSION,json,layer.tar}` directories, `<config sha256>.json`, manifest.json
//   and `repositories`, sorted by name as buildImage's `tar --sort=name` writes them.
// Compressed like nixpkgs does it: gzip (`pigz -nT`), zstd, or none. Layers are generated as streams so
// benchmarks can make images of any size without holding them in memory.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { HashingStream } from '../../src/hash.js';
import { nixBase32 } from '../../src/nix/store.js';
import './tmp.js'; // temporary directories go with the process (support/tmp.ts)

export type Compression = 'none' | 'gzip' | 'zstd';
export type ArchiveLayout = 'layered' | 'buildImage';

export interface LayerSpec {
  /** Bytes of the one file in the layer. */
  size: number;
  /** Determines the content: same seed and size, same layer, same diff id. */
  seed: string;
  /** Repetitive text (true) or random-looking bytes (false). */
  compressible: boolean;
  /** Take the bytes from this file instead (from an offset the seed picks, wrapping around): real binaries
   *  compress like real layers do, which repetitive text does not. */
  corpus?: string;
}

export interface ArchiveOptions {
  dir: string;
  name: string;
  compression: Compression;
  layout?: ArchiveLayout;
  layers: LayerSpec[];
  /** Leave out the history's `store paths: […]` comments (a hand-made or buildImage archive). */
  noHistoryPaths?: boolean;
}

export interface MadeArchive {
  path: string;
  configDigest: string;
  diffIDs: string[];
}

const MTIME = new Date(1000); // dockerTools' default mtime: 1970-01-01T00:00:01Z
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The layer file's bytes, as a stream of 64 KiB chunks. */
export function layerContent(spec: LayerSpec): Readable {
  const chunk = 64 * 1024;
  let left = spec.size;
  if (spec.corpus) {
    const fd = openSync(spec.corpus, 'r');
    const length = fstatSync(fd).size;
    let at = createHash('sha256').update(spec.seed).digest().readUInt32BE(0) % length;
    return new Readable({
      read() {
        if (left === 0) {
          closeSync(fd);
          return void this.push(null);
        }
        const n = Math.min(chunk, left, length - at);
        const buf = Buffer.allocUnsafe(n);
        readSync(fd, buf, 0, n, at);
        at = (at + n) % length;
        left -= n;
        this.push(buf);
      },
    });
  }
  if (spec.compressible) {
    const line = Buffer.from(`${spec.seed}: the quick brown fox jumps over the lazy dog 0123456789\n`);
    const block = Buffer.alloc(chunk);
    for (let i = 0; i < chunk; i += line.length) line.copy(block, i);
    return new Readable({
      read() {
        if (left === 0) return void this.push(null);
        const n = Math.min(chunk, left);
        left -= n;
        this.push(Buffer.from(block.subarray(0, n)));
      },
    });
  }
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(spec.seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(chunk);
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(chunk, left);
      left -= n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

/** The store path a fixture layer holds: `/nix/store/<32 characters of Nix's base-32>-<seed>`. */
export function fixtureStorePath(seed: string): string {
  return `/nix/store/${nixBase32(createHash('sha256').update(seed).digest()).slice(0, 32)}-${seed.replace(/[^a-zA-Z0-9._-]/g, '_')}`;
}

/** Writes one layer.tar (a tar holding nix/store/<hash>-<seed>/data) to a file; returns its sha256 and size. */
async function writeLayerTar(spec: LayerSpec, file: string): Promise<{ hex: string; size: number }> {
  const p = pack();
  const hasher = new HashingStream();
  const written = pipeline(p, hasher, createWriteStream(file));
  const dir = fixtureStorePath(spec.seed).slice(1);
  for (const d of ['nix/', 'nix/store/', `${dir}/`]) p.entry({ name: d, type: 'directory', mode: 0o555, mtime: MTIME, uid: 0, gid: 0 });
  const entry = p.entry({ name: `${dir}/data`, size: spec.size, mode: 0o444, mtime: MTIME, uid: 0, gid: 0 });
  await pipeline(layerContent(spec), entry);
  p.finalize();
  await written;
  return { hex: hasher.hash.digest('hex'), size: hasher.bytes };
}

function addBytes(p: ReturnType<typeof pack>, name: string, bytes: Buffer | string): void {
  p.entry({ name, mode: 0o444, mtime: MTIME, uid: 0, gid: 0 }, Buffer.from(bytes));
}

async function addFile(p: ReturnType<typeof pack>, name: string, file: string, size: number): Promise<void> {
  const entry = p.entry({ name, size, mode: 0o444, mtime: MTIME, uid: 0, gid: 0 });
  await pipeline(createReadStream(file), entry);
}

export async function makeImageArchive(opts: ArchiveOptions): Promise<MadeArchive> {
  const layout = opts.layout ?? 'layered';
  const work = await mkdtemp(join(opts.dir, '.layers-'));
  try {
    const layers: { hex: string; size: number; file: string }[] = [];
    for (const [i, spec] of opts.layers.entries()) {
      const file = join(work, `${i}.tar`);
      layers.push({ ...(await writeLayerTar(spec, file)), file });
    }
    const diffIDs = layers.map((l) => `sha256:${l.hex}`);
    const config = Buffer.from(
      JSON.stringify(
        {
          created: '1970-01-01T00:00:01+00:00',
          architecture: 'amd64',
          os: 'linux',
          config: { Cmd: ['/bin/hello'], Env: ['PATH=/bin'] },
          rootfs: { diff_ids: diffIDs, type: 'layers' },
          history: opts.layers.map((l) => ({ created: '1970-01-01T00:00:01+00:00', ...(opts.noHistoryPaths ? {} : { comment: `store paths: ['${fixtureStorePath(l.seed)}']` }) })),
        },
        null,
        4,
      ),
    );
    const configName = `${sha256(config)}.json`;
    // buildImage names layer directories by a chained id, not by diff id.
    let parent = '';
    const layerDirs = layers.map((l) => (layout === 'layered' ? l.hex : (parent = sha256(`${parent}:${l.hex}`))));
    const manifest = Buffer.from(
      JSON.stringify([{ Config: configName, RepoTags: [`${opts.name}:latest`], Layers: layerDirs.map((d) => `${d}/layer.tar`) }], null, 4),
    );

    const ext = { none: '.tar', gzip: '.tar.gz', zstd: '.tar.zst' }[opts.compression];
    const path = join(opts.dir, `${opts.name}${ext}`);
    const p = pack();
    const sink = createWriteStream(path);
    let written: Promise<void>;
    if (opts.compression === 'zstd') {
      const child = spawn('zstd', ['-q', '-c', '-3'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const exited = new Promise<void>((res, rej) => child.on('close', (c) => (c === 0 ? res() : rej(new Error(`zstd exited ${c}`)))));
      written = Promise.all([pipeline(p, child.stdin), pipeline(child.stdout, sink), exited]).then(() => undefined);
    } else {
      // nixpkgs compresses with pigz -nT: no name, no timestamp, as Node's gzip writes it.
      written = opts.compression === 'gzip' ? pipeline(p, createGzip({ level: 1 }), sink) : pipeline(p, sink);
    }

    if (layout === 'layered') {
      for (const [i, l] of layers.entries()) await addFile(p, `${layerDirs[i]}/layer.tar`, l.file, l.size);
      addBytes(p, configName, config);
      addBytes(p, 'manifest.json', manifest);
    } else {
      // Sorted by name, as `tar --sort=name` does: hex names, then manifest.json, then repositories.
      const entries: [string, () => Promise<void> | void][] = [];
      for (const [i, l] of layers.entries()) {
        const d = layerDirs[i]!;
        entries.push([`${d}/`, () => void p.entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: MTIME })]);
        entries.push([`${d}/VERSION`, () => addBytes(p, `${d}/VERSION`, '1.0')]);
        entries.push([`${d}/json`, () => addBytes(p, `${d}/json`, JSON.stringify({ id: d, ...(i > 0 ? { parent: layerDirs[i - 1] } : {}) }))]);
        entries.push([`${d}/layer.tar`, () => addFile(p, `${d}/layer.tar`, l.file, l.size)]);
      }
      entries.push([configName, () => addBytes(p, configName, config)]);
      entries.push(['manifest.json', () => addBytes(p, 'manifest.json', manifest)]);
      const last = layerDirs[layerDirs.length - 1];
      entries.push(['repositories', () => addBytes(p, 'repositories', JSON.stringify({ [opts.name]: { latest: last } }))]);
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      for (const [, add] of entries) await add();
    }
    p.finalize();
    await written;
    return { path, configDigest: `sha256:${sha256(config)}`, diffIDs };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
