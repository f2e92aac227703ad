// The store cache with a signing key, proved with the real Nix (Debian's 2.8), the real @actions/cache
// and the test cache server, calling restoreStoreCache/saveStoreCache as main and post do: every saved
// narinfo is signed by binary-cache-key; a restored entry whose narinfo for the image's content is
// forged (unsigned, or signed by another key) is refused, so Nix builds the real content — and, without
// a key, the same forged entry is taken (what the key exists to stop); the secret key is in nothing
// the job writes or prints.
import { execFile } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as cache from '@actions/cache';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir, restoreStoreCache, type CacheState } from '../../src/nix/cache.js';
import { narinfo, hashPart, writeBinaryCache } from '../../src/nix/binary-cache.js';
import { pathInfo } from '../../src/nix/store.js';
import { parseSecretKey, publicKeyOf } from '../../src/nix/signing.js';
import { layerRecordTrusted, readLayerRecord, recordDigest, recordLayers, signLayerRecord } from '../../src/nix/layer-record.js';
import type { CacheServer } from '../support/cache-server.js';
import { filesUnder } from '../support/expect-run.js';
import { builtSoFar, forgetOutputs, makeClosureFlake, type ClosureFlake } from '../support/flakes.js';
import { generateCacheKey, nixTestEnv } from '../support/nix.js';
import { cacheJob, cacheJobEnv, nixBuild, type MainOptions, type PostOptions } from '../support/store-cache-job.js';

const run = promisify(execFile);
const nixEnv = nixTestEnv();
const env = { ...process.env, ...nixEnv };
const runners = cacheJobEnv('nia-trust-');

let server: CacheServer;
let work: string;
let secret: string;
let pub: string;
let otherSecret: string;

beforeAll(async () => {
  ({ server, work } = await runners.start());
  ({ secret, pub } = await generateCacheKey('nia-test-1'));
  otherSecret = (await generateCacheKey('someone-else-1')).secret;
});
afterAll(() => runners.stop());

/** The runners' HOME: the same on each (@actions/cache versions an entry by its path), and each fresh
 *  runner starts without the outputs (forgetOutputs) and with the cache directory emptied (by the restore). */
async function freshHome(): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
  process.env.HOME = home;
  return home;
}

/** One job: restore, build <flake>#docker, save (as post does, with `secretKey`); output captured. */
const job = (flake: ClosureFlake, opts: MainOptions & PostOptions) => cacheJob(flake.flake, opts);

/** Independently of src: the narinfo's Sig verifies against `publicKey` over Nix's fingerprint. */
function signedBy(text: string, publicKey: string): boolean {
  const field = (n: string) => new RegExp(`^${n}: (.*)$`, 'm').exec(text)?.[1] ?? '';
  const refs = field('References').split(' ').filter(Boolean).map((r) => `/nix/store/${r}`).sort();
  const fp = `1;${field('StorePath')};${field('NarHash')};${field('NarSize')};${refs.join(',')}`;
  const [name, key] = publicKey.split(':');
  const sig = field('Sig');
  if (!sig.startsWith(`${name}:`)) return false;
  const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(key!, 'base64')]);
  return verify(null, Buffer.from(fp), createPublicKey({ key: der, format: 'der', type: 'spki' }), Buffer.from(sig.slice(name!.length + 1), 'base64'));
}

