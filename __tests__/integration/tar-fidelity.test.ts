// Store layer tars for every name a store path can hold, compared whole against Python's tarfile (the
// reference __tests__/support/dockertools.py, which walks, sorts and writes as nixpkgs'
// stream_layered_image.py does) on a corpus made on disk in a directory shaped like a store: names with a
// leading U+FEFF beside the same names without it, bytes that are not UTF-8 (hdrcharset=BINARY), names
// over 100 and 255 bytes and exactly at the ustar field's length, non-ASCII names whose UTF-8 byte order
// differs from Python's code point order once surrogate escapes are among them, names that sort apart as
// strings and as path parts, symlinks with such targets, hardlinks within and across store paths, empty
// directories, and owners that need PAX fields. Python's tarfile then reads our tar back: every name, link
// target and file content is the one on disk.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { fakeStorePath, sealStore } from '../support/fake-store.js';
import { storeLayerTar, type TarParams } from '../../src/image/store-layer.js';

const run = promisify(execFile);
const REFERENCE = fileURLToPath(new URL('../support/dockertools.py', import.meta.url));
// The stream script's names are os.fsdecode'd with the UTF-8 filesystem encoding of any UTF-8 or C locale.
const PY_ENV = { ...process.env, PYTHONUTF8: '1' };

