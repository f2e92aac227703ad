// One store layer's tar, made in-process and byte for byte what nixpkgs' stream_layered_image.py writes
// for it (the versions whose conf has mtime/uid/gid/uname/gname/store_dir): `tarfile.open(mode="w|")` in
// PAX format; "/nix/" and "/nix/store/" as directories of mode 0o755; then for each store path, itself
// alone when it is a symlink, else itself and everything under it (pathlib's rglob("*"), which does not
// descend into symlinked directories), in pathlib.Path order (component by component, code point
// order of the names as Python's str holds them); each member from lstat as TarFile.gettarinfo makes it
// (mode & 0o7777, directories named with a trailing "/", symlink targets from readlink, hardlinks written
// as the regular files they are), with mtime/uid/gid/uname/gname from the conf. Names and link targets are
// read as bytes and held as Python holds them with a UTF-8 filesystem encoding: decoded with
// surrogateescape, each byte outside a well-formed UTF-8 sequence as U+DC80–U+DCFF (a leading U+FEFF is
// kept). Headers follow CPython's tarfile (3.11 and current main write alike: create_pax_header,
// _create_pax_generic_header, _create_header): a "././@PaxHeader" x-header for names and link names over
// 100 characters or not ASCII, unames/gnames over 32, numbers out of octal range (PAX format never splits
// a name into the ustar prefix); when a value holds such escapes, "hdrcharset=BINARY" first and every
// value as its raw bytes; the ustar fields then "?"-replaced per code point and cut as tarfile cuts them;
// empty device fields; checksum "%06o\0 ". At the end, two zero blocks and zeros up to a 10240-byte
// record. File contents are streamed in 1 MiB reads, never held whole. File types a store cannot hold,
// and strings Python itself could not encode, are refused with UnsupportedImageError.
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import type { Stats } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { READ_CHUNK } from '../hash.js';

/** Bump whenever the bytes storeLayerTar makes for the same inputs change: it is part of every layer key. */
export const LAYER_MAKER_VERSION = '2';

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
const ZEROS = Buffer.alloc(RECORD);
const SLASH = Buffer.from('/');

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
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3;
  let p = 0;
  for (;;) {
    const n = body + String(p).length;
    if (n === p) break;
    p = n;
  }
  return Buffer.concat([Buffer.from(`${p} ${key}=`, 'latin1'), value, Buffer.from('\n')]);
}

const LONE_SURROGATE = /\p{Cs}/u;

/** str.encode("utf-8", "surrogateescape"): U+DC80–U+DCFF back to the bytes 0x80–0xFF; any other lone
 *  surrogate is refused, as Python raises UnicodeEncodeError for it. */
function fsEncode(s: string): Buffer {
  if (!LONE_SURROGATE.test(s)) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0xd800 && c <= 0xdfff) {
      if (c < 0xdc80 || c > 0xdcff) throw new UnsupportedImageError(`${JSON.stringify(s)} holds U+${c.toString(16).toUpperCase()}, which Python cannot encode`);
      parts.push(Buffer.from(run, 'utf8'), Buffer.of(c - 0xdc00));
      run = '';
    } else run += ch;
  }
  parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

/** How many bytes the well-formed UTF-8 sequence at raw[i] has (Unicode table 3-7, as CPython's decoder
 *  accepts them: no overlongs, no surrogates, nothing over U+10FFFF), or 0 when none starts there. */
function utf8SequenceAt(raw: Buffer, i: number): number {
  const b = raw[i]!;
  if (b < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < raw.length && raw[i + k]! >= lo && raw[i + k]! <= hi;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    const [lo, hi] = b === 0xe0 ? [0xa0, 0xbf] : b === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const [lo, hi] = b === 0xf0 ? [0x90, 0xbf] : b === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/** A directory entry or link target as Python holds it: `text` is os.fsdecode(raw) (UTF-8, surrogateescape);
 *  `key` orders as Python orders those strs (by code point) under Buffer.compare: raw itself when it is
 *  UTF-8, else its text in generalized UTF-8 (each escape U+DC80–U+DCFF in its three-byte UTF-8 form). */
function fsName(raw: Buffer): { text: string; key: Buffer } {
  if (isUtf8(raw)) return { text: raw.toString('utf8'), key: raw };
  let text = '';
  const key: number[] = [];
  for (let i = 0; i < raw.length; ) {
    const n = utf8SequenceAt(raw, i);
    if (n > 0) {
      text += raw.toString('utf8', i, i + n);
      for (let k = 0; k < n; k++) key.push(raw[i + k]!);
      i += n;
    } else {
      const c = 0xdc00 + raw[i]!;
      text += String.fromCharCode(c);
      key.push(0xed, 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
      i += 1;
    }
  }
  return { text, key: Buffer.from(key) };
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
    // len() of an ASCII str is its UTF-16 length too.
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
  // A value Python cannot encode as strict UTF-8 (a surrogate escape) makes every value raw bytes.
  const binary = pax.some(([, v]) => LONE_SURROGATE.test(v));
  const records = Buffer.concat([
    ...(binary ? [Buffer.from('21 hdrcharset=BINARY\n')] : []),
    ...pax.map(([k, v]) => paxRecord(k, binary ? fsEncode(v) : Buffer.from(v, 'utf8'))),
  ]);
  const xh = ustarHeader({ name: '././@PaxHeader', mode: 0, uid: 0, gid: 0, size: records.length, mtime: 0, type: 'x', linkname: '', uname: '', gname: '' });
  return Buffer.concat([xh, records, ZEROS.subarray(0, padLength(records.length)), ustar]);
}

/** What TarFile.close() writes after `offset` bytes: two zero blocks, then zeros to the next 10240-byte record. */
export function tarEnd(offset: number): Buffer {
  const end = offset + 2 * BLOCK;
  return Buffer.alloc(2 * BLOCK + ((RECORD - (end % RECORD)) % RECORD));
}

function checkParams(tar: TarParams): void {
  for (const k of ['mtime', 'uid', 'gid'] as const) {
    if (!Number.isSafeInteger(tar[k])) throw new UnsupportedImageError(`tar ${k} ${tar[k]} is not an integer`);
  }
  for (const k of ['uname', 'gname'] as const) {
    if (typeof tar[k] !== 'string') throw new UnsupportedImageError(`tar ${k} is not a string`);
    fsEncode(tar[k]);
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
  /** Its path as the filesystem has it. */
  path: Buffer;
  /** Its member name as Python's str. */
  name: string;
  st: Promise<Stats>;
  data?: Promise<Buffer | null>;
}

/** Files up to this size are read whole, a few ahead of the writer; larger ones are streamed in CHUNKs. */
const SMALL = 256 * 1024;
/** How many upcoming members may have their lstat resolved and small contents read ahead. */
const LOOKAHEAD = 32;

// The callback API with plain fds: per file, far less main-thread work than fs/promises' FileHandles.
function lstat(path: Buffer): Promise<Stats> {
  return new Promise((resolve, reject) => fs.lstat(path, (e, st) => (e ? reject(e) : resolve(st))));
}
function openRead(path: Buffer): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, 'r', (e, fd) => (e ? reject(e) : resolve(fd))));
}
function readInto(fd: number, buf: Buffer, at: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, at, buf.length - at, null, (e, n) => (e ? reject(e) : resolve(n))));
}
function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (e) => (e ? reject(e) : resolve())));
}