describe('binary-cache-key', () => {
  it('derives the public key as nix-store --generate-binary-cache-key does', () => {
    expect(publicKeyOf(secret)).toBe(pub);
    expect(parseSecretKey(secret).name).toBe('nia-test-1');
  });

  it('signs every saved path, leaves the secret key nowhere, and refuses a forged narinfo that the keyless cache takes', async () => {
    const flake = await makeClosureFlake('1', 0);
    const home = await freshHome();
    const first = await job(flake, { trustedKeys: [pub], secretKey: secret });
    expect(first.summary?.skipped, first.printed).toBeUndefined();
    expect(first.summary?.paths).toBe(2); // base and app; the image itself is not saved
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);
    const dir = cacheDir(home);
    const narinfos = (await readdir(dir)).filter((n) => n.endsWith('.narinfo'));
    expect(narinfos).toHaveLength(2);
    for (const n of narinfos) expect(signedBy(await readFile(join(dir, n), 'utf8'), pub), n).toBe(true);

    // The secret key, or its base64, in nothing printed, in the state post reads, in no file left behind.
    const b64 = secret.split(':')[1]!;
    expect(first.printed).not.toContain(b64);
    expect(JSON.stringify(first.restored.state)).not.toContain(b64);
    for (const f of [...(await filesUnder(home)), ...(await filesUnder(join(work, 'tmp')))]) expect((await readFile(f)).includes(b64), f).toBe(false);
    const stored = server.entries.filter((e) => e.committed).at(-1)!;
    expect((await readFile(stored.file)).includes(Buffer.from(b64))).toBe(false);

    // A fresh runner restores it, checks the signatures, and builds nothing.
    const [image, app, base] = await forgetOutputs(flake, ['docker', 'app', 'base']);
    const second = await job(flake, { trustedKeys: [pub], secretKey: secret });
    expect(second.restored.hit).toBe('true');
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);
    expect(second.log).toMatch(/copying path '\/nix\/store\/\w+-cache-app' from 'file:\/\//);
    expect(second.out).toBe(image);

    // The forger's entry: the saved one, with app's NAR replaced and its narinfo unsigned or signed by
    // another key; saved later under the same key prefix, so a fresh runner restores it.
    const appContent = await readFile(join(app!, 'bin', 'app'), 'utf8');
    const signed = join(work, 'signed-entry');
    await cp(dir, signed, { recursive: true });
    const forged = async (variant: 'unsigned' | 'other-key'): Promise<void> => {
      const dest = dir;
      await rm(dest, { recursive: true, force: true });
      await cp(signed, dest, { recursive: true });
      const fake = join(work, `fake-${variant}`);
      await mkdir(join(fake, 'bin'), { recursive: true });
      await writeFile(join(fake, 'bin', 'app'), '#!/bin/sh\necho forged\n', { mode: 0o755 });
      const nar = join(dest, 'nar', `${hashPart(app!)}.nar`);
      const { stdout } = await run('nix-store', ['--dump', fake], { env, encoding: 'buffer', maxBuffer: 1e8 });
      await writeFile(nar, stdout);
      const narHash = (await run('nix-hash', ['--type', 'sha256', '--base32', '--flat', nar], { env })).stdout.trim();
      const info = { path: app!, narHash: `sha256:${narHash}`, narSize: stdout.length, references: [base!], signatures: [], ultimate: false };
      await writeFile(join(dest, `${hashPart(app!)}.narinfo`), narinfo(info, variant === 'other-key' ? parseSecretKey(otherSecret) : undefined));
      const state = JSON.parse(JSON.stringify(second.restored.state)) as CacheState;
      expect(await cache.saveCache([dest], `${state.keyBase}forged-${variant}`)).toBeGreaterThan(0);
    };
    for (const variant of ['unsigned', 'other-key'] as const) {
      await forged(variant);
      await forgetOutputs(flake, ['docker', 'app', 'base']);
      const before = (await builtSoFar(flake)).length;
      const restored = await restoreStoreCache({ enabled: true, attr: 'docker', flake: flake.flake, maxSize: 1e9, nix: 'nix', env: nixEnv, trustedKeys: [pub], workspace: work });
      expect(restored.restored?.key).toBe(`${restored.state!.keyBase}forged-${variant}`);
      const built = await nixBuild(`${flake.flake}#docker`, restored.env);
      expect(built.out).toBe(image);
      expect((await builtSoFar(flake)).slice(before), variant).toEqual(['app']); // app built, not substituted
      expect(await readFile(join(app!, 'bin', 'app'), 'utf8')).toBe(appContent);
    }

    // The same forged entry, without a key: Nix takes it. This is what the key is for.
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const keyless = await restoreStoreCache({ enabled: true, attr: 'docker', flake: flake.flake, maxSize: 1e9, nix: 'nix', env: nixEnv, workspace: work });
    expect(keyless.restored?.key).toMatch(/forged-other-key$/);
    await nixBuild(`${flake.flake}#docker`, keyless.env);
    expect(await readFile(join(app!, 'bin', 'app'), 'utf8')).toContain('forged');
    await forgetOutputs(flake, ['docker', 'app']);
  });

  it('a job with only binary-cache-public-key restores signed paths and saves nothing', async () => {
    const flake = await makeClosureFlake('1', 0);
    await freshHome();
    const first = await job(flake, { trustedKeys: [pub], secretKey: secret });
    expect(first.summary?.skipped).toBeUndefined();
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const before = server.entries.length;
    const reader = await job(flake, { trustedKeys: [pub] });
    expect(reader.restored.hit).toBe('true');
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);
    expect(reader.summary?.skipped).toBe('no binary-cache-key to sign with');
    expect(server.entries.length).toBe(before);
  });
});

