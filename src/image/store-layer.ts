// One store layer's tar, made in-process and byte for byte what nixpkgs' stream_layered_image.py writes
// for it (the versions whose conf has mtime/uid/gid/uname/gname/store_dir): `tarfile.open(mode="w|")` in
// PAX format; "/nix/" and "/nix/store/" as directories of mode 0o755; then for each store path, itself
// alone when it is a symlink, else itself and everything under it (pathlib's rglob("*"), which does not
// descend into symlinked directories), in pathlib.Path order (component by component, code point
// order, which is UTF-8 byte order); each member from lstat as TarFile.gettarinfo makes it (mode & 0o7777,
// directories named with a trailing "/", symlink targets from readlink, hardlinks written as the regular
// files they are), with mtime/uid/gid/uname/gname from the conf. Headers follow CPython 3.11's tarfile
// (create_pax_header, _create_pax_generic_header, _create_header): a "././@PaxHeader" x-header for names
// and link names over 100 characters or not ASCII, unames/gnames over 32, numbers out of octal range, and
// the ustar fields then "?"-replaced and cut as tarfile cuts them; empty device fields; checksum "%06o\0 ".
// At the end, two zero blocks and zeros up to a 10240-byte record. File contents are streamed in 1 MiB
// reads, never held whole. Names that are not valid UTF-8 (Python would write hdrcharset=BINARY) and file
// types a store cannot hold are refused with UnsupportedImageError.
import * as fs from 'node:fs';
import type { Stats } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** Bump whenever the bytes storeLayerTar makes for the same inputs change: it is part of every layer key. */
export const LAYER_MAKER_VERSION = '1';

/** The tar parameters from the stream script's conf (mtime already as int(timestamp)). */
export interface TarParams {
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  storeDir: string;
}

/** What we cannot make exactly as nixpkgs would: the caller falls back to reading the real archive. */
export class UnsupportedImageError extends Error {
  override name = 'UnsupportedImageError';
}

const BLOCK = 512;
const RECORD = 20 * BLOCK;
const CHUNK = 1024 * 1024;
const ZEROS = Buffer.alloc(RECORD);

/** One tar member as tarfile's get_info() hands it to tobuf(). */
export interface TarMember {
  /** Member name (directories already ending in "/"). */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: '0' | '2' | '5';
  linkname: string;
  uname: string;
  gname: string;
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** str.encode("ascii", "replace"): one "?" per code point outside ASCII. */
function asciiReplace(s: string): Buffer {
  let out = '';
  for (const ch of s) out += ch.charCodeAt(0) < 0x80 ? ch : '?';
  return Buffer.from(out, 'latin1');
}

/** tarfile's itn() for a number that fits: octal, zero-padded to digits-1, then NUL. */
function octal(n: number, digits: number): string {
  return n.toString(8).padStart(digits - 1, '0') + '\0';
}

/** tarfile's _create_header with format USTAR, encoding "ascii", errors "replace" (as create_pax_header calls it). */
function ustarHeader(f: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: string; uname: string; gname: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  const str = (s: string, at: number, len: number) => asciiReplace(s).copy(b, at, 0, len);
  str(f.name, 0, 100);
  b.write(octal(f.mode & 0o7777, 8), 100, 'latin1');
  b.write(octal(f.uid, 8), 108, 'latin1');
  b.write(octal(f.gid, 8), 116, 'latin1');
  b.write(octal(f.size, 12), 124, 'latin1');
  b.write(octal(f.mtime, 12), 136, 'latin1');
  b.write('        ', 148, 'latin1');
  b.write(f.type, 156, 'latin1');
  str(f.linkname, 157, 100);
  b.write('ustar\x0000', 257, 'latin1');
  str(f.uname, 265, 32);
  str(f.gname, 297, 32);
  // devmajor, devminor (empty for non-devices) and prefix (unused in PAX format) stay NUL.
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, '0') + '\0', 148, 'latin1');
  return b;
}

/** One pax record "<len> key=value\n", its length counting its own digits (tarfile's fixed-point loop). */
function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.byteLength(key) + Buffer.byteLength(value) + 3;
  let p = 0;
  for (;;) {
    const n = body + String(p).length;
    if (n === p) break;
    p = n;
  }
  return Buffer.from(`${p} ${key}=${value}\n`, 'utf8');
}

