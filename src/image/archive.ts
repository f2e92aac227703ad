// Reads a docker-archive as a stream, once: layer bodies go to a visitor one at a time (never held in
// memory), small JSON entries are kept, and the metadata (manifest.json and the config) is returned at
// the end, where streamLayeredImage and buildImage both put it.
import * as core from '@actions/core';
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import type { ArchiveManifest, ImageMetadata, ImageSource, LayerEntry } from './types.js';
import { asStranger, scrubbedEnv } from './child-env.js';
import { paddedSize, TarHeaders } from './tar-header.js';
import { READ_CHUNK, sha256Digest } from '../hash.js';

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
  /** Stops the producer, if there is one (a failed push does not wait for it). */
  kill?: () => void;
}

let warnedSameUser = false;

/** `stranger`: code from the flake, run as another user where the action can (child-env.ts asStranger). */
function runProducer(command: string, args: string[], what: string, stranger = false): Opened {
  // Code from the flake (and zstd reading its output) never sees the action's inputs, tokens or NIX_CONFIG.
  const run = stranger ? asStranger(command, args) : { command, args, env: scrubbedEnv(process.env) };
  if (stranger && 'sameUser' in run && run.sameUser && !warnedSameUser) {
    warnedSameUser = true;
    core.warning(`the image stream script: ${run.sameUser}`);
  }
  const ids = 'uid' in run && run.uid !== undefined ? { uid: run.uid, gid: run.gid } : {};
  const child = spawn(run.command, run.args, { env: run.env, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
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
  return { stream: child.stdout, done, kill: () => void child.kill('SIGKILL') };
}


function zstdDecompressor(): NodeJS.ReadWriteStream | undefined {
  const make = (zlib as unknown as { createZstdDecompress?: (o: { chunkSize: number }) => NodeJS.ReadWriteStream }).createZstdDecompress;
  return make?.({ chunkSize: READ_CHUNK });
}

/** The uncompressed tar stream of an image source. */
export function openArchive(source: ImageSource): Opened {
  switch (source.format) {
    case 'stream':
      return runProducer(source.path, [], `the image stream script ${source.path}`, true);
    case 'docker-archive':
      return { stream: createReadStream(source.path, { highWaterMark: READ_CHUNK }), done: Promise.resolve() };
    case 'docker-archive+gzip': {
      const out = createReadStream(source.path, { highWaterMark: READ_CHUNK }).pipe(zlib.createGunzip({ chunkSize: READ_CHUNK }));
      return { stream: out as unknown as Readable, done: Promise.resolve() };
    }
    case 'docker-archive+zstd': {
      // Node 24 decompresses zstd itself; older Node falls back to the zstd command.
      const native = zstdDecompressor();
      if (native) return { stream: createReadStream(source.path, { highWaterMark: READ_CHUNK }).pipe(native) as unknown as Readable, done: Promise.resolve() };
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
  const digest = sha256Digest(bytes);
  return { bytes, digest, diffIDs: diffIDs as string[] };
}

const TYPES: Record<string, string> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink' };

/**
 * Walks a plain tar file by its headers, seeking past bodies: layers the push does not need are never
 * read, and the others are read straight from the archive, in parallel, without a copy.
 */
async function walkTarFile(path: string, visit: LayerVisitor): Promise<Found> {
  const small = new Map<string, Buffer>();
  const aliases: Record<string, string> = {};
  const fh = await open(path, 'r');
  try {
    const { size: total } = await fh.stat();
    const header = Buffer.alloc(512);
    let pos = 0;
    const headers = new TarHeaders();
    const readAt = async (buf: Buffer, at: number): Promise<void> => {
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead !== buf.length) throw new ArchiveError(`${path} is not a valid tar archive: it ends inside an entry at byte ${at}`);
    };
    while (pos + 512 <= total) {
      await readAt(header, pos);
      if (header.every((b) => b === 0)) break;
      const { name: rawName, linkname, flag, size } = headers.entry(header);
      const start = pos + 512;
      pos = start + paddedSize(size);
      if (pos > total) throw new ArchiveError(`${path} is not a valid tar archive: entry ${rawName} runs past the end of the file`);
      if (TarHeaders.extends(flag)) {
        const body = Buffer.alloc(size);
        await readAt(body, start);
        headers.extend(flag, body);
        continue;
      }
      if (flag === 'g') continue;
      const name = normalise(rawName);
      const type = TYPES[flag];
      if ((type === 'link' || type === 'symlink') && name.endsWith('layer.tar')) {
        aliases[name] = linkTarget(name, type, linkname);
      } else if (type === 'file' && posix.basename(name) === 'layer.tar') {
        const end = start + size - 1;
        await visit(layerEntry(name, size, true), () =>
          size === 0 ? Readable.from([]) : createReadStream(path, { start, end, highWaterMark: READ_CHUNK }),
        );
      } else if (type === 'file' && isSmall(name, size)) {
        const body = Buffer.alloc(size);
        await readAt(body, start);
        small.set(name, body);
      }
    }
  } finally {
    await fh.close();
  }
  return { small, aliases };
}

/**
 * Called for every regular `…/layer.tar` entry. `open()` gives the layer's bytes. When `entry.seekable`
 * (a plain .tar file), `open` may be called at any time, also after the visitor returns, and gives a fresh
 * stream each time; otherwise it may be called once, and the stream must be consumed before the visitor's
 * promise resolves (what is left unread is skipped).
 */
export type LayerVisitor = (entry: LayerEntry, open: () => Readable) => Promise<void>;

/**
 * Reads the archive once. Returns the metadata, with `aliases` for layer entries that are links to
 * another entry (docker save writes duplicate layers that way).
 */
export async function readLayers(source: ImageSource, visit: LayerVisitor): Promise<ImageMetadata> {
  const found = source.format === 'docker-archive' ? await walkTarFile(source.path, visit) : await walkTarStream(source, visit);
  return finish(source.path, found);
}

interface Found {
  small: Map<string, Buffer>;
  aliases: Record<string, string>;
}

function layerEntry(name: string, size: number, seekable: boolean): LayerEntry {
  const dir = name.split('/')[0] ?? '';
  return { name, size, seekable, ...(HEX64.test(dir) ? { diffIDHint: `sha256:${dir}` } : {}) };
}

function isSmall(name: string, size: number): boolean {
  return size <= SMALL_ENTRY && name.endsWith('.json');
}

function linkTarget(name: string, type: string, linkname: string): string {
  return normalise(type === 'symlink' ? posix.join(posix.dirname(name), linkname) : linkname);
}

async function walkTarStream(source: ImageSource, visit: LayerVisitor): Promise<Found> {
  const where = source.path;
  const opened = openArchive(source);
  const small = new Map<string, Buffer>();
  const aliases: Record<string, string> = {};
  const ex = extract();

  let visitorFailed = false;
  const reading = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header: Header, entryStream, next) => {
      // tar-stream hands out streamx streams; visitors get a Node stream.
      const body = Readable.from(entryStream, { objectMode: false });
      const name = normalise(header.name);
      const handle = async (): Promise<void> => {
        if ((header.type === 'symlink' || header.type === 'link') && header.linkname && name.endsWith('layer.tar')) {
          aliases[name] = linkTarget(name, header.type, header.linkname);
          body.resume();
          return;
        }
        if (header.type !== 'file' && header.type !== 'contiguous-file') {
          body.resume();
          return;
        }
        if (posix.basename(name) === 'layer.tar') {
          await visit(layerEntry(name, header.size ?? 0, false), () => body);
          // Whatever the visitor left unread is skipped (a body destroyed by an aborted push ends nothing).
          if (!body.readableEnded && !body.destroyed) {
            body.resume();
            await new Promise<void>((resolve, reject) => {
              body.once('end', resolve);
              body.once('error', reject);
            });
          }
          return;
        }
        if (isSmall(name, header.size ?? 0)) {
          const chunks: Buffer[] = [];
          for await (const c of body) chunks.push(c as Buffer);
          small.set(name, Buffer.concat(chunks));
          return;
        }
        body.resume();
      };
      handle().then(
        () => next(),
        (e: unknown) => {
          // The extractor may be gone already (the push destroyed the body): reject here, not only through it.
          visitorFailed = true;
          const error = e instanceof Error ? e : new Error(String(e));
          reject(error);
          next(error);
        },
      );
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
    // A destroyed extractor (the push aborted the layer being read) emits only close.
    ex.on('close', () => reject(new ArchiveError(`${where}: reading stopped`)));
    opened.stream.on('error', (e: Error) => reject(new ArchiveError(`${where}: ${e.message}`)));
  });
  opened.stream.pipe(ex);
  try {
    await reading;
  } catch (e) {
    opened.stream.destroy();
    if (visitorFailed || e instanceof ArchiveError) {
      // The push failed (or stopped reading): that is the error, not the producer's broken pipe after it.
      opened.kill?.();
      throw e;
    }
    // A producer that died explains a truncated archive better than the tar parser does (given a moment).
    await Promise.race([opened.done, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
    opened.kill?.();
    throw e instanceof Error && /Unexpected end|unexpected end|invalid header/i.test(e.message)
      ? new ArchiveError(`${where} is not a valid tar archive: ${e.message}`)
      : e;
  }
  await opened.done;
  return { small, aliases };
}

function finish(where: string, { small, aliases }: Found): ImageMetadata {
  const manifestBytes = small.get('manifest.json');
  if (!manifestBytes) throw new ArchiveError(`${where} is not a docker-archive: it has no manifest.json`);
  const manifest = parseManifest(manifestBytes, where);
  manifest.layers = manifest.layers.map(normalise);
  const configBytes = small.get(normalise(manifest.config));
  if (!configBytes) throw new ArchiveError(`${where}: manifest.json names the config ${manifest.config}, which the archive lacks`);
  const config = parseConfig(configBytes, manifest, where);
  return { manifest, config, aliases };
}

