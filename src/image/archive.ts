// Reads a docker-archive as a stream, once: layer bodies go to a visitor one at a time (never held in
// memory), small JSON entries are kept, and the metadata (manifest.json and the config) is returned at
// the end, where streamLayeredImage and buildImage both put it.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { createHash } from 'node:crypto';
import type { ArchiveManifest, ImageMetadata, ImageSource, LayerEntry } from './types.js';

export class ArchiveError extends Error {
  override name = 'ArchiveError';
}

/** Largest non-layer entry we keep in memory (configs and manifests are a few KiB). */
const SMALL_ENTRY = 8 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

interface Opened {
  stream: Readable;
  /** Resolves when the producer (a stream script or an external decompressor) has exited cleanly. */
  done: Promise<void>;
}

function runProducer(command: string, args: string[], what: string): Opened {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => reject(new ArchiveError(`${what}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const last = stderr.trim().split('\n').slice(-3).join(' / ');
        reject(new ArchiveError(`${what} exited with ${signal ?? `code ${code}`}${last ? `: ${last}` : ''}`));
      }
    });
  });
  done.catch(() => undefined);
  return { stream: child.stdout, done };
}

function zstdDecompressor(): NodeJS.ReadWriteStream | undefined {
  const make = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream }).createZstdDecompress;
  return make?.();
}

/** The uncompressed tar stream of an image source. */
export function openArchive(source: ImageSource): Opened {
  switch (source.format) {
    case 'stream':
      return runProducer(source.path, [], `the image stream script ${source.path}`);
    case 'docker-archive':
      return { stream: createReadStream(source.path), done: Promise.resolve() };
    case 'docker-archive+gzip': {
      const out = createReadStream(source.path).pipe(zlib.createGunzip());
      return { stream: out as unknown as Readable, done: Promise.resolve() };
    }
    case 'docker-archive+zstd': {
      // Node 24 decompresses zstd itself; older Node falls back to the zstd command.
      const native = zstdDecompressor();
      if (native) return { stream: createReadStream(source.path).pipe(native) as unknown as Readable, done: Promise.resolve() };
      return runProducer('zstd', ['-d', '-c', '-q', source.path], `zstd -d ${source.path}`);
    }
  }
}

function parseManifest(bytes: Buffer, where: string): ArchiveManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ArchiveError(`${where}: manifest.json is not valid JSON`);
  }
  const first = Array.isArray(parsed) ? (parsed[0] as Record<string, unknown> | undefined) : undefined;
  if (!Array.isArray(parsed) || parsed.length !== 1 || !first) {
    throw new ArchiveError(`${where}: manifest.json must describe exactly one image, found ${Array.isArray(parsed) ? parsed.length : 'no list'}`);
  }
  const config = first.Config;
  const layers = first.Layers;
  if (typeof config !== 'string' || !Array.isArray(layers) || !layers.every((l) => typeof l === 'string')) {
    throw new ArchiveError(`${where}: manifest.json lacks Config or Layers`);
  }
  const repoTags = Array.isArray(first.RepoTags) ? first.RepoTags.filter((t): t is string => typeof t === 'string') : [];
  return { config, layers: layers as string[], repoTags };
}

function normalise(name: string): string {
  return posix.normalize(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

/** Parses the config blob and checks it against the manifest. */
function parseConfig(bytes: Buffer, manifest: ArchiveManifest, where: string): ImageMetadata['config'] {
  let config: { rootfs?: { diff_ids?: unknown } };
  try {
    config = JSON.parse(bytes.toString('utf8')) as typeof config;
  } catch {
    throw new ArchiveError(`${where}: the image config ${manifest.config} is not valid JSON`);
  }
  const diffIDs = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIDs) || !diffIDs.every((d) => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new ArchiveError(`${where}: the image config ${manifest.config} has no valid rootfs.diff_ids`);
  }
  if (diffIDs.length !== manifest.layers.length) {
    throw new ArchiveError(
      `${where}: the config lists ${diffIDs.length} diff ids but manifest.json lists ${manifest.layers.length} layers`,
    );
  }
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { bytes, digest, diffIDs: diffIDs as string[] };
}

export type LayerVisitor = (entry: LayerEntry, body: Readable) => Promise<void>;

/**
 * Reads the archive once. Every regular `…/layer.tar` entry is handed to `visit` (which must consume
 * the body); the archive waits for the visitor before reading on. Returns the metadata, with `aliases`
 * for layer entries that are links to another entry (docker save writes duplicate layers that way).
 */
export async function readLayers(source: ImageSource, visit: LayerVisitor): Promise<ImageMetadata> {
  const where = source.path;
  const opened = openArchive(source);
  const small = new Map<string, Buffer>();
  const aliases: Record<string, string> = {};
  const ex = extract();

  const reading = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header: Header, entryStream, next) => {
      // tar-stream hands out streamx streams; visitors get a Node stream.
      const body = Readable.from(entryStream, { objectMode: false });
      const name = normalise(header.name);
      const handle = async (): Promise<void> => {
        if ((header.type === 'symlink' || header.type === 'link') && header.linkname && name.endsWith('layer.tar')) {
          const target = header.type === 'symlink' ? posix.join(posix.dirname(name), header.linkname) : header.linkname;
          aliases[name] = normalise(target);
          body.resume();
          return;
        }
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          body.resume();
          return;
        }
        if (posix.basename(name) === 'layer.tar') {
          const dir = name.split('/')[0] ?? '';
          await visit({ name, size: header.size ?? 0, ...(HEX64.test(dir) ? { diffIDHint: `sha256:${dir}` } : {}) }, body);
          return;
        }
        if ((header.size ?? 0) <= SMALL_ENTRY && (name.endsWith('.json') || name === 'manifest.json')) {
          const chunks: Buffer[] = [];
          for await (const c of body) chunks.push(c as Buffer);
          small.set(name, Buffer.concat(chunks));
          return;
        }
        body.resume();
      };
      handle().then(
        () => next(),
        (e: unknown) => next(e instanceof Error ? e : new Error(String(e))),
      );
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
    opened.stream.on('error', (e: Error) => reject(new ArchiveError(`${where}: ${e.message}`)));
  });
  opened.stream.pipe(ex);
  try {
    await reading;
  } catch (e) {
    opened.stream.destroy();
    if (e instanceof ArchiveError) throw e;
    // A producer that died explains a truncated archive better than the tar parser does.
    await opened.done;
    throw e instanceof Error && /Unexpected end|unexpected end|invalid header/i.test(e.message)
      ? new ArchiveError(`${where} is not a valid tar archive: ${e.message}`)
      : e;
  }
  await opened.done;

  const manifestBytes = small.get('manifest.json');
  if (!manifestBytes) throw new ArchiveError(`${where} is not a docker-archive: it has no manifest.json`);
  const manifest = parseManifest(manifestBytes, where);
  manifest.layers = manifest.layers.map(normalise);
  const configBytes = small.get(normalise(manifest.config));
  if (!configBytes) throw new ArchiveError(`${where}: manifest.json names the config ${manifest.config}, which the archive lacks`);
  const config = parseConfig(configBytes, manifest, where);
  return { manifest, config, aliases };
}

