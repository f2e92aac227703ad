// What the store cache saves and under which key, with the real Nix (Debian's 2.8), the real
// @actions/cache and the test cache server, calling restoreStoreCache/saveStoreCache as main and post
// do: what import from derivation built is saved, so a fresh runner builds nothing; a runner that signs
// its own builds (secret-key-files) still saves them; two flakes of one repository with identical
// flake.lock files keep entries of their own.
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nixTestEnv } from '../support/nix.js';
import { cacheJob, cacheJobEnv, forgetPaths, nixBuild } from '../support/store-cache-job.js';
import { pathsToSave } from '../../src/nix/cache.js';
import { pathInfo } from '../../src/nix/store.js';

const run = promisify(execFile);
const runners = cacheJobEnv('nia-paths-');
let work: string;

beforeAll(async () => {
  ({ work } = await runners.start());
});
afterAll(() => runners.stop());

async function recordsDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-records-'));
  await chmod(dir, 0o777);
  await writeFile(join(dir, 'builds'), '');
  await chmod(join(dir, 'builds'), 0o666);
  return dir;
}
const built = async (records: string) => (await readFile(join(records, 'builds'), 'utf8')).split('\n').filter(Boolean);
const drv = (name: string, salt: string, attrs: string, script: string) =>
  `derivation { name = ${JSON.stringify(name)}; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; salt = ${JSON.stringify(salt)}; ${attrs} args = [ "-c" ${JSON.stringify(script)} ]; }`;

/** One job as main and post run it: restore, evaluate (import from derivation builds here), build, save. */
const job = (flake: string, nixEnv: Record<string, string>) => cacheJob(flake, { nixEnv, evaluate: true });

describe('what the store cache saves', () => {
  it('saves what import from derivation built, and builds signed by the runner: a fresh runner builds nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-flake-ifd-'));
    const records = await recordsDir();
    const salt = dir;
    const ifd = drv('ifd-version', salt, '', `echo ifd >> ${records}/builds; printf 1.0 > $out`);
    const app = drv('ifd-app-${version}', salt, '', `echo app >> ${records}/builds; mkdir -p $out; echo \${version} > $out/version`);
    await writeFile(join(dir, 'flake.nix'), `{ outputs = { self }: let version = builtins.readFile (${ifd}); in rec { app = ${app}; docker = ${drv('ifd-image', salt, 'inherit app;', 'echo $app > $out')}; }; }\n`);
    // The runner signs what it builds (secret-key-files), as some self-hosted runners do.
    const keys = await mkdtemp(join(tmpdir(), 'nia-runner-key-'));
    await run('nix-store', ['--generate-binary-cache-key', 'runner-1', join(keys, 'sec'), join(keys, 'pub')], { env: { ...process.env, ...nixTestEnv() } });
    const conf = nixTestEnv({ NIX_CONFIG: `${nixTestEnv().NIX_CONFIG}\nsecret-key-files = ${join(keys, 'sec')}` });
    const flake = `path:${dir}`;

    const first = await job(flake, conf);
    expect(await built(records)).toEqual(['ifd', 'app']);
    expect(first.evaluation!.realised.some((p) => p.endsWith('-ifd-version.drv'))).toBe(true);
    const ifdOut = (await run('nix-store', ['--query', '--outputs', first.evaluation!.realised.find((p) => p.endsWith('-ifd-version.drv'))!])).stdout.trim();
    const info = JSON.parse((await run('nix', ['path-info', '--json', ifdOut], { env: { ...process.env, ...conf } })).stdout) as { signatures?: string[] }[];
    expect(info[0]!.signatures?.[0]).toMatch(/^runner-1:/);
    expect(first.summary?.skipped).toBeUndefined();
    expect(first.summary?.paths).toBe(2); // the IFD output and app; the image itself is not saved

    const appOut = (await run('nix', ['path-info', `${flake}#app`], { env: { ...process.env, ...conf } })).stdout.trim();
    await forgetPaths([first.out, appOut, ifdOut]);
    const second = await job(flake, conf);
    expect(second.restored.hit).toBe('true');
    expect(await built(records)).toEqual(['ifd', 'app']); // nothing built again
    expect(second.out).toBe(first.out);
    expect(second.summary, JSON.stringify([first.summary, second.summary, first.evaluation!.realised, second.evaluation!.realised])).toMatchObject({ key: first.summary!.key, skipped: 'unchanged' });
  });

  it('keeps an entry per flake when two flakes of one repository have identical locks', async () => {
    const records = await recordsDir();
    const lock = '{"nodes":{"root":{}},"root":"root","version":7}\n';
    const outs: Record<string, string[]> = {};
    for (const name of ['api', 'worker']) {
      const dir = join(work, 'services', name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'flake.lock'), lock);
      await writeFile(join(dir, 'flake.nix'), `{ outputs = { self }: rec { svc = ${drv(`svc-${name}`, work, '', `echo ${name} >> ${records}/builds; echo ${name} > $out`)}; docker = ${drv(`image-${name}`, work, 'inherit svc;', 'echo $svc > $out')}; }; }\n`);
    }
    const flake = (name: string) => `path:${join(work, 'services', name)}`;
    const keys: Record<string, string> = {};
    for (const name of ['api', 'worker']) {
      const r = await job(flake(name), nixTestEnv());
      keys[name] = r.summary!.key!;
      outs[name] = [r.out, (await run('nix', ['path-info', `${flake(name)}#svc`], { env: { ...process.env, ...nixTestEnv() } })).stdout.trim()];
    }
    expect(keys.api!.slice(0, -17)).not.toBe(keys.worker!.slice(0, -17));
    expect(await built(records)).toEqual(['api', 'worker']);
    // Fresh runners, alternating: each restores its own flake's entry and builds nothing.
    for (const name of ['api', 'worker', 'api']) {
      await forgetPaths(outs[name]!);
      const r = await job(flake(name), nixTestEnv());
      expect(r.restored.hit, name).toBe('true');
      expect(r.restored.restored?.key).toBe(keys[name]);
    }
    expect(await built(records)).toEqual(['api', 'worker']);
  });
});

