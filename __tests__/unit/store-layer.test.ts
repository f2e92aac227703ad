// The in-process store layer maker and config maker against the Python reference (__tests__/support/
// dockertools.py, which uses CPython's own tarfile, pathlib, json and datetime the way nixpkgs'
// stream_layered_image.py does): same bytes, so same diff ids and the same image config digest.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeStorePath, sealStore, unsealStore } from '../support/fake-store.js';
import { imageConfigBytes, parseConfBytes, parseTime, pyListRepr } from '../../src/image/docker-config.js';
import { dumpsIndent4, isJsonObject, parsePythonJson, pyFloatRepr, type JsonValue } from '../../src/image/pyjson.js';
import { storeLayerTar, tarHeader, UnsupportedImageError, type TarMember, type TarParams } from '../../src/image/store-layer.js';

const run = promisify(execFile);
const REFERENCE = fileURLToPath(new URL('../support/dockertools.py', import.meta.url));

async function python(args: string[]): Promise<Buffer> {
  const { stdout } = await run('python3', args, { encoding: 'buffer', maxBuffer: 1 << 30 });
  return stdout;
}

/** Run a Python snippet with one JSON argument; its stdout is returned as text. */
async function pyEval(code: string, arg: unknown): Promise<string> {
  return (await python(['-c', code, JSON.stringify(arg)])).toString('utf8');
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

let root: string;
let store: string;
let confN = 0;
/** A store path name of the test's store. */
const storePath = (name: string): string => fakeStorePath(store, name);




interface Conf {
  created?: string;
  mtime?: string;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  store_layers: string[][];
  customisation_layer?: string;
  config?: unknown;
  /** Raw JSON text for "config", to carry what JSON.stringify cannot (big ints, floats as written). */
  configText?: string;
}

/** Writes a conf as nixpkgs does (one JSON object) and returns its path and the tar parameters it implies. */
async function writeConf(c: Conf): Promise<{ path: string; text: string; tar: TarParams }> {
  const fields = {
    architecture: 'amd64',
    created: c.created ?? '1970-01-01T00:00:01Z',
    mtime: c.mtime ?? '1970-01-01T00:00:01Z',
    uid: c.uid ?? 0,
    gid: c.gid ?? 0,
    uname: c.uname ?? 'root',
    gname: c.gname ?? 'root',
    store_dir: store,
    from_image: null,
    store_layers: c.store_layers,
    customisation_layer: c.customisation_layer ?? join(root, 'no-customisation'),
    repo_tag: 'test:latest',
  };
  const body = JSON.stringify(fields).slice(0, -1);
  const text = `${body},"config":${c.configText ?? JSON.stringify(c.config ?? {})}}`;
  const path = join(root, `conf-${++confN}.json`);
  await writeFile(path, text);
  const tar: TarParams = { mtime: parseTime(fields.mtime).epochSeconds, uid: fields.uid, gid: fields.gid, uname: fields.uname, gname: fields.gname, storeDir: store };
  return { path, text, tar };
}

/** Our tar and the reference's for each layer of a conf, asserted byte-identical; returns our bytes. */
async function compareLayers(c: Conf): Promise<Buffer[]> {
  const conf = await writeConf(c);
  const out: Buffer[] = [];
  for (const [i, paths] of c.store_layers.entries()) {
    const theirs = await python([REFERENCE, 'layer', conf.path, String(i)]);
    const ours = await collect(storeLayerTar(paths, conf.tar));
    expect(ours.length % 10240).toBe(0);
    expect(sha(ours)).toBe(sha(theirs));
    expect(ours.equals(theirs)).toBe(true);
    out.push(ours);
  }
  return out;
}

/** Member names of a tar (with tar-stream, which reads PAX headers). */
async function names(tar: Buffer): Promise<string[]> {
  const seen: string[] = [];
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, body, next) => {
      seen.push(h.name);
      body.on('end', next);
      body.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  Readable.from([tar]).pipe(ex);
  await done;
  return seen;
}

// The tree most tests share: one layer holding several store paths of every kind.
let rich: { dir: string; single: string; link: string; other: string; long: string };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'nia-store-layer-'));
  store = join(root, 'store');
  await mkdir(store);

  const dir = storePath('hello-2.12');
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'bin', 'hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  await mkdir(join(dir, 'lib'));
  await writeFile(join(dir, 'lib', 'libhello.so'), randomBytes(70_001));
  await mkdir(join(dir, 'share', 'empty'), { recursive: true });
  // Names whose plain-string order differs from pathlib's component order.
  await mkdir(join(dir, 'a', 'b'), { recursive: true });
  await writeFile(join(dir, 'a', 'b', 'c'), 'abc');
  await writeFile(join(dir, 'a-b'), 'a-b');
  await writeFile(join(dir, 'a.txt'), 'a.txt');
  await writeFile(join(dir, 'a0'), '');
  await writeFile(join(dir, '.hidden'), 'dotfile');
  // Non-ASCII names, in BMP and astral planes (PAX path, '?' in the ustar field).
  await writeFile(join(dir, 'café'), 'é');
  await writeFile(join(dir, '日本'), '日本');
  await writeFile(join(dir, 'party-🎉.txt'), '🎉');
  await writeFile(join(dir, '\uffff-last-bmp'), 'x');
  await mkdir(join(dir, 'é-dir'));
  await writeFile(join(dir, 'é-dir', 'inside'), '1');
  // Deep names over 100 characters (PAX path), and a name of exactly 100 with its directory slash.
  const deep = join(dir, 'share', 'x'.repeat(60), 'y'.repeat(60));
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, 'z'.repeat(120)), 'deep');
  await mkdir(join(dir, 'share', 'd'.repeat(255 - 10)));
  // Symlinks: short, relative, to a directory (not followed), dangling, with a target over 100 characters.
  await symlink('hello', join(dir, 'bin', 'hi'));
  await symlink('../share', join(dir, 'lib', 'share-link'));
  await symlink('/nowhere/at/all', join(dir, 'dangling'));
  await symlink('/nix/store/' + 't'.repeat(150) + '/bin/tool', join(dir, 'long-target'));
  await symlink('日本', join(dir, 'to-日本'));
  // Hardlinks within the path.
  await link(join(dir, 'lib', 'libhello.so'), join(dir, 'lib', 'libhello.so.1'));
  await link(join(dir, 'a.txt'), join(dir, 'a', 'a.txt'));
  // A file of several MiB: many 1 MiB reads, and a size that is not a multiple of 512.
  await writeFile(join(dir, 'lib', 'big.bin'), randomBytes(5 * 1024 * 1024 + 77));
  await sealStore(dir);
  // Mode bits beyond 0o777 and a writable file, which the store never has but tarfile keeps.
  await chmod(join(dir, 'a0'), 0o4755);
  await chmod(join(dir, 'a-b'), 0o640);

  const single = storePath('hello.txt');
  await writeFile(single, 'a store path that is a file\n');
  await sealStore(single);

  const linkPath = storePath('hello-link');
  await symlink(dir, linkPath);

  const other = storePath('other-1.0');
  await mkdir(join(other, 'lib'), { recursive: true });
  await link(join(dir, 'lib', 'libhello.so'), join(other, 'lib', 'libhello.so')); // across two paths
  await writeFile(join(other, 'lib', 'own'), randomBytes(511));
  await sealStore(other);

  const long = storePath('l'.repeat(180));
  await mkdir(join(long, 'bin'), { recursive: true });
  await writeFile(join(long, 'bin', 'tool'), 'tool', { mode: 0o755 });
  await sealStore(long);

  rich = { dir, single, link: linkPath, other, long };
});

