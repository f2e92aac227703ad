// zstd for layers (the `compression: zstd` input). A layer is cut into fixed 4 MiB blocks, and each block is
// compressed as a zstd frame of its own on libuv's thread pool, several at once, so every core works on
// one layer; the frames, concatenated, are the blob (a zstd stream may hold any number of frames, RFC
// 8878 §3, and every zstd decoder reads them in turn). Each frame carries its checksum.
//
// Why independent frames rather than one stream with zstd's own worker threads: Node's streaming zstd
// compressor writes an extra empty frame, or stops early with worker threads, depending on how its writes
// and output buffers happen to fall (nodejs/node#59899, #66078), so its bytes would depend on timing. A
// frame compressed in one call, single-threaded, into an output buffer larger than the frame can ever be,
// depends only on the block's bytes and the level.
//
// Node 22.15 and 24 have zstd in node:zlib, and the action runs on Node 24. Under a Node without it the
// `zstd` command compresses each block instead, the same frames from another build of the library, whose
// bytes may differ: the compressor's id (part of every layer key and of the settings digest) names the
// implementation and its version, so a layer key never names bytes another implementation wrote.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { scrubbedEnv } from './child-env.js';
import { READ_CHUNK } from '../hash.js';

/** The size of the blocks compressed as frames of their own: at level 3, 0.5% more bytes than one frame. */
export const ZSTD_BLOCK = 4 * 1024 * 1024;
/** Above ZSTD_compressBound(ZSTD_BLOCK): a frame always fits one output buffer with room to spare. */
const OUT_CHUNK = ZSTD_BLOCK + ZSTD_BLOCK / 128 + 64 * 1024;
export class ZstdUnavailableError extends Error {
  override name = 'ZstdUnavailableError';
}

interface ZstdZlib {
  zstdCompress?: (buf: Buffer, opts: object, cb: (error: Error | null, out: Buffer) => void) => void;
  createZstdDecompress?: (opts: { chunkSize: number }) => NodeJS.ReadWriteStream;
}
const z = zlib as unknown as ZstdZlib;
const constants = zlib.constants as unknown as Record<string, number>;

/** Whether this Node compresses and decompresses zstd itself. */
export function nativeZstd(): boolean {
  return typeof z.zstdCompress === 'function' && typeof z.createZstdDecompress === 'function';
}

/** The `zstd` command's version, by the PATH it was found on. */
const cliVersions = new Map<string, string>();

/** The version of the `zstd` command; throws ZstdUnavailableError, in one line, when none runs. */
function zstdCommandVersion(): string {
  let version = cliVersions.get(process.env.PATH ?? '');
  if (version === undefined) {
    let out: string;
    try {
      out = execFileSync('zstd', ['--version'], { encoding: 'utf8', env: scrubbedEnv(process.env), stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no zstd command on PATH' : `zstd --version failed: ${(error as Error).message.split('\n')[0]}`;
      throw new ZstdUnavailableError(`compression zstd: Node ${process.version} has no zstd in node:zlib and ${why}; run on Node 24 (as the action does) or install zstd`);
    }
    version = /v(\d+\.\d+\.\d+)/.exec(out)?.[1] ?? 'unknown';
    cliVersions.set(process.env.PATH ?? '', version);
  }
  return version;
}

/** The zstd that compresses here: Node's own library, or the `zstd` command; with its version. */
export function zstdImplementation(): string {
  return nativeZstd() ? `node-libzstd-${process.versions.zstd ?? 'unknown'}` : `zstd-cli-${zstdCommandVersion()}`;
}

/** For the log: which zstd compresses here. */
export function zstdDescription(): string {
  return nativeZstd() ? `Node's own libzstd ${process.versions.zstd ?? ''}`.trim() : `the zstd command ${zstdCommandVersion()} (Node ${process.version} has no zstd in node:zlib)`;
}

/** Names the output of zstd at `level` here: part of every layer key (image/plan.ts) and of the settings
 *  digest (image/settings.ts), so a change to the blocks, the level or the implementation changes it. */
export function zstdCompressorID(level: number): string {
  return `zstd/frames-4MiB/level-${level}/checksum/${zstdImplementation()}/v1`;
}

const compressNative = z.zstdCompress ? promisify(z.zstdCompress) : undefined;

/** One block as one zstd frame (with its checksum, without its content size), on the thread pool or by
 *  the `zstd` command. */
export function zstdFrame(block: Buffer, level: number): Promise<Buffer> {
  if (compressNative && nativeZstd()) {
    const params = { [constants.ZSTD_c_compressionLevel!]: level, [constants.ZSTD_c_checksumFlag!]: 1, [constants.ZSTD_c_contentSizeFlag!]: 0 };
    return compressNative(block, { chunkSize: OUT_CHUNK, params });
  }
  zstdCommandVersion();
  return collect(throughCommand('zstd', [`-${level}`, '--single-thread', '--check', '--no-content-size', '-q', '-c'], `zstd -${level}`)(oneChunk(block)));
}

/** A zstd stream (any number of frames), decompressed as it comes: by Node, or by the `zstd` command. */
export function zstdInflate(source: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  if (nativeZstd()) {
    const inflate = z.createZstdDecompress!({ chunkSize: READ_CHUNK });
    pump(source, inflate);
    return inflate as unknown as AsyncIterable<Buffer>;
  }
  zstdCommandVersion();
  return throughCommand('zstd', ['-d', '-q', '-c'], 'zstd -d')(source);
}

async function* oneChunk(block: Buffer): AsyncGenerator<Buffer> {
  yield block;
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return Buffer.concat(out);
}

/** Writes `source` into `sink` with backpressure; a failure on either side destroys the other. */
function pump(source: AsyncIterable<Buffer>, sink: NodeJS.ReadWriteStream): void {
  const stream = sink as unknown as import('node:stream').Duplex;
  void (async () => {
    try {
      for await (const chunk of source) {
        if (stream.destroyed) return;
        if (!stream.write(chunk)) await once(stream, 'drain');
      }
      stream.end();
    } catch (error) {
      stream.destroy(error as Error);
    }
  })();
}

/**
 * `source` through a command's stdin, its stdout as it comes (never all in memory): the command runs
 * with the reduced environment of every program the action did not write (image/child-env.ts). A
 * command that exits with anything but 0 fails the iteration with the end of what it said.
 */
export function throughCommand(command: string, args: string[], what: string): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* (source) {
    const child = spawn(command, args, { env: scrubbedEnv(process.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`${what}: ${e.message}`)));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    exited.catch(() => undefined);
    // A command that stops reading (it failed) makes stdin fail with EPIPE: its exit says why.
    child.stdin.on('error', () => undefined);
    const feeding = (async () => {
      for await (const chunk of source) {
        if (child.stdin.destroyed) return;
        if (!child.stdin.write(chunk)) await Promise.race([once(child.stdin, 'drain'), once(child.stdin, 'close')]);
      }
      child.stdin.end();
    })();
    feeding.catch(() => child.kill('SIGKILL'));
    try {
      for await (const chunk of child.stdout) yield chunk as Buffer;
      const { code, signal } = await exited;
      if (code !== 0) {
        const last = stderr.trim().split('\n').slice(-3).join(' / ');
        throw new Error(`${what} exited with ${signal ?? `code ${code}`}${last ? `: ${last}` : ''}`);
      }
      await feeding;
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
}