describe('the layer record under binary-cache-key', () => {
  const layer = (n: string) => ({ diffID: `sha256:${n.repeat(64)}`, digest: `sha256:${n.repeat(63)}f`, size: 10 });

  it('is taken on its word only with a signature over its exact bytes by a trusted key; any other is left out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-record-'));
    await recordLayers(dir, 'r.example/app', [layer('a')]);
    // No key trusted: the record is trusted as the whole keyless cache is.
    expect(await layerRecordTrusted(dir, [])).toBe(true);
    // Unsigned, under a trusted key: left out (removed), nothing reused on its word.
    expect(await layerRecordTrusted(dir, [pub])).toBe(false);
    expect(await readLayerRecord(dir, 'r.example/app')).toEqual([]);

    await recordLayers(dir, 'r.example/app', [layer('a')]);
    await signLayerRecord(dir, parseSecretKey(secret));
    expect(await layerRecordTrusted(dir, [pub])).toBe(true);
    expect(await readLayerRecord(dir, 'r.example/app')).toEqual([layer('a')]);

    // Signed by someone else's key: refused.
    await signLayerRecord(dir, parseSecretKey(otherSecret));
    expect(await layerRecordTrusted(dir, [pub])).toBe(false);

    // Signed, then changed (a forged mapping added after signing): refused.
    await recordLayers(dir, 'r.example/app', [layer('a')]);
    await signLayerRecord(dir, parseSecretKey(secret));
    await recordLayers(dir, 'r.example/app', [layer('b')]);
    expect(await layerRecordTrusted(dir, [pub])).toBe(false);
    expect(existsSync(join(dir, 'nix-image-action-layers.json'))).toBe(false);
  });
});

describe('a signing key made again under the same name', () => {
  it('is not taken for the old one: the entry is saved anew, signed by it, and a later runner builds nothing', async () => {
    const flake = await makeClosureFlake('1', 0);
    await freshHome();
    const a = await generateCacheKey('nia-rotated-1');
    const b = await generateCacheKey('nia-rotated-1');
    expect(b.pub).not.toBe(a.pub);
    const first = await job(flake, { trustedKeys: [a.pub], secretKey: a.secret });
    expect(first.summary?.skipped, first.printed).toBeUndefined();
    // The key is replaced (same name): the restored narinfos carry the old key's signatures, which Nix refuses.
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const second = await job(flake, { trustedKeys: [b.pub], secretKey: b.secret });
    expect(await builtSoFar(flake)).toEqual(['base', 'app', 'base', 'app']);
    expect(second.summary?.skipped, second.printed).toBeUndefined(); // not "unchanged": saved anew
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    await job(flake, { trustedKeys: [b.pub], secretKey: b.secret });
    expect(await builtSoFar(flake)).toEqual(['base', 'app', 'base', 'app']);
  });
});