afterAll(async () => {
  if (root) {
    await unsealStore(Buffer.from(root));
    await rm(root, { recursive: true, force: true });
  }
});

describe('store layer tars', () => {
  it('match the reference for paths of every kind in one layer', async () => {
    const [tar] = await compareLayers({ store_layers: [[rich.dir, rich.single, rich.link, rich.other, rich.long]] });
    const seen = await names(tar!);
    expect(seen.slice(0, 2)).toEqual(['/nix/', '/nix/store/']);
    // pathlib order: "a/…" before "a-b" and "a.txt"; the symlinked store path alone, not its target's tree.
    const a = seen.indexOf(`${rich.dir}/a/`);
    expect(a).toBeLessThan(seen.indexOf(`${rich.dir}/a-b`));
    expect(seen.indexOf(`${rich.dir}/a/b/c`)).toBeLessThan(seen.indexOf(`${rich.dir}/a-b`));
    expect(seen.filter((n) => n.startsWith(rich.link))).toEqual([rich.link]);
    expect(seen).toContain(`${rich.dir}/party-🎉.txt`);
    expect(seen.some((n) => n.startsWith(`${rich.dir}/lib/share-link/`))).toBe(false);
  });

  it('match the reference one path a layer, over several layers', async () => {
    await compareLayers({ store_layers: [[rich.single], [rich.link], [rich.long], [rich.other, rich.dir]] });
  });

  it('match the reference with other owners and times, also ones needing PAX fields', async () => {
    await compareLayers({ store_layers: [[rich.other, rich.single]], uid: 1000, gid: 100, uname: 'user', gname: 'users', mtime: '2023-11-14T22:13:20Z' });
    // Out of octal range (uid ≥ 8**7), a negative mtime, a uname over 32 characters, a non-ASCII gname.
    await compareLayers({
      store_layers: [[rich.single, rich.long]],
      uid: 3_000_000,
      gid: 2_097_152,
      uname: 'u'.repeat(40),
      gname: 'josé',
      mtime: '1969-12-31T23:59:59Z',
    });
    await compareLayers({ store_layers: [[rich.single]], mtime: '2300-01-01T00:00:00+02:00', uname: '', gname: 'g'.repeat(32) });
  });

  it('pad to the 10240-byte record for every remainder', async () => {
    // Files of growing sizes move the end of the members across record boundaries.
    const paths: string[] = [];
    for (const size of [0, 1, 511, 512, 513, 9216, 9728, 10240]) {
      const p = storePath(`pad-${size}`);
      await writeFile(p, randomBytes(size));
      await sealStore(p);
      paths.push(p);
    }
    const tars = await compareLayers({ store_layers: paths.map((p) => [p]) });
    const lengths = new Set(tars.map((t) => t.length));
    expect(lengths.size).toBeGreaterThan(1);
    for (const t of tars) expect(t.subarray(t.length - 1024).equals(Buffer.alloc(1024))).toBe(true);
  });

  it('match the reference for names that are not UTF-8, and fail on paths outside the store or missing', async () => {
    const bad = storePath('bad-name');
    await mkdir(bad);
    await writeFile(Buffer.concat([Buffer.from(bad + '/'), Buffer.from([0x66, 0xff, 0x6f])]), 'x');
    await compareLayers({ store_layers: [[bad]] });
    const tar: TarParams = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root', storeDir: store };
    await expect(collect(storeLayerTar(['/etc/hostname'], tar))).rejects.toThrow(/not under the store/);
    await expect(collect(storeLayerTar([storePath('missing')], tar))).rejects.toThrow(/ENOENT/);
    await expect(collect(storeLayerTar([store + '//x'], tar))).rejects.toBeInstanceOf(UnsupportedImageError);
  });

  it('write headers as tarfile does, for sizes and names no test tree has', async () => {
    const base: TarMember = { name: '/nix/store/x', mode: 0o444, uid: 0, gid: 0, size: 0, mtime: 1, type: '0', linkname: '', uname: 'root', gname: 'root' };
    const members: TarMember[] = [
      base,
      { ...base, size: 8 ** 11 - 1 },
      { ...base, size: 8 ** 11 }, // 8 GiB: a PAX size
      { ...base, size: 300 * 1024 ** 3, mtime: 8 ** 11 + 5, name: '/nix/store/' + 'ü'.repeat(120) },
      { ...base, type: '2', linkname: 'l'.repeat(100) },
      { ...base, type: '2', linkname: 'l'.repeat(101) + 'é' },
      { ...base, type: '5', name: '/nix/store/' + 'd'.repeat(88) + '/' }, // 100 characters with the slash
      { ...base, name: 'n'.repeat(998) }, // a PAX record whose length grows a digit
      // Surrogate escapes (os.fsdecode of bytes that are not UTF-8): hdrcharset=BINARY, every value raw.
      { ...base, name: '/nix/store/f\udcffo' },
      { ...base, name: '/nix/store/\udc80' + 'x'.repeat(120), gname: 'josé', uid: 8 ** 7 },
      { ...base, type: '2', linkname: '\udcfe\udcff' + 'é'.repeat(60) },
      { ...base, uname: 'u\udcc3', name: '/nix/store/\ufeffbom' },
    ];
    const code = `
import json, sys, tarfile
out = []
for m in json.loads(sys.argv[1]):
    t = tarfile.TarInfo(m["name"])
    for k in ("mode", "uid", "gid", "size", "mtime", "linkname", "uname", "gname"):
        setattr(t, k, m[k])
    t.type = m["type"].encode()
    out.append(t.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape").hex())
print(json.dumps(out))`;
    const theirs = JSON.parse(await pyEval(code, members)) as string[];
    expect(members.map((m) => tarHeader(m).toString('hex'))).toEqual(theirs);
    // A lone surrogate outside U+DC80–U+DCFF, which Python cannot encode either.
    expect(() => tarHeader({ ...base, name: '/nix/store/\ud800' })).toThrow(UnsupportedImageError);
  });
});