async function python(args: string[], input?: Buffer): Promise<Buffer> {
  const child = run('python3', args, { encoding: 'buffer', maxBuffer: 1 << 30, env: PY_ENV });
  if (input) child.child.stdin!.end(input);
  return (await child).stdout;
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** A path below `dir` whose last parts are raw bytes (a string part is its UTF-8). */
const at = (dir: string | Buffer, ...parts: (string | Buffer)[]) => Buffer.concat([Buffer.from(dir), ...parts.flatMap((p) => [Buffer.from('/'), Buffer.from(p)])]);
const raw = (...bytes: number[]) => Buffer.from(bytes);

let root: string;
let store: string;
let confN = 0;
/** A store path name of the test's store. */
const storePath = (name: string): string => fakeStorePath(store, name);



interface Owner {
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
}

/** Our tar and the reference's for one layer, asserted byte-identical; returns our bytes. */
async function compareLayer(paths: string[], owner: Owner = {}): Promise<Buffer> {
  const fields = {
    architecture: 'amd64',
    created: '1970-01-01T00:00:01Z',
    mtime: '2024-01-02T03:04:05Z',
    uid: owner.uid ?? 0,
    gid: owner.gid ?? 0,
    uname: owner.uname ?? 'root',
    gname: owner.gname ?? 'root',
    store_dir: store,
    from_image: null,
    store_layers: [paths],
    customisation_layer: join(root, 'none'),
    repo_tag: 'test:latest',
    config: {},
  };
  const conf = join(root, `conf-${++confN}.json`);
  await writeFile(conf, JSON.stringify(fields));
  const tar: TarParams = { mtime: 1704164645, uid: fields.uid, gid: fields.gid, uname: fields.uname, gname: fields.gname, storeDir: store };
  const theirs = await python([REFERENCE, 'layer', conf, '0']);
  const ours = await collect(storeLayerTar(paths, tar));
  expect(ours.length % 10240).toBe(0);
  expect(sha(ours)).toBe(sha(theirs));
  expect(ours.equals(theirs)).toBe(true);
  return ours;
}

/** What Python's tarfile reads from a tar: per member its name's bytes, type, link target's bytes, content. */
const READ_BACK = `
import json, os, sys, tarfile
out = []
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
    for m in tar:
        data = tar.extractfile(m).read().hex() if m.isfile() else None
        out.append([os.fsencode(m.name).hex(), m.type.decode(), os.fsencode(m.linkname).hex(), data, m.uid, m.gid])
print(json.dumps(out))`;

interface ReadMember {
  name: Buffer;
  type: string;
  linkname: Buffer;
  data: Buffer | null;
  uid: number;
  gid: number;
}

async function readBack(tar: Buffer): Promise<ReadMember[]> {
  const rows = JSON.parse((await python(['-c', READ_BACK], tar)).toString()) as [string, string, string, string | null, number, number][];
  return rows.map(([n, type, l, d, uid, gid]) => ({ name: Buffer.from(n, 'hex'), type, linkname: Buffer.from(l, 'hex'), data: d === null ? null : Buffer.from(d, 'hex'), uid, gid }));
}

// Names that are not UTF-8, one byte sequence each: a lone byte ≥ 0x80, truncated sequences, encoded
// surrogates, overlongs, beyond U+10FFFF, bytes that never start a sequence, and valid text around them.
const BAD: Buffer[] = [
  raw(0xff, 0xfe),
  raw(0x66, 0xff, 0x6f),
  raw(0x80),
  raw(0xe2, 0x82),
  raw(0xe2, 0x82, 0x41),
  raw(0xed, 0xa0, 0x80),
  raw(0xed, 0xb3, 0xbf),
  raw(0xc0, 0xaf),
  raw(0xf4, 0x90, 0x80, 0x80),
  raw(0xf8, 0x78),
  raw(0xf0, 0x9f, 0x8e),
  raw(0xef, 0xbb),
  raw(0xc3, 0xa9, 0xff, 0xe6, 0x97, 0xa5),
  raw(0xef, 0xbb, 0xbf, 0xff),
];
// Valid names whose code points fall on both sides of the escapes U+DC80–U+DCFF, while their UTF-8
// bytes all sort before 0xFF: byte order and Python's str order disagree among them.
const AROUND = ['\u0080', 'ÿ', '日本', '\ud7ff', '\ue000', '\uffff', '🎉', 'z'];

let odd: string;
let bom: string;
let fuzz: string;
let other: string;
let linked: string;
let file: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nia-tar-'));
  store = join(root, 'store');
  await mkdir(store);

  odd = storePath('odd-names');
  await mkdir(odd);
  // A leading BOM beside the same name without it, for files, directories and link targets.
  await writeFile(at(odd, 'bom'), 'plain');
  await writeFile(at(odd, '\ufeffbom'), 'with a BOM');
  await mkdir(at(odd, '\ufeffdir'));
  await writeFile(at(odd, '\ufeffdir', 'in'), 'in the BOM dir');
  await mkdir(at(odd, 'dir'));
  await writeFile(at(odd, 'dir', 'in'), 'in the plain dir');
  await symlink('\ufeffbom', at(odd, 'to-bom'));
  await symlink(raw(0xef, 0xbb, 0xbf, 0xff), at(odd, 'to-bom-bad'));
  // Not UTF-8: files, a directory with files, an empty directory, in a directory not UTF-8 either.
  for (const b of BAD) await writeFile(at(odd, b), b.toString('hex'));
  for (const a of AROUND) await writeFile(at(odd, a), a);
  const badDir = raw(0x64, 0xff, 0x69, 0x72);
  await mkdir(at(odd, badDir));
  for (const b of BAD.slice(0, 5)) await writeFile(at(odd, badDir, b), 'x');
  await mkdir(at(odd, badDir, raw(0xfe)));
  await mkdir(at(odd, 'empty'));
  // Names that sort apart as strings and as path parts.
  await mkdir(at(odd, 'a', 'b'), { recursive: true });
  await writeFile(at(odd, 'a', 'b', 'c'), 'a/b/c');
  for (const n of ['a-b', 'a.b', 'a b', 'a0', 'A', 'a\x01', 'a\x7f', 'a\nb', '.a', 'a\ufeff']) await writeFile(at(odd, n), n);
  // Long names: a 255-byte part (ASCII, and mostly not UTF-8), a path over 1000 bytes, and whole member
  // names of 99, 100 and 101 characters (directories: with their slash).
  await writeFile(at(odd, 'L'.repeat(255)), 'long');
  await writeFile(at(odd, Buffer.concat([Buffer.from('M'.repeat(200)), Buffer.alloc(55, 0xff)])), 'long, not UTF-8');
  await writeFile(at(odd, 'é'.repeat(127)), 'long, two bytes a character');
  let deep = at(odd, 'deep');
  for (let i = 0; i < 6; i++) deep = at(deep, i % 2 ? 'd'.repeat(200) : Buffer.concat([Buffer.from('ü'.repeat(90)), raw(0xfe)]));
  await mkdir(deep, { recursive: true });
  await writeFile(at(deep, 'leaf'), 'deep');
  const prefix = odd.length + 1;
  for (const len of [99, 100, 101]) {
    await writeFile(at(odd, 'f'.repeat(Math.max(1, len - prefix))), String(len));
    await mkdir(at(odd, 'g'.repeat(Math.max(1, len - 1 - prefix))));
    await symlink('t'.repeat(len), at(odd, `link-${len}`));
  }
  // Symlinks: targets over 100 and 255 bytes, not UTF-8, non-ASCII; names not UTF-8; dangling.
  await symlink('/nix/store/' + 'x'.repeat(300), at(odd, 'to-long'));
  await symlink(Buffer.concat([Buffer.alloc(120, 0x61), raw(0xff, 0xfe), Buffer.from('/日本')]), at(odd, 'to-long-bad'));
  await symlink(raw(0xff, 0xfe), at(odd, 'to-bad'));
  await symlink('café', at(odd, 'to-café'));
  await symlink('bom', at(odd, raw(0x6c, 0xff)));
  await symlink('/nowhere', at(odd, 'dangling'));
  // Hardlinks, written as the files they are.
  await link(at(odd, '\ufeffbom'), at(odd, 'hard-bom'));
  await link(at(odd, raw(0x66, 0xff, 0x6f)), at(odd, raw(0xfe, 0x2d, 0x68)));
  await link(at(odd, 'bom'), at(odd, badDir, 'hard-plain'));
  await sealStore(Buffer.from(odd));

  // Only valid UTF-8, a leading BOM the one oddity.
  bom = storePath('bom-only');
  await mkdir(at(bom, '\ufeffetc'), { recursive: true });
  await mkdir(at(bom, 'etc'));
  await writeFile(at(bom, 'etc', 'conf'), 'plain');
  await writeFile(at(bom, '\ufeffetc', 'conf'), 'BOM');
  await writeFile(at(bom, '\ufeff'), 'just a BOM');
  await symlink('\ufeffetc/conf', at(bom, '\ufeffto'));
  await link(at(bom, 'etc', 'conf'), at(bom, '\ufeffhard'));
  await sealStore(Buffer.from(bom));

  // Many short names from bytes around UTF-8's boundaries (ASCII, continuation bytes, every kind of lead
  // byte, bytes that lead nothing), so decoding and ordering meet every case.
  fuzz = storePath('byte-names');
  await mkdir(fuzz);
  const alphabet = [0x41, 0x61, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbb, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xfe, 0xff];
  const made = new Set<string>();
  for (let i = 0; made.size < 400; i++) {
    const h = createHash('sha256').update(`name ${i}`).digest();
    const name = Buffer.from([...h.subarray(1, 2 + (h[0]! % 6))].map((b) => alphabet[b % alphabet.length]!));
    if (made.has(name.toString('hex'))) continue;
    made.add(name.toString('hex'));
    await writeFile(at(fuzz, name), name.toString('hex'));
  }
  await sealStore(Buffer.from(fuzz));

  other = storePath('other-1.0');
  await mkdir(at(other, raw(0xff)), { recursive: true });
  await link(at(odd, raw(0xff, 0xfe)), at(other, raw(0xff), raw(0xff, 0xfe)));
  await link(at(odd, '\ufeffbom'), at(other, '\ufeffbom'));
  await sealStore(Buffer.from(other));

  linked = storePath('odd-link');
  await symlink(odd, linked);

  file = storePath('just-a-file');
  await writeFile(file, 'a store path that is a file');
  await sealStore(Buffer.from(file));
});

