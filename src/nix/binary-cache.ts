// A Nix binary cache directory written by the action itself (what `nix copy --to file://DIR` writes:
// nix-cache-info, <hash>.narinfo, nar/<hash>.nar), holding exactly the paths asked for. `nix copy` would
// insist on the whole closure, including paths cache.nixos.org serves; a narinfo may name references
// the cache does not hold, and Nix substitutes those from wherever it finds them.
// NARs are stored uncompressed: the GitHub cache archive is zstd-compressed as a whole.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../hash.js';
import { nixStoreBinary, type PathInfo } from './store.js';

/**
 * The store cache's substituter priority. Nix consults substituters by ascending priority (a store's
 * default is 0, cache.nixos.org's nix-cache-info says 40; equal ones keep their configured order), and
 * the URL's ?priority= beats the Priority of nix-cache-info (both checked with Nix 2.8). This one comes
 * after every upstream cache: a path an upstream cache serves comes from there, signature checked,
 * whenever that cache can be reached.
 */
export const STORE_CACHE_PRIORITY = 1000;

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** Nix's base32 (its own alphabet and bit order), as narinfo NarHash fields carry it. */
export function nixBase32(bytes: Buffer): string {
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    out += NIX_BASE32[c & 0x1f];
  }
  return out;
}

export function hashPart(storePath: string): string {
  return basename(storePath).slice(0, 32);
}

export function narinfo(info: PathInfo, narHash: Buffer, narSize: number): string {
  return [
    `StorePath: ${info.path}`,
    `URL: nar/${hashPart(info.path)}.nar`,
    'Compression: none',
    `NarHash: sha256:${nixBase32(narHash)}`,
    `NarSize: ${narSize}`,
    `References: ${info.references.map((r) => basename(r)).join(' ')}`,
    ...(info.deriver ? [`Deriver: ${basename(info.deriver)}`] : []),
    '',
  ].join('\n');
}

async function dumpNar(nix: string, path: string, file: string, env: NodeJS.ProcessEnv): Promise<{ hash: Buffer; size: number }> {
  const child = spawn(nixStoreBinary(nix), ['--dump', path], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const hashing = new HashingStream();
  // Both awaited together: when the copy fails first, the exit (or spawn error) is still handled, never an
  // unhandled rejection that would fail the post step.
  let code: number | null;
  try {
    [, code] = await Promise.all([pipeline(child.stdout, hashing, createWriteStream(file)), exited]);
  } catch (e) {
    child.kill();
    throw e;
  }
  if (code !== 0) throw new Error(`nix-store --dump ${path} failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`);
  return { hash: hashing.hash.digest(), size: hashing.bytes };
}

export interface WriteResult {
  /** Paths whose NAR was dumped now (the others were already in the directory, from the restored cache). */
  written: number;
  kept: number;
  removed: number;
  bytes: number;
}

/** Makes `dir` a binary cache of exactly `paths`: keeps what is there, dumps what is missing, drops the rest. */
export async function writeBinaryCache(dir: string, paths: PathInfo[], nix: string, env: NodeJS.ProcessEnv): Promise<WriteResult> {
  await mkdir(join(dir, 'nar'), { recursive: true });
  await writeFile(join(dir, 'nix-cache-info'), `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${STORE_CACHE_PRIORITY}\n`);
  const wanted = new Set(paths.map((p) => hashPart(p.path)));
  let removed = 0;
  for (const name of await readdir(dir)) {
    if (name.endsWith('.narinfo') && !wanted.has(name.slice(0, -'.narinfo'.length))) {
      await rm(join(dir, name));
      removed++;
    }
  }
  for (const name of await readdir(join(dir, 'nar'))) {
    if (!wanted.has(name.replace(/\.nar$/, ''))) await rm(join(dir, 'nar', name));
  }
  let written = 0;
  let kept = 0;
  let bytes = 0;
  for (const info of paths) {
    const h = hashPart(info.path);
    const nar = join(dir, 'nar', `${h}.nar`);
    if (existsSync(join(dir, `${h}.narinfo`)) && existsSync(nar)) {
      kept++;
      bytes += (await stat(nar)).size;
      continue;
    }
    const { hash, size } = await dumpNar(nix, info.path, nar, env);
    await writeFile(join(dir, `${h}.narinfo`), narinfo(info, hash, size));
    written++;
    bytes += size;
  }
  return { written, kept, removed, bytes };
}

/** Paths and NAR bytes a restored binary cache directory holds. */
export async function describeBinaryCache(dir: string): Promise<{ paths: number; bytes: number }> {
  if (!existsSync(dir)) return { paths: 0, bytes: 0 };
  const names = await readdir(dir);
  let bytes = 0;
  if (existsSync(join(dir, 'nar'))) for (const n of await readdir(join(dir, 'nar'))) bytes += (await stat(join(dir, 'nar', n))).size;
  return { paths: names.filter((n) => n.endsWith('.narinfo')).length, bytes };
}