// Python's own json round trip of a text: json.dumps(json.loads(text), indent=4).
const DUMPS = 'import json, sys\nprint(json.dumps(json.loads(json.loads(sys.argv[1])), indent=4), end="")';

describe('Python JSON', () => {
  const texts = [
    '{}',
    '[]',
    '{"a": {}, "b": [], "c": [[], {}], "d": null, "e": true, "f": false}',
    '{"Env": ["PATH=/bin", "LANG=C.UTF-8", "X=caf\\u00e9 \u65e5\u672c \ud83c\udf89"], "Cmd": ["/bin/sh", "-c", "echo \\"hi\\"\\n\\t\\\\"]}',
    '{"ctl": "\\u0000\\u0001\\u001f\\u007f\\u0080\\b\\f\\r\\/", "lone": "\\udc80\\ud800x", "pair": "\\ud83d\\ude00"}',
    '{"big": 123456789012345678901234567890, "neg": -9007199254740993, "zero": -0, "n": [0, 1, -1, 2]}',
    '{"f": [1.0, -0.0, 0.1, 1e16, 1E-5, 1.5e300, 1e400, -1e400, 123456789.125, 5e-324, 2.5, 100.0]}',
    '{"nan": NaN, "inf": Infinity, "ninf": -Infinity}',
    '{"dup": 1, "other": 2, "dup": 3}',
    '  \n\t{ "spaced" :[ 1 ,2 ] }\r\n',
    '{"ExposedPorts": {"8080/tcp": {}}, "Labels": {"org.opencontainers.image.title": "x"}, "Volumes": {"/data": {}}}',
    '"just a string"',
    '42',
  ];

  it('round-trips as json.dumps(json.loads(text), indent=4)', async () => {
    for (const t of texts) {
      const theirs = await pyEval(DUMPS, t);
      expect(dumpsIndent4(parsePythonJson(t)), t).toBe(theirs);
    }
  });

  it('keeps a repeated key in its first place with its last value', () => {
    const v = parsePythonJson('{"dup": 1, "other": 2, "dup": 3}');
    expect(isJsonObject(v) && [...v.keys()]).toEqual(['dup', 'other']);
  });

  it('writes floats as Python repr does', async () => {
    const bits = randomBytes(8 * 3000);
    const values: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const x = bits.readDoubleLE(i * 8);
      if (Number.isFinite(x)) values.push(x);
    }
    // Also short decimals near the fixed/exponent switch, and integers as floats.
    for (let e = -8; e <= 20; e++) values.push(10 ** e, 1.5 * 10 ** e, 123.456 * 10 ** e, -(10 ** e));
    const lexemes = values.map((x) => (Object.is(x, -0) ? '-0.0' : x.toExponential()));
    const theirs = JSON.parse(await pyEval('import json, sys\nprint(json.dumps([repr(float(s)) for s in json.loads(sys.argv[1])]))', lexemes)) as string[];
    expect(lexemes.map((l) => pyFloatRepr(Number(l)))).toEqual(theirs);
  });

  it('refuses what json.load refuses', () => {
    for (const t of ['{"a": 1} x', '{"a": "raw\ncontrol"}', "{'a': 1}", '[1,]', '{"a" 1}', '01', '1.', '-', '"\\x"', '"\\u12"', `[${'9'.repeat(4301)}]`, '-NaN']) {
      expect(() => parsePythonJson(t), t).toThrow(UnsupportedImageError);
    }
    expect(() => parseConfBytes(Buffer.from('\ufeff{}'))).toThrow(UnsupportedImageError);
    expect(() => parseConfBytes(Buffer.from([0x7b, 0xff, 0x7d]))).toThrow(UnsupportedImageError);
    expect(parsePythonJson(`[${'9'.repeat(4300)}]`)).toBeDefined();
  });
});