describe('store layer tars, for every name a store path can hold', () => {
  it('match Python tarfile byte for byte, and read back as the names, targets and contents on disk', async () => {
    const tar = await compareLayer([odd, other, linked, file]);
    // Escaped bytes were written: a BINARY header, and the raw bytes in a PAX path.
    expect(tar.includes('21 hdrcharset=BINARY\n')).toBe(true);
    expect(tar.includes(Buffer.concat([Buffer.from(` path=${odd}/`), raw(0xff, 0xfe), Buffer.from('\n')]))).toBe(true);

    const members = await readBack(tar);
    const byName = new Map(members.map((m) => [m.name.toString('latin1'), m]));
    expect(byName.size).toBe(members.length);
    const get = (dir: string, ...parts: (string | Buffer)[]) => byName.get(at(dir, ...parts).toString('latin1'));
    expect(get(odd, 'bom')!.data!.toString()).toBe('plain');
    expect(get(odd, '\ufeffbom')!.data!.toString()).toBe('with a BOM');
    expect(get(odd, 'hard-bom')!.data!.toString()).toBe('with a BOM');
    expect(get(other, '\ufeffbom')!.data!.toString()).toBe('with a BOM');
    expect(get(odd, '\ufeffdir', 'in')!.data!.toString()).toBe('in the BOM dir');
    expect(get(odd, 'to-bom')!.linkname).toEqual(Buffer.from('\ufeffbom'));
    expect(get(odd, 'to-bom-bad')!.linkname).toEqual(raw(0xef, 0xbb, 0xbf, 0xff));
    expect(get(odd, 'to-bad')!.linkname).toEqual(raw(0xff, 0xfe));
    for (const b of BAD) expect(get(odd, b)!.data!.toString()).toBe(b.toString('hex'));
    expect(get(other, raw(0xff), raw(0xff, 0xfe))!.data!.toString()).toBe('fffe');
    expect(get(odd, raw(0x6c, 0xff))!.linkname).toEqual(Buffer.from('bom'));

    // Python's order: code points of the fsdecode'd names, the escapes U+DCxx among the valid ones.
    const order = members.map((m) => m.name.toString('latin1'));
    const pos = (dir: string, ...parts: (string | Buffer)[]) => order.indexOf(at(dir, ...parts).toString('latin1'));
    expect(pos(odd, '日本')).toBeLessThan(pos(odd, '\ud7ff'));
    expect(pos(odd, '\ud7ff')).toBeLessThan(pos(odd, raw(0x80)));
    expect(pos(odd, raw(0xff, 0xfe))).toBeLessThan(pos(odd, '\ue000'));
    expect(pos(odd, '\uffff')).toBeLessThan(pos(odd, '🎉'));
    expect(pos(odd, 'a', 'b', 'c')).toBeLessThan(pos(odd, 'a b'));
    expect(pos(odd, 'bom')).toBeLessThan(pos(odd, '\ufeffbom'));
  });

  it('match Python tarfile with owners that need PAX fields, beside names that need hdrcharset=BINARY', async () => {
    for (const owner of [
      { uid: 2 ** 21 - 1, gid: 2 ** 21 },
      { uid: 2 ** 32 - 2, gid: 4_000_000_000, uname: 'ü'.repeat(40), gname: 'nixbld' },
      { uid: 1000, gid: 100, uname: 'u'.repeat(33), gname: 'josé' },
      { uname: 'not-utf8-\udcff', gname: '\ufeffroot' },
    ]) {
      const tar = await compareLayer([other, file], owner);
      const members = await readBack(tar);
      expect(members.every((m) => m.uid === (owner.uid ?? 0) && m.gid === (owner.gid ?? 0))).toBe(true);
    }
  });

  it('keep a leading U+FEFF in names and link targets, beside the same names without it', async () => {
    const members = await readBack(await compareLayer([bom]));
    const byName = new Map(members.map((m) => [m.name.toString(), m]));
    expect(byName.size).toBe(members.length);
    expect(byName.get(`${bom}/etc/conf`)!.data!.toString()).toBe('plain');
    expect(byName.get(`${bom}/\ufeffetc/conf`)!.data!.toString()).toBe('BOM');
    expect(byName.get(`${bom}/\ufeff`)!.data!.toString()).toBe('just a BOM');
    expect(byName.get(`${bom}/\ufeffhard`)!.data!.toString()).toBe('plain');
    expect(byName.get(`${bom}/\ufeffto`)!.linkname.toString()).toBe('\ufeffetc/conf');
  });

  it('match Python tarfile for hundreds of names made of bytes around UTF-8 boundaries', async () => {
    const members = await readBack(await compareLayer([fuzz]));
    const files = members.filter((m) => m.type === '0');
    expect(files.length).toBe(400);
    for (const m of files) expect(m.data!.toString()).toBe(m.name.subarray(fuzz.length + 1).toString('hex'));
    // Python's order is not the bytes' order here.
    const names = files.map((m) => m.name);
    expect([...names].sort(Buffer.compare)).not.toEqual(names);
  });

  it('match Python tarfile per store path, each in a layer of its own', async () => {
    for (const p of [odd, bom, other, linked, file]) await compareLayer([p]);
  });
});
