// Recognising dockerTools images from their derivations: the ATerm reader, the wrapper and pipe shapes,
// the script check and the conf's accepted shape. Derivation files are written to a temp dir: recognition
// reads only files, so no Nix is needed here (the e2e tests do it with real Nix).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseDerivation } from '../../src/nix/derivation.js';
import { missingMarkers, planFromConf, recogniseImage, type RecognisedImage } from '../../src/nix/dockertools.js';

const S = '/nix/store';
const h = (c: string) => c.repeat(32);

function aterm(d: { outputs: Record<string, string>; inputDrvs?: Record<string, string[]>; inputSrcs?: string[]; builder?: string; args?: string[]; env?: Record<string, string> }): string {
  const q = (s: string) => JSON.stringify(s).replace(/\\u00([0-9a-f]{2})/g, (_, x: string) => String.fromCharCode(parseInt(x, 16)));
  const list = (xs: string[]) => `[${xs.map(q).join(',')}]`;
  return (
    `Derive([${Object.entries(d.outputs).map(([n, p]) => `(${q(n)},${q(p)},"","")`).join(',')}],` +
    `[${Object.entries(d.inputDrvs ?? {}).map(([p, o]) => `(${q(p)},${list(o)})`).join(',')}],` +
    `${list(d.inputSrcs ?? [])},"x86_64-linux",${q(d.builder ?? '/bin/sh')},${list(d.args ?? [])},` +
    `[${Object.entries(d.env ?? {}).map(([k, v]) => `(${q(k)},${q(v)})`).join(',')}])`
  );
}

describe('parseDerivation', () => {
  it('reads outputs, inputs, args and env, with escapes', () => {
    const text = aterm({
      outputs: { out: `${S}/${h('a')}-x` },
      inputDrvs: { [`${S}/${h('b')}-y.drv`]: ['out', 'dev'] },
      inputSrcs: [`${S}/${h('c')}-src`],
      args: ['-c', 'echo "hi"\n\tdone\\'],
      env: { name: 'x', buildCommand: 'a | b > $out' },
    });
    const d = parseDerivation(text, 'x.drv');
    expect(d.outputs.out).toBe(`${S}/${h('a')}-x`);
    expect(d.inputDrvs[`${S}/${h('b')}-y.drv`]).toEqual(['out', 'dev']);
    expect(d.inputSrcs).toEqual([`${S}/${h('c')}-src`]);
    expect(d.args).toEqual(['-c', 'echo "hi"\n\tdone\\']);
    expect(d.env.buildCommand).toBe('a | b > $out');
  });
  it('refuses what is not a derivation', () => {
    expect(() => parseDerivation('{"not":"aterm"}', 'x.drv')).toThrow(/x\.drv: not a derivation/);
    expect(() => parseDerivation('Derive([("out","/x"', 'x.drv')).toThrow(/not a derivation/);
  });
});

const script = [
  'import tarfile',
  'def archive(obj, paths):',
  '    with tarfile.open(fileobj=obj, mode="w|") as tar:',
  '        for filename in sorted(path.rglob("*")):',
  '            if ti.islnk():',
  '                ti.type = tarfile.REGTYPE',
  ...['store_layers', 'customisation_layer', 'mtime', 'uid', 'gid', 'uname', 'gname', 'store_dir', 'created', 'architecture', 'config'].map((k) => `x = conf["${k}"]`),
  'image_json = json.dumps(image_json, indent=4)',
  'comment = f"store paths: {layer.paths}"',
].join('\n');

