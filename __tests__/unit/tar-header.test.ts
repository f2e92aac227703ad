// TarNames, the header-only tar reader behind the SBOM's store paths: it lists the entries of tars Python's
// tarfile writes (ustar, pax and GNU long names, symlinks, hard links, empty and large files) exactly as
// tarfile reads them back, whatever the chunks it is fed (a byte at a time, across header boundaries).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { TarNames, type TarEntry } from '../../src/image/tar-header.js';

const run = promisify(execFile);

const MAKE = `
import io, json, sys, tarfile
fmt = {'pax': tarfile.PAX_FORMAT, 'gnu': tarfile.GNU_FORMAT, 'ustar': tarfile.USTAR_FORMAT}[sys.argv[2]]
long = 'nix/store/' + 'a' * 32 + '-' + 'long-name-' * 12 + '/share/' + 'b' * 90
names = ['nix/store/' + 'c' * 32 + '-short', 'nix/store/' + 'c' * 32 + '-short/bin/app', long if sys.argv[2] != 'ustar' else 'nix/store/' + 'd' * 32 + '-x/' + 'e' * 60 + '/' + 'f' * 60]
with tarfile.open(sys.argv[1], 'w', format=fmt) as t:
    for n in names:
        ti = tarfile.TarInfo(n); ti.type = tarfile.DIRTYPE if n.endswith('short') else tarfile.REGTYPE
        data = b'' if ti.type == tarfile.DIRTYPE else bytes(range(256)) * 7
        ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    s = tarfile.TarInfo('bin'); s.type = tarfile.SYMTYPE; s.linkname = '/' + names[1].rsplit('/', 1)[0] if sys.argv[2] == 'ustar' else '/' + long; t.addfile(s)
    h = tarfile.TarInfo('app-again'); h.type = tarfile.LNKTYPE; h.linkname = names[1]; t.addfile(h)
    e = tarfile.TarInfo('empty'); e.size = 0; t.addfile(e, io.BytesIO(b''))
    big = tarfile.TarInfo('nix/store/' + 'g' * 32 + '-big/blob'); big.size = 70000; t.addfile(big, io.BytesIO(b'z' * 70000))
with tarfile.open(sys.argv[1]) as t:
    print(json.dumps([[m.name, m.linkname, m.type.decode()] for m in t.getmembers()]))
`;

describe('TarNames', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nia-tarnames-'));
    await writeFile(join(dir, 'make.py'), MAKE);
  });

  for (const format of ['pax', 'gnu', 'ustar']) {
    it(`lists a ${format} tar as Python's tarfile reads it, fed in any chunks`, async () => {
      const file = join(dir, `${format}.tar`);
      const expected = JSON.parse((await run('python3', [join(dir, 'make.py'), file, format])).stdout) as [string, string, string][];
      const bytes = await readFile(file);
      for (const size of [1, 7, 511, 512, 513, 4096, bytes.length]) {
        const seen: TarEntry[] = [];
        const names = new TarNames((e) => seen.push(e));
        for (let i = 0; i < bytes.length; i += size) names.write(bytes.subarray(i, i + size));
        // tarfile strips a directory's trailing slash; the flags are tar's own.
        expect(seen.map((e) => [e.name.replace(/\/$/, ''), e.linkname, e.flag === '\0' ? '0' : e.flag]), `chunks of ${size}`).toEqual(expected);
      }
    });
  }
});

/** A ustar header block (checksum included). */
function header(name: string, flag: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h[156] = flag.charCodeAt(0);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}
const body = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

describe('TarNames, records in a row', () => {
  it('takes a pax size for the entry after the records, not for a GNU long-name record between them', () => {
    const long = `nix/store/${'l'.repeat(32)}-${'long-'.repeat(30)}`;
    const pax = Buffer.from('13 size=2048\n'); // a pax record's length counts the whole line
    const tar = Buffer.concat([
      header('././@PaxHeader', 'x', pax.length), body(pax),
      header('././@LongLink', 'L', long.length + 1), body(Buffer.from(`${long}\0`)),
      header('short', '0', 0), body(Buffer.alloc(2048, 7)),
      header('after', '0', 3), body(Buffer.from('abc')),
      Buffer.alloc(1024),
    ]);
    const seen: TarEntry[] = [];
    const names = new TarNames((e) => seen.push(e));
    names.write(tar);
    expect(seen.map((e) => [e.name, e.size])).toEqual([[long, 2048], ['after', 3]]);
  });
});