/** Fill buf from fd's current position; an early end of file is an error (as copyfileobj's). */
async function fill(fd: number, buf: Buffer, path: Buffer): Promise<void> {
  for (let got = 0; got < buf.length; ) {
    const n = await readInto(fd, buf, got);
    if (n === 0) throw shortRead(path);
    got += n;
  }
}

function node(path: Buffer, name: string): Node {
  const st = lstat(path);
  st.catch(() => undefined); // awaited when the node is written; an error before then must not go unhandled
  return { path, name, st };
}

function readAhead(n: Node): void {
  if (n.data) return;
  n.data = n.st.then((st) => (st.isFile() && st.size <= SMALL ? readExact(n.path, st.size) : null));
  n.data.catch(() => undefined);
}

function shortRead(path: Buffer): Error {
  return new Error(`${path.toString()}: unexpected end of data (it changed while being read)`);
}

/** A small file's first `size` bytes, as copyfileobj reads them: exactly size, an early end is an error. */
async function readExact(path: Buffer, size: number): Promise<Buffer> {
  const fd = await openRead(path);
  try {
    const buf = Buffer.allocUnsafe(size);
    await fill(fd, buf, path);
    return buf;
  } finally {
    await closeFd(fd);
  }
}

/** A large file's first `size` bytes in READ_CHUNK-sized reads. */
async function* readChunks(path: Buffer, size: number): AsyncGenerator<Buffer> {
  const fd = await openRead(path);
  try {
    for (let left = size; left > 0; ) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
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
    const target = fsName(await readlink(n.path, { encoding: 'buffer' })).text;
    return { ...base, name: n.name, type: '2', size: 0, linkname: target };
  }
  throw new UnsupportedImageError(`${n.path.toString()} is neither a regular file, a directory nor a symlink`);
}

/** Output gathered into ~READ_CHUNK pieces: fewer, larger writes downstream. */
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
    return this.pending >= READ_CHUNK;
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

/** What storeLayerTar would refuse before reading the store: store paths not written as pathlib writes
 *  them (UnsupportedImageError) or outside the store (Error), numbers that are not integers and names
 *  Python could not encode (UnsupportedImageError). */
export function checkLayerInputs(paths: string[], tar: TarParams): void {
  checkParams(tar);
  for (const path of paths) checkPath(path, tar.storeDir);
}

async function* layer(paths: string[], tar: TarParams): AsyncGenerator<Buffer> {
  checkLayerInputs(paths, tar);
  const out = new Gather();
  const root = { mode: 0o755, uid: tar.uid, gid: tar.gid, size: 0, mtime: tar.mtime, type: '5', linkname: '', uname: tar.uname, gname: tar.gname } as const;
  out.push(tarHeader({ ...root, name: '/nix/' }));
  out.push(tarHeader({ ...root, name: '/nix/store/' }));
  for (const top of paths) {
    // Depth first from a stack: a directory's children are pushed in reverse sorted order, so each one
    // comes next with its whole subtree before the following sibling (pathlib's sorted order).
    const stack: Node[] = [node(Buffer.from(top, 'utf8'), top)];
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
        const children = (await readdir(n.path, { encoding: 'buffer' })).map((raw) => ({ raw, ...fsName(raw) }));
        children.sort((a, b) => Buffer.compare(a.key, b.key));
        for (let i = children.length - 1; i >= 0; i--) {
          const c = children[i]!;
          stack.push(node(Buffer.concat([n.path, SLASH, c.raw]), `${n.name}/${c.text}`));
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
  return Readable.from(layer([...paths], { ...tar }), { objectMode: false, highWaterMark: READ_CHUNK });
}