describe('recogniseImage', () => {
  let dir: string;
  let drvs: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nia-drv-'));
    const file = async (name: string, text: string) => {
      const p = join(dir, name);
      await writeFile(p, text);
      return p;
    };
    const src = await file(`${h('s')}-stream_layered_image.py`, script);
    const badSrc = await file(`${h('t')}-stream_layered_image.py`, script.replace('tarfile.REGTYPE', 'tarfile.LNKTYPE'));
    const scriptOut = `${S}/${h('1')}-stream`;
    const confOut = `${S}/${h('2')}-img-conf.json`;
    const streamOut = `${S}/${h('3')}-stream-img`;
    const scriptDrv = await file('script.drv', aterm({ outputs: { out: scriptOut }, inputSrcs: [src], env: { name: 'stream' } }));
    const badScriptDrv = await file('badscript.drv', aterm({ outputs: { out: scriptOut }, inputSrcs: [badSrc], env: { name: 'stream' } }));
    const confDrv = await file('conf.drv', aterm({ outputs: { out: confOut }, env: { name: 'img-conf.json' } }));
    const wrapper = (scriptDrvPath: string) =>
      aterm({
        outputs: { out: streamOut },
        inputDrvs: { [scriptDrvPath]: ['out'], [confDrv]: ['out'] },
        builder: '/nix/store/x-bash/bin/bash',
        args: ['-e', '/nix/store/x-default-builder.sh'],
        env: { name: 'stream-img', buildCommand: `makeWrapper ${scriptOut} $out --add-flags ${confOut}\n`, passAsFile: 'buildCommand' },
      });
    const streamDrv = await file('stream.drv', wrapper(scriptDrv));
    const badStreamDrv = await file('badstream.drv', wrapper(badScriptDrv));
    const piped = (cmd: string, inFlag: 'env' | 'args') =>
      aterm({
        outputs: { out: `${S}/${h('4')}-img.tar.gz` },
        inputDrvs: { [streamDrv]: ['out'] },
        ...(inFlag === 'env' ? { env: { name: 'img.tar.gz', buildCommand: cmd } } : { args: ['-c', cmd], env: { name: 'img.tar.gz' } }),
      });
    drvs = {
      stream: streamDrv,
      badStream: badStreamDrv,
      pigz: await file('pigz.drv', piped(`${streamOut} | pigz -p$NIX_BUILD_CORES -nTR > $out`, 'env')),
      zstd: await file('zstd.drv', piped(`${streamOut} | zstd -T$NIX_BUILD_CORES > $out`, 'args')),
      plain: await file('plain.drv', piped(`${streamOut} > $out`, 'env')),
      other: await file('other.drv', piped(`${S}/${h('9')}-someone-else | pigz > $out`, 'env')),
      extra: await file('extra.drv', piped(`${streamOut} | pigz -nTR > $out; echo more >> $out`, 'env')),
      buildImage: await file('buildimage.drv', aterm({ outputs: { out: `${S}/${h('5')}-img.tar.gz` }, env: { name: 'docker-image-img.tar.gz', buildCommand: 'tar -C image --sort=name -c . | pigz -nT > $out\nmore' } })),
    };
  });

  it('recognises a streamLayeredImage wrapper by its structure', async () => {
    const r = await recogniseImage(drvs.stream!);
    expect(r.reason).toBe('stream-img is a dockerTools streamLayeredImage');
    expect(r.image).toMatchObject({ kind: 'stream', confDrv: join(dir, 'conf.drv'), confPath: `${S}/${h('2')}-img-conf.json` });
  });
  it('recognises buildLayeredImage piping the stream into pigz, zstd, or $out; the command from buildCommand or -c', async () => {
    expect((await recogniseImage(drvs.pigz!)).image).toMatchObject({ kind: 'archive', compressor: 'pigz -p$NIX_BUILD_CORES -nTR' });
    expect((await recogniseImage(drvs.zstd!)).image).toMatchObject({ kind: 'archive', compressor: 'zstd -T$NIX_BUILD_CORES' });
    expect((await recogniseImage(drvs.plain!)).image).toMatchObject({ kind: 'archive' });
  });
  it('keeps the archive path, saying why, for anything else', async () => {
    expect(await recogniseImage(drvs.other!)).toEqual({ reason: expect.stringMatching(/pipes .*someone-else, which none of its input derivations makes/) });
    expect((await recogniseImage(drvs.extra!)).image).toBeUndefined();
    expect((await recogniseImage(drvs.buildImage!)).reason).toMatch(/is not a dockerTools layered image/);
    const bad = await recogniseImage(drvs.badStream!);
    expect(bad.image).toBeUndefined();
    expect(bad.reason).toMatch(/a stream_layered_image\.py this action does not know \(it lacks: hardlinks copied as regular files\)/);
  });
  it('names every marker a script lacks', () => {
    expect(missingMarkers(script)).toEqual([]);
    expect(missingMarkers('import tarfile\n')).toContain('conf["mtime"] read');
  });
});

describe('planFromConf', () => {
  const image = { confPath: `${S}/${h('2')}-img-conf.json` } as RecognisedImage;
  const conf = {
    architecture: 'amd64',
    config: { Cmd: ['/bin/app'] },
    os: 'linux',
    store_dir: S,
    from_image: null,
    store_layers: [[`${S}/${h('a')}-glibc`], [`${S}/${h('b')}-app`, `${S}/${h('c')}-data`]],
    customisation_layer: `${S}/${h('d')}-img-customisation-layer`,
    repo_tag: 'img:tag',
    created: '1970-01-01T00:00:01+00:00',
    mtime: '1970-01-01T00:00:01+00:00',
    uid: '1000',
    gid: '100',
    uname: 'app',
    gname: 'users',
  };
  const plan = (c: object) => planFromConf(JSON.stringify(c), image);

  it('reads the conf as the script does (uid and gid come as jq --arg strings)', () => {
    const r = plan(conf);
    expect('ok' in r && r.ok).toMatchObject({ storeLayers: conf.store_layers, uid: 1000, gid: 100, uname: 'app', gname: 'users', storeDir: S, mtime: conf.mtime });
  });
  it.each([
    ['a base image', { ...conf, from_image: `${S}/${h('e')}-base.tar` }, /fromImage base/],
    ['an older conf without mtime', (({ mtime: _m, ...rest }) => rest)(conf), /missing: mtime/],
    ['an unknown key', { ...conf, layer_mode: 'x' }, /unknown: layer_mode/],
    ['a uid that is no number', { ...conf, uid: 'root' }, /uid is not a whole number: "root"/],
    ['a path outside store_dir', { ...conf, store_layers: [['/opt/x']] }, /store_layers are not lists of store paths under \/nix\/store/],
    ['an empty layer', { ...conf, store_layers: [[]] }, /store_layers are not lists/],
  ])('refuses %s', (_what, c, reason) => {
    const r = plan(c);
    expect('reason' in r && r.reason).toMatch(reason);
  });
});