function padLength(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

/** The header blocks tarfile writes for a member in PAX format: an x-header when needed, then the ustar block. */
export function tarHeader(m: TarMember): Buffer {
  const f = { ...m };
  const pax: [string, string][] = [];
  for (const [field, key, len] of [['name', 'path', 100], ['linkname', 'linkpath', 100], ['uname', 'uname', 32], ['gname', 'gname', 32]] as const) {
    const v = f[field];
    if (/\p{Cs}/u.test(v)) throw new UnsupportedImageError(`a lone surrogate in a tar ${field} would make Python write hdrcharset=BINARY`);
    if (!isAscii(v) || v.length > len) pax.push([key, v]);
  }
  for (const [field, digits] of [['uid', 8], ['gid', 8], ['size', 12], ['mtime', 12]] as const) {
    const v = f[field];
    if (!Number.isSafeInteger(v)) throw new UnsupportedImageError(`tar ${field} ${v} is not an integer`);
    if (v < 0 || v >= 8 ** (digits - 1)) {
      f[field] = 0;
      pax.push([field, String(v)]);
    }
  }
  const ustar = ustarHeader(f);
  if (pax.length === 0) return ustar;
  const records = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const xh = ustarHeader({ name: '././@PaxHeader', mode: 0, uid: 0, gid: 0, size: records.length, mtime: 0, type: 'x', linkname: '', uname: '', gname: '' });
  return Buffer.concat([xh, records, ZEROS.subarray(0, padLength(records.length)), ustar]);
}

/** What TarFile.close() writes after `offset` bytes: two zero blocks, then zeros to the next 10240-byte record. */
export function tarEnd(offset: number): Buffer {
  const end = offset + 2 * BLOCK;
  return Buffer.alloc(2 * BLOCK + ((RECORD - (end % RECORD)) % RECORD));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeName(raw: Buffer, where: string): string {
  try {
    return utf8.decode(raw);
  } catch {
    throw new UnsupportedImageError(`${where}: a name that is not valid UTF-8 (${raw.toString('hex')}) would need hdrcharset=BINARY`);
  }
}

function checkParams(tar: TarParams): void {
  for (const k of ['mtime', 'uid', 'gid'] as const) {
    if (!Number.isSafeInteger(tar[k])) throw new UnsupportedImageError(`tar ${k} ${tar[k]} is not an integer`);
  }
  for (const k of ['uname', 'gname'] as const) {
    if (typeof tar[k] !== 'string' || /\p{Cs}/u.test(tar[k])) throw new UnsupportedImageError(`tar ${k} is not a well-formed string`);
  }
}

/** Store paths must be given as pathlib prints them (absolute, no "//", ".", ".." or trailing "/"), under storeDir. */
function checkPath(path: string, storeDir: string): void {
  if (!path.startsWith(storeDir)) throw new Error(`${path} is not under the store ${storeDir}`);
  const dir = storeDir.endsWith('/') ? storeDir : storeDir + '/';
  if (!path.startsWith(dir)) throw new UnsupportedImageError(`${path} is not a path inside ${dir}`);
  const parts = path.split('/');
  if (parts[0] !== '' || parts.slice(1).some((c) => c === '' || c === '.' || c === '..') || path.includes('\0') || /\p{Cs}/u.test(path)) {
    throw new UnsupportedImageError(`${path} is not a normalized absolute path`);
  }
}

/** A member to write: its lstat (started ahead, in parallel with its siblings') and, for a small file, its bytes. */
interface Node {
  path: string;
  name: string;
  st: Promise<Stats>;
  data?: Promise<Buffer | null>;
}

/** Files up to this size are read whole, a few ahead of the writer; larger ones are streamed in CHUNKs. */
const SMALL = 256 * 1024;
/** How many upcoming members may have their lstat resolved and small contents read ahead. */
const LOOKAHEAD = 32;

// The callback API with plain fds: per file, far less main-thread work than fs/promises' FileHandles.
function lstat(path: string): Promise<Stats> {
  return new Promise((resolve, reject) => fs.lstat(path, (e, st) => (e ? reject(e) : resolve(st))));
}
function openRead(path: string): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, 'r', (e, fd) => (e ? reject(e) : resolve(fd))));
}
function readInto(fd: number, buf: Buffer, at: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, at, buf.length - at, null, (e, n) => (e ? reject(e) : resolve(n))));
}
function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (e) => (e ? reject(e) : resolve())));
}

/** Fill buf from fd's current position; an early end of file is an error (as copyfileobj's). */
async function fill(fd: number, buf: Buffer, path: string): Promise<void> {
  for (let got = 0; got < buf.length; ) {
    const n = await readInto(fd, buf, got);
    if (n === 0) throw shortRead(path);
    got += n;
  }
}

function node(path: string, name: string): Node {
  const st = lstat(path);
  st.catch(() => undefined); // awaited when the node is written; an error before then must not go unhandled
  return { path, name, st };
}

function readAhead(n: Node): void {
  if (n.data) return;
  n.data = n.st.then((st) => (st.isFile() && st.size <= SMALL ? readExact(n.path, st.size) : null));
  n.data.catch(() => undefined);
}