describe('cache-max-size', () => {
  it('leaves out a path that does not fit and every path referring to it: what is kept can be substituted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-flake-size-'));
    const salt = dir;
    // big (1 MB) <- small (refers to big) ; other (small, refers to nothing): built in that order of closure.
    await writeFile(
      join(dir, 'flake.nix'),
      [
        '{ outputs = { self }: rec {',
        `  big = ${drv('big', salt, '', 'mkdir $out; head -c 1000000 /dev/urandom > $out/blob')};`,
        `  small = ${drv('small', salt, 'inherit big;', 'mkdir $out; echo $big > $out/ref')};`,
        `  other = ${drv('other', salt, '', 'mkdir $out; echo other > $out/x')};`,
        `  top = ${drv('top', salt, 'inherit small other;', 'mkdir $out; echo $small $other > $out/refs')};`,
        '}; }',
        '',
      ].join('\n'),
    );
    const env = nixTestEnv();
    const top = await nixBuild(`path:${dir}#top`, env);
    const closureOf = (await run('nix-store', ['-qR', top.out], { env: { ...process.env, ...env } })).stdout.trim().split('\n');
    const all = await pathInfo('nix', closureOf, env);
    const byName = (n: string) => all.find((i) => i.path.endsWith(`-${n}`))!;
    expect(byName('small').references).toContain(byName('big').path);
    // Room for everything but big.
    const room = all.filter((i) => !i.path.endsWith('-big')).reduce((n, i) => n + i.narSize, 0);
    const { keep, dropped } = await pathsToSave('nix', { drvPath: top.drvPath, storePath: top.out }, room, env);
    const kept = keep.map((i) => i.path);
    expect(kept).not.toContain(byName('big').path);
    expect(kept).not.toContain(byName('small').path); // it refers to big
    expect(kept).toContain(byName('other').path);
    expect(dropped).toBeGreaterThanOrEqual(2);
    for (const k of keep) for (const r of k.references) if (r !== k.path && closureOf.includes(r)) expect(kept, `${k.path} refers to ${r}`).toContain(r);
  });
});