describe('the layer record, pinned', () => {
  const layer = (n: string) => ({ diffID: `sha256:${n.repeat(64)}`, digest: `sha256:${n.repeat(63)}f`, size: 10 });

  it('is read only as this job verified or wrote it: a record changed since gives nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-pin-'));
    const pin = await recordLayers(dir, 'r.example/app', [layer('a')]);
    expect(pin).toBe(await recordDigest(dir));
    expect(await readLayerRecord(dir, 'r.example/app', pin)).toEqual([layer('a')]);
    // Something else of the same user adds a mapping after the job wrote the record.
    const raw = JSON.parse(await readFile(join(dir, 'nix-image-action-layers.json'), 'utf8')) as { repositories: Record<string, unknown[]> };
    raw.repositories['r.example/app']!.unshift(layer('b'));
    await writeFile(join(dir, 'nix-image-action-layers.json'), JSON.stringify(raw));
    expect(await readLayerRecord(dir, 'r.example/app', pin)).toEqual([]);
    // No record verified (null): a record that appears later is not read either; no pin (no keys): it is.
    expect(await readLayerRecord(dir, 'r.example/app', null)).toEqual([]);
    expect((await readLayerRecord(dir, 'r.example/app')).length).toBe(2);
  });

  it('is written from the pinned record only: a mapping planted after the job verified it is dropped, not signed into the next job', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-pin-'));
    const key = parseSecretKey(secret);
    const pin = await recordLayers(dir, 'r.example/app', [layer('a')]);
    const raw = JSON.parse(await readFile(join(dir, 'nix-image-action-layers.json'), 'utf8')) as { repositories: Record<string, unknown[]> };
    raw.repositories['r.example/app']!.unshift(layer('b'));
    await writeFile(join(dir, 'nix-image-action-layers.json'), JSON.stringify(raw));
    // What recordPushed does after the push, then what the post step does before saving.
    const written = await recordLayers(dir, 'r.example/app', [layer('c')], pin);
    expect(await signLayerRecord(dir, key, written)).toBe(true);
    expect(await layerRecordTrusted(dir, [pub])).toBe(true);
    expect(await readLayerRecord(dir, 'r.example/app', await recordDigest(dir))).toEqual([layer('c')]);
    // Unpinned (no trusted keys: the whole cache is taken as it is), the file is merged as before.
    expect(await readLayerRecord(dir, 'r.example/app')).toEqual([layer('c')]);
    expect(await recordLayers(dir, 'r.example/app', [layer('d')])).toBe(await recordDigest(dir));
    expect(await readLayerRecord(dir, 'r.example/app')).toEqual([layer('d'), layer('c')]);
  });
});

describe('a restored NAR under binary-cache-key', () => {
  it('is signed again only once its bytes hash to the path: a swapped NAR of the right size is dumped anew', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-nar-'));
    const file = join(dir, 'content.txt');
    await writeFile(file, `the real content ${Date.now()}\n`);
    const path = (await run('nix-store', ['--add', file], { env })).stdout.trim();
    const [info] = await pathInfo('nix', [path], env);
    const cache = join(dir, 'cache');
    const key = parseSecretKey(secret);
    expect(await writeBinaryCache(cache, [info!], 'nix', env, key)).toMatchObject({ written: 1, kept: 0 });
    const nar = join(cache, 'nar', `${hashPart(path)}.nar`);
    const real = await readFile(nar);
    // Another writer of the cache swaps the NAR for bytes of the same size, keeping the signed narinfo.
    const forged = Buffer.from(real);
    forged[forged.length - 20] = forged[forged.length - 20]! ^ 0xff;
    await writeFile(nar, forged);
    expect(await writeBinaryCache(cache, [info!], 'nix', env, key)).toMatchObject({ written: 1, kept: 0 });
    expect((await readFile(nar)).equals(real)).toBe(true);
    // Unchanged, it is kept.
    expect(await writeBinaryCache(cache, [info!], 'nix', env, key)).toMatchObject({ written: 0, kept: 1 });
  });
});