describe('conf times', () => {
  const accepted = [
    '1970-01-01T00:00:01Z',
    '1970-01-01T00:00:01+00:00',
    '1970-01-01T00:00:01-00:00',
    '2024-02-29T12:34:56+05:30',
    '2024-02-29 12:34:56-08:00',
    '1970-01-01T00:00:01.5Z',
    '1970-01-01T00:00:01.000000Z',
    '2023-09-02T00:00:01.123456+00:00',
    '1969-12-31T23:59:59.5Z',
    '1969-12-31T23:59:58.000001+00:00',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59-23:59',
    '2100-03-01T00:00:00.42+01:00',
  ];
  const TIMES = `
import json, sys
from datetime import datetime
out = []
for s in json.loads(sys.argv[1]):
    d = datetime.fromisoformat(s)
    out.append([d.isoformat(), int(d.timestamp())])
print(json.dumps(out))`;

  it('give what fromisoformat, isoformat and int(timestamp()) give', async () => {
    const theirs = JSON.parse(await pyEval(TIMES, accepted)) as [string, number][];
    expect(accepted.map((s) => { const t = parseTime(s); return [t.iso, t.epochSeconds]; })).toEqual(theirs);
  });

  it('refuse "now", naive times and forms we do not reproduce', () => {
    for (const s of ['now', '1970-01-01T00:00:01', '1970-01-01', '1970-01-01T00:00:01.1234567Z', '1970-01-01T00:00:01,5Z', '19700101T000001Z', '1970-01-01T00:00Z', '1970-02-30T00:00:00Z', '1970-01-01T24:00:00Z', '1970-01-01T00:00:01+0530', '1970-01-01T00:00:01z', '1000-01-01T00:00:00.5Z']) {
      expect(() => parseTime(s), s).toThrow(UnsupportedImageError);
    }
  });
});