function shortRead(path: string): Error {
  return new Error(`${path}: unexpected end of data (it changed while being read)`);
}

/** A small file's first `size` bytes, as copyfileobj reads them: exactly size, an early end is an error. */
async function readExact(path: string, size: number): Promise<Buffer> {
  const fd = await openRead(path);
  try {
    const buf = Buffer.allocUnsafe(size);
    await fill(fd, buf, path);
    return buf;
  } finally {
    await closeFd(fd);
  }
}

/** A large file's first `size` bytes in CHUNK-sized reads. */
async function* readChunks(path: string, size: number): AsyncGenerator<Buffer> {
  const fd = await openRead(path);
  try {
    for (let left = size; left > 0; ) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
      await fill(fd, buf, path);
      left -= buf.length;
      yield buf;
    }
  } finally {
    await closeFd(fd);
  }
}

/** The member gettarinfo + the script's filters make from a path's lstat. */
async function member(n: Node, st: Stats, tar: TarParams): Promise<TarMember> {
  const base = { uid: tar.uid, gid: tar.gid, mtime: tar.mtime, uname: tar.uname, gname: tar.gname, mode: st.mode & 0o7777, linkname: '' };
  if (st.isFile()) return { ...base, name: n.name, type: '0', size: st.size };
  if (st.isDirectory()) return { ...base, name: n.name + '/', type: '5', size: 0 };
  if (st.isSymbolicLink()) {
    const target = decodeName(await readlink(n.path, { encoding: 'buffer' }), `symlink ${n.path}`);
    return { ...base, name: n.name, type: '2', size: 0, linkname: target };
  }
  throw new UnsupportedImageError(`${n.path} is neither a regular file, a directory nor a symlink`);
}

/** Output gathered into ~CHUNK pieces: fewer, larger writes downstream. */
class Gather {
  private parts: Buffer[] = [];
  private pending = 0;
  /** Bytes of the tar so far (TarFile.offset). */
  offset = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.pending += b.length;
    this.offset += b.length;
  }
  get full(): boolean {
    return this.pending >= CHUNK;
  }
  get empty(): boolean {
    return this.pending === 0;
  }
  take(): Buffer {
    const b = Buffer.concat(this.parts, this.pending);
    this.parts = [];
    this.pending = 0;
    return b;
  }
}

async function* layer(paths: string[], tar: TarParams): AsyncGenerator<Buffer> {
  checkParams(tar);
  for (const path of paths) checkPath(path, tar.storeDir);
  const out = new Gather();
  const root = { mode: 0o755, uid: tar.uid, gid: tar.gid, size: 0, mtime: tar.mtime, type: '5', linkname: '', uname: tar.uname, gname: tar.gname } as const;
  out.push(tarHeader({ ...root, name: '/nix/' }));
  out.push(tarHeader({ ...root, name: '/nix/store/' }));
  for (const top of paths) {
    // Depth first from a stack: a directory's children are pushed in reverse sorted order, so each one
    // comes next with its whole subtree before the following sibling (pathlib's sorted order).
    const stack: Node[] = [node(top, top)];
    while (stack.length > 0) {
      const n = stack.pop()!;
      for (let i = stack.length - 1; i >= Math.max(0, stack.length - LOOKAHEAD); i--) readAhead(stack[i]!);
      const st = await n.st;
      const m = await member(n, st, tar);
      out.push(tarHeader(m));
      if (m.type === '0') {
        const small = n.data ? await n.data : null;
        if (small) out.push(small);
        else if (m.size > 0) {
          if (!out.empty) yield out.take();
          for await (const chunk of readChunks(n.path, m.size)) {
            out.offset += chunk.length;
            yield chunk;
          }
        }
        const pad = padLength(m.size);
        if (pad) out.push(ZEROS.subarray(0, pad));
      } else if (m.type === '5') {
        // A top-level symlink is archived alone; below, symlinked directories are never descended into.
        const raw = await readdir(n.path, { encoding: 'buffer' });
        raw.sort(Buffer.compare);
        for (let i = raw.length - 1; i >= 0; i--) {
          const child = decodeName(raw[i]!, `in ${n.path}`);
          stack.push(node(`${n.path}/${child}`, `${n.name}/${child}`));
        }
      }
      if (out.full) yield out.take();
    }
  }
  out.push(tarEnd(out.offset));
  yield out.take();
}

/** The layer tar of these store paths, as a byte stream; walking or reading errors are stream errors. */
export function storeLayerTar(paths: string[], tar: TarParams): Readable {
  return Readable.from(layer([...paths], { ...tar }), { objectMode: false, highWaterMark: CHUNK });
}
