// A Nix binary cache directory written by the action itself (what `nix copy --to file://DIR` writes:
// nix-cache-info, <hash>.narinfo, nar/<hash>.nar), holding exactly the paths asked for. `nix copy` would
// insist on the whole closure, including paths cache.nixos.org serves; a narinfo may name references
// the cache does not hold, and Nix substitutes those from wherever it finds them.
// NARs are stored uncompressed: the GitHub cache archive is zstd-compressed as a whole. Every narinfo is
// written from what this store says of the path (nix path-info), never carried over from a restored
// entry, and signed when there is a key.
import { createPublicKey, verify } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fingerprint, signFingerprint, type SecretKey } from './signing.js';
import { spawnNix } from './secret-settings.js';
import { nixStoreBinary, normaliseNarHash, type PathInfo } from './store.js';
import { sha256FileHex } from '../hash.js';

/**
 * The store cache's substituter priority. Nix consults substituters by ascending priority (a store's
 * default is 0, cache.nixos.org's nix-cache-info says 40; equal ones keep their configured order), and
 * the URL's ?priority= beats the Priority of nix-cache-info (both checked with Nix 2.8). This one comes
 * after every upstream cache: a path an upstream cache serves comes from there, signature checked,
 * whenever that cache can be reached.
 */
export const STORE_CACHE_PRIORITY = 1000;

export function hashPart(storePath: string): string {
  return basename(storePath).slice(0, 32);
}

/** Where a NAR is stored, when not uncompressed at nar/<hash>.nar: its URL, compression, and the file's hash and size. */
export interface NarFile {
  url: string;
  compression: string;
  fileHash: string;
  fileSize: number;
}

/** The narinfo of a path whose NAR is stored uncompressed (or as `file` says), signed by `key` when given. */
export function narinfo(info: PathInfo, key?: SecretKey, file?: NarFile): string {
  return [
    `StorePath: ${info.path}`,
    `URL: ${file?.url ?? `nar/${hashPart(info.path)}.nar`}`,
    `Compression: ${file?.compression ?? 'none'}`,
    ...(file ? [`FileHash: ${file.fileHash}`, `FileSize: ${file.fileSize}`] : []),
    `NarHash: ${info.narHash}`,
    `NarSize: ${info.narSize}`,
    `References: ${info.references.map((r) => basename(r)).join(' ')}`,
    ...(info.deriver ? [`Deriver: ${basename(info.deriver)}`] : []),
    ...(key ? [`Sig: ${signFingerprint(key, fingerprint(info.path, info.narHash, info.narSize, info.references))}`] : []),
    '',
  ].join('\n');
}

/**
 * Streams a path's NAR (`nix-store --dump`) through `stages`, the last one writing it out. The copy and
 * the exit are awaited together: a copy that fails first still has its exit (or spawn error) handled,
 * never an unhandled rejection that would fail the post step. Throws when nix-store fails.
 */
export async function dumpNarThrough(nix: string, path: string, env: NodeJS.ProcessEnv, stages: [NodeJS.WritableStream, ...NodeJS.WritableStream[]]): Promise<void> {
  const child = spawnNix(nixStoreBinary(nix), ['--dump', path], env);
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  let code: number | null;
  try {
    [, code] = await Promise.all([(pipeline as (...s: unknown[]) => Promise<void>)(child.stdout, ...stages), exited]);
  } catch (e) {
    child.kill();
    throw e;
  }
  if (code !== 0) throw new Error(`nix-store --dump ${path} failed (exit ${code}): ${err.trim().split('\n').pop() ?? ''}`);
}

/** Writes the path's NAR to `file`; its hash is the one path-info gave, its size is checked. */
async function dumpNar(nix: string, info: PathInfo, file: string, env: NodeJS.ProcessEnv): Promise<number> {
  const out = createWriteStream(file);
  await dumpNarThrough(nix, info.path, env, [out]);
  if (out.bytesWritten !== info.narSize) throw new Error(`nix-store --dump ${info.path} wrote ${out.bytesWritten} bytes, path-info says ${info.narSize}`);
  return out.bytesWritten;
}

/** The NAR hash of a file, as Nix prints it (`sha256:<Nix base32>`). */
async function narFileHash(file: string): Promise<string | undefined> {
  return normaliseNarHash(`sha256:${await sha256FileHex(file)}`);
}

/**
 * Whether a restored entry's NAR is this path's: its narinfo names the same hash and size, and the file has
 * that size. `hashed`: the file's bytes are hashed too — when the save is signed, a NAR is signed only once
 * it is known to be the path's (a restored entry could pair a signed narinfo with other bytes).
 */
export async function restoredNarMatches(dir: string, info: PathInfo, hashed = false): Promise<boolean> {
  const h = hashPart(info.path);
  const nar = join(dir, 'nar', `${h}.nar`);
  const meta = join(dir, `${h}.narinfo`);
  if (!existsSync(nar) || !existsSync(meta)) return false;
  const text = await readFile(meta, 'utf8');
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const described = field('NarHash') === info.narHash && field('NarSize') === String(info.narSize) && field('Compression') === 'none' && (await stat(nar)).size === info.narSize;
  return described && (!hashed || (await narFileHash(nar)) === normaliseNarHash(info.narHash));
}

/** Whether the directory's narinfo of `info` carries a valid signature by `publicKey` (`name:base64`) over this path's fingerprint. */
export async function narinfoSignedBy(dir: string, info: PathInfo, publicKey: string): Promise<boolean> {
  const text = await readFile(join(dir, `${hashPart(info.path)}.narinfo`), 'utf8').catch(() => '');
  const name = publicKey.slice(0, publicKey.indexOf(':'));
  let key;
  try {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey.slice(name.length + 1), 'base64').toString('base64url') }, format: 'jwk' });
  } catch {
    return false;
  }
  const text2 = Buffer.from(fingerprint(info.path, info.narHash, info.narSize, info.references));
  for (const m of text.matchAll(/^Sig: ([^:\s]+):(\S+)$/gm)) {
    if (m[1] === name && verify(null, text2, key, Buffer.from(m[2]!, 'base64'))) return true;
  }
  return false;
}

export interface WriteResult {
  /** Paths whose NAR was dumped now (the others were already in the directory, from the restored cache). */
  written: number;
  kept: number;
  removed: number;
  bytes: number;
}

/**
 * Makes `dir` a binary cache of exactly `paths`: keeps a restored NAR that is the path's, dumps the others,
 * drops the rest; every narinfo is written anew from `paths` (signed by `key` when given).
 */
export async function writeBinaryCache(dir: string, paths: PathInfo[], nix: string, env: NodeJS.ProcessEnv, key?: SecretKey): Promise<WriteResult> {
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
    if (!info.narHash) throw new Error(`nix path-info gave no NAR hash for ${info.path}`);
    const h = hashPart(info.path);
    if (await restoredNarMatches(dir, info, key !== undefined)) kept++;
    else {
      await dumpNar(nix, info, join(dir, 'nar', `${h}.nar`), env);
      written++;
    }
    bytes += info.narSize;
    await writeFile(join(dir, `${h}.narinfo`), narinfo(info, key));
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