describe('image config', () => {
  it("matches the reference's whole archive: layer diff ids and config bytes", async () => {
    const custom = join(root, 'customisation-layer');
    await mkdir(custom);
    const custTar = Buffer.alloc(10240);
    await writeFile(join(custom, 'layer.tar'), custTar);
    await writeFile(join(custom, 'checksum'), sha(custTar) + '\n');
    const configText = JSON.stringify({
      Cmd: ['/bin/hello', '--greeting', 'grüß dich 🎉'],
      Env: ['PATH=/bin', 'CTL=\u0001\u007f\t\n'],
      Labels: { 'org.opencontainers.image.description': 'say "hello" \\ 日本' },
      ExposedPorts: { '8080/tcp': {} },
      Volumes: {},
      Entrypoint: [],
      Nested: { a: [{ b: [[], {}] }] },
    }).replace('"Volumes"', '"Big": 18446744073709551616, "Float": 2.50, "Volumes"');
    const storeLayers = [[rich.dir, rich.single], [rich.other], [rich.link]];
    const conf = await writeConf({ store_layers: storeLayers, customisation_layer: custom, configText, created: '2024-07-16T10:20:30.5+02:00' });
    const archive = await python([REFERENCE, 'stream', conf.path]);

    const files = new Map<string, Buffer>();
    const ex = extract();
    const done = new Promise<void>((resolve, reject) => {
      ex.on('entry', (h, body, next) => {
        const parts: Buffer[] = [];
        body.on('data', (c: unknown) => void parts.push(c as Buffer));
        body.on('end', () => (files.set(h.name, Buffer.concat(parts)), next()));
      });
      ex.on('finish', resolve);
      ex.on('error', reject);
    });
    Readable.from([archive]).pipe(ex);
    await done;

    const manifest = JSON.parse(files.get('manifest.json')!.toString()) as { Config: string; Layers: string[] }[];
    const diffIDs: string[] = [];
    for (const paths of storeLayers) diffIDs.push(`sha256:${sha(await collect(storeLayerTar(paths, conf.tar)))}`);
    diffIDs.push(`sha256:${sha(custTar)}`);
    expect(manifest[0]!.Layers).toEqual(diffIDs.map((d) => `${d.slice(7)}/layer.tar`));
    for (const l of manifest[0]!.Layers) expect(`sha256:${sha(files.get(l)!)}`).toBe(`sha256:${l.slice(0, 64)}`);

    const parsed = parseConfBytes(Buffer.from(conf.text));
    if (!isJsonObject(parsed)) throw new Error('conf is not an object');
    const ours = imageConfigBytes(
      { created: parsed.get('created') as string, architecture: parsed.get('architecture') as string, config: parsed.get('config') as JsonValue, storeLayers, customisationLayer: custom },
      diffIDs,
    );
    const theirs = files.get(manifest[0]!.Config)!;
    expect(ours.toString()).toBe(theirs.toString());
    expect(`${sha(ours)}.json`).toBe(manifest[0]!.Config);
  });

  it("writes history comments as Python's repr of the path list", async () => {
    const lists = [[], ['/nix/store/abc-x'], ['/nix/store/a-x', '/nix/store/b-y'], ["/s/it's"], ['/s/"q"'], ['/s/both\'"'], ['/s/back\\slash']];
    const theirs = JSON.parse(await pyEval('import json, sys\nprint(json.dumps([repr(l) for l in json.loads(sys.argv[1])]))', lists)) as string[];
    expect(lists.map(pyListRepr)).toEqual(theirs);
  });
});
