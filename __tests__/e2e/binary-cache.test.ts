// The binary-cache input end to end: the bundled action with the real Nix (Debian's 2.8) against a real
// HTTP binary cache (nginx taking WebDAV PUT, support/binary-cache.ts) and a file:// one. Job 1 builds,
// signs and uploads; on a fresh runner (the outputs deleted, another HOME), job 2 with the public key only
// builds nothing and pushes the same digest. A cache signed by another key is not taken. A cache that
// answers 500 or never answers — from the first request, or only once the build asks it for paths — costs
// one warning and the job succeeds. The signing key is in no log, output, state or file left behind, and
// the runner's AWS credentials reach no build.
import { createPublicKey, verify } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/nix/signing.js';
import { runAction, type ActionRun } from '../support/action.js';
import { expectSucceeded, expectNoSecret } from '../support/expect-run.js';
import { makeImageArchive } from '../support/archives.js';
import { startBinaryCache, type TestBinaryCache } from '../support/binary-cache.js';
import { startCacheServer, type CacheServer } from '../support/cache-server.js';
import { startProxy, viaProxy } from '../support/proxy.js';
import { builtSoFar, forgetOutputs, makeClosureFlake } from '../support/flakes.js';
import { generateCacheKey, nixTestEnv } from '../support/nix.js';
import { nixBuild } from '../support/store-cache-job.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry;
let http: TestBinaryCache;
let server: CacheServer;

beforeAll(async () => {
  registry = await startRegistry({});
  http = await startBinaryCache();
  server = await startCacheServer();
});
afterAll(async () => {
  await registry?.stop();
  await http?.stop();
  await server?.stop();
});

/** A fresh runner's home; with `netrc`, its ~/.netrc. */
async function home(netrc?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-home-'));
  if (netrc) await writeFile(join(dir, '.netrc'), netrc, { mode: 0o600 });
  return dir;
}

let jobs = 0;
/** One job, pushing to a repository of its own (one that held the image would only be re-tagged). */
function job(flake: { flake: string }, inputs: Record<string, string>, env: Record<string, string>): Promise<ActionRun> {
  return runAction({
    runtime: 'node24',
    inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: `bincache/app-${++jobs}`, insecure: 'true', cache: 'false', ...inputs },
    env: { ...nixTestEnv(), ...env },
  });
}

const field = (text: string, name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';

/** Whether a narinfo's Sig is a valid signature by `publicKey` (`name:base64`) of what it describes. */
function signedBy(text: string, publicKey: string): boolean {
  const [name, data] = publicKey.split(':') as [string, string];
  const sig = field(text, 'Sig');
  if (!sig.startsWith(`${name}:`)) return false;
  const references = field(text, 'References').split(' ').filter(Boolean).map((r) => `/nix/store/${r}`);
  const signed = fingerprint(field(text, 'StorePath'), field(text, 'NarHash'), Number(field(text, 'NarSize')), references);
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(data, 'base64').toString('base64url') }, format: 'jwk' });
  return verify(null, Buffer.from(signed), key, Buffer.from(sig.slice(name.length + 1), 'base64'));
}



describe('an HTTP binary cache (nginx, WebDAV PUT)', () => {
  it('job 1 builds, signs and uploads what upstream lacks; a fresh runner with the public key only builds nothing and pushes the same digest', async () => {
    const ours = await generateCacheKey('nia-bincache-ours-1');
    const flake = await makeClosureFlake('1', 0);
    const writerHome = await home(http.netrc());
    const writer = await job(flake, { 'binary-cache': http.url, 'binary-cache-key': ours.secret }, { HOME: writerHome });
    expectSucceeded(writer);
    expect(writer.main.warnings).toEqual([]);
    expect(writer.post?.warnings).toEqual([]);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);

    // base and app, not the image (it lives in the registry): each narinfo signed by the key, its NAR there.
    const narinfos = await http.narinfos();
    expect(Object.values(narinfos).map((t) => basename(field(t, 'StorePath')).slice(33)).sort()).toEqual(['cache-app', 'cache-base']);
    for (const [name, text] of Object.entries(narinfos)) {
      expect(signedBy(text, ours.pub), `${name} is signed by ${ours.pub}`).toBe(true);
      expect(field(text, 'Compression')).toBe('zstd');
      expect((await stat(join(http.dir, field(text, 'URL')))).size).toBe(Number(field(text, 'FileSize')));
    }
    // Asked first, then sent: the NAR before its narinfo, both with the netrc's credentials.
    const requests = await http.requests();
    for (const name of Object.keys(narinfos)) {
      const asked = requests.indexOf(`HEAD /${name} 404`);
      const nar = requests.indexOf(`PUT /${field(narinfos[name]!, 'URL')} 201`);
      const put = requests.indexOf(`PUT /${name} 201`);
      expect(asked, requests.join('\n')).toBeGreaterThanOrEqual(0);
      expect(nar).toBeGreaterThan(asked);
      expect(put).toBeGreaterThan(nar);
    }
    expect(requests.filter((r) => r.startsWith('PUT ') && !r.endsWith(' 201')), requests.join('\n')).toEqual([]);
    expect(writer.summary).toMatch(/Binary cache <code>http:\/\/127\.0\.0\.1:\d+<\/code>: uploaded 2 of 2 paths/);
    expect(writer.post?.stdout).toMatch(/binary cache http:\/\/127\.0\.0\.1:\d+: uploaded 2 paths .* signed by nia-bincache-ours-1/);
    await expectNoSecret(writer, [ours.secret, ours.secret.slice(ours.secret.indexOf(':') + 1)], [http.dir, writerHome], { unprinted: true });
    // The netrc's password is the runner's own file's; the action shows it nowhere and writes it nowhere else.
    await expectNoSecret(writer, [http.password], [http.dir], { unprinted: true });

    // A fresh runner (no outputs, another HOME), the GitHub cache off, the public key only.
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const before = (await http.requests()).length;
    const reader = await job(flake, { 'binary-cache': http.url, 'binary-cache-public-key': ours.pub }, { HOME: await home() });
    expectSucceeded(reader);
    expect(reader.main.warnings).toEqual([]);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']); // nothing built
    expect(reader.outputs.digest).toBe(writer.outputs.digest);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/bincache/app-${jobs}:latest`])) as { Digest: string };
    expect(inspected.Digest).toBe(writer.outputs.digest);
    const used = JSON.parse(reader.outputs.metadata!)['binary-cache'] as { url: string; substituted: string[] };
    expect(used.url).toBe(http.url);
    expect(used.substituted.map((p) => basename(p).slice(33)).sort()).toEqual(['cache-app', 'cache-base']);
    expect(reader.summary).toMatch(/Binary cache <code>http:\/\/127\.0\.0\.1:\d+<\/code>: 2 path\(s\) copied from it/);
    expect(reader.post?.stdout).toContain('binary cache: nothing uploaded: binary-cache-key is not set');
    expect((await http.requests()).slice(before).filter((r) => r.startsWith('PUT '))).toEqual([]);
  });

  it('takes nothing signed by another key: the job builds it all (a new cache: the first upload writes its nix-cache-info)', async () => {
    const ours = await generateCacheKey('nia-bincache-ours-2');
    const other = await generateCacheKey('nia-bincache-other-2');
    const fresh = await startBinaryCache({ noCacheInfo: true });
    try {
      const flake = await makeClosureFlake('1', 0);
      const writer = await job(flake, { 'binary-cache': fresh.url, 'binary-cache-key': other.secret }, { HOME: await home(fresh.netrc()) });
      expectSucceeded(writer);
      expect(writer.main.stdout).toContain('no nix-cache-info yet');
      expect(await builtSoFar(flake)).toEqual(['base', 'app']);
      expect(await readFile(join(fresh.dir, 'nix-cache-info'), 'utf8')).toMatch(/^StoreDir: \/nix\/store$/m);
      expect(Object.values(await fresh.narinfos()).every((t) => signedBy(t, other.pub))).toBe(true);

      await forgetOutputs(flake, ['docker', 'app', 'base']);
      const reader = await job(flake, { 'binary-cache': fresh.url, 'binary-cache-public-key': ours.pub }, { HOME: await home() });
      expectSucceeded(reader);
      expect(await builtSoFar(flake)).toEqual(['base', 'app', 'base', 'app']);
      expect(reader.main.stdout).not.toMatch(/copying path '\/nix\/store\/\w+-cache-(app|base)' from/);
      expect(JSON.parse(reader.outputs.metadata!)['binary-cache'].substituted).toEqual([]);
      // Nix did ask it: the narinfos were there, their signatures were not trusted.
      expect((await fresh.requests()).filter((q) => /^GET \/\w{32}\.narinfo 200$/.test(q)).length).toBeGreaterThan(0);
    } finally {
      await fresh.stop();
    }
  });
});

describe('behind the runner proxy (HTTP_PROXY for the action and for Nix)', () => {
  it('reaches the registry and the binary cache through the proxy, and Nix the loopback front directly: a fresh runner builds nothing', async () => {
    const ours = await generateCacheKey('nia-bincache-proxy-1');
    const flake = await makeClosureFlake('1', 0);
    const proxy = await startProxy();
    try {
      // Names only the proxy resolves: loopback itself is never proxied.
      const registryName = viaProxy(registry.host);
      const cacheName = viaProxy(new URL(http.url).host, 'cache');
      const cacheUrl = `http://${cacheName}`;
      const netrc = `machine ${cacheName.split(':')[0]} login ${http.user} password ${http.password}\n`;
      const proxied = { HTTP_PROXY: proxy.url, http_proxy: proxy.url, HTTPS_PROXY: proxy.url, https_proxy: proxy.url };
      const viaName = (inputs: Record<string, string>) => ({ registry: registryName, ...inputs });
      const writer = await job(flake, viaName({ 'binary-cache': cacheUrl, 'binary-cache-key': ours.secret }), { HOME: await home(netrc), ...proxied });
      expectSucceeded(writer);
      expect(await builtSoFar(flake)).toEqual(['base', 'app']);
      await forgetOutputs(flake, ['docker', 'app', 'base']);
      const reader = await job(flake, viaName({ 'binary-cache': cacheUrl, 'binary-cache-public-key': ours.pub }), { HOME: await home(), ...proxied });
      expectSucceeded(reader);
      expect(reader.main.warnings).toEqual([]);
      expect(await builtSoFar(flake)).toEqual(['base', 'app']); // nothing built: Nix reached the front
      expect(reader.outputs.digest).toBe(writer.outputs.digest);
      // Everything the action sent went to the registry or the cache through the proxy; nothing to the front.
      const hosts = new Set(proxy.seen.map((s) => new URL(s.split(' ')[1]!.replace(/^(?!http)/, 'http://')).host));
      expect(hosts).toEqual(new Set([registryName, cacheName]));
      // The writer's post uploaded through it (NARs, then narinfos); the reader's front asked upstream through it.
      expect(proxy.seen.filter((s) => s.startsWith(`PUT ${cacheUrl}/`) && s.endsWith('.narinfo')).length).toBe(2);
      expect(proxy.seen.filter((s) => s.startsWith(`GET ${cacheUrl}/`) && s.endsWith('.narinfo')).length).toBeGreaterThanOrEqual(2);
      expect(proxy.seen.some((s) => s.startsWith(`PUT http://${registryName}/v2/bincache/`))).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('a proxy URL the action cannot use fails the step in one line, its password masked and never printed', async () => {
    const flake = await makeClosureFlake('1', 0);
    const run = await job(flake, {}, { HOME: await home(), HTTPS_PROXY: 'http://ci:pr0xy-s3cret@proxy.corp:99999' });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual(['HTTPS_PROXY is not a proxy URL (expected http://host:port)']);
    // Masked (from then on the runner shows ***), and never printed at all.
    expect(run.rawLog.split('\n')).toContain('::add-mask::pr0xy-s3cret');
    await expectNoSecret(run, ['pr0xy-s3cret'], [], { unprinted: true });
  });
});

describe('an S3 binary cache', () => {
  it('is read through the front, path-style on an endpoint=, signed with the runner\'s AWS credentials; what it holds is not uploaded again', async () => {
    const ours = await generateCacheKey('nia-bincache-s3-1');
    const flake = await makeClosureFlake('1', 0);
    const writer = await job(flake, { 'binary-cache': http.url, 'binary-cache-key': ours.secret }, { HOME: await home(http.netrc()) });
    expectSucceeded(writer);
    // The same files as a bucket "nixbucket" of an S3-compatible endpoint (nginx serves /nixbucket/<key>).
    const bucket = join(http.dir, 'nixbucket');
    await mkdir(join(bucket, 'nar'), { recursive: true });
    for (const name of await readdir(http.dir)) if (name === 'nix-cache-info' || name.endsWith('.narinfo')) await copyFile(join(http.dir, name), join(bucket, name));
    for (const name of await readdir(join(http.dir, 'nar'))) await copyFile(join(http.dir, 'nar', name), join(bucket, 'nar', name));

    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const before = (await http.requests()).length;
    const aws = { AWS_ACCESS_KEY_ID: 'AKIANIATESTS3READER1', AWS_SECRET_ACCESS_KEY: 'nia-s3-secret-abcdefghijklmnopqrstuvwxyz0123' };
    const url = `s3://nixbucket?endpoint=${new URL(http.url).host}&scheme=http&region=auto`;
    const reader = await job(flake, { 'binary-cache': url, 'binary-cache-key': ours.secret }, { HOME: await home(), ...aws });
    expectSucceeded(reader);
    expect(reader.main.warnings).toEqual([]);
    expect(reader.post?.warnings).toEqual([]);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);
    expect(reader.outputs.digest).toBe(writer.outputs.digest);
    const requests = (await http.requests()).slice(before);
    expect(requests).toContain('GET /nixbucket/nix-cache-info 200');
    // Both narinfos were read from the bucket (Nix may ask for one twice: what counts is which).
    expect(new Set(requests.filter((r) => /^GET \/nixbucket\/\w{32}\.narinfo 200$/.test(r))).size).toBe(2);
    // The post step asked (signed HEADs) and found both there: nothing for nix copy to do.
    expect(requests.filter((r) => /^HEAD \/nixbucket\/\w{32}\.narinfo 200$/.test(r))).toHaveLength(2);
    expect(reader.post?.stdout).toMatch(/binary cache s3:\/\/nixbucket\?\S+: holds all 2 paths already; nothing to upload/);
    expect(reader.masks).toContain(aws.AWS_SECRET_ACCESS_KEY);
    await expectNoSecret(reader, [aws.AWS_SECRET_ACCESS_KEY, ours.secret], [], { unprinted: true });
  });
});

describe('a binary cache that is down or stalls', () => {
  it.each([
    ['answers 500 to everything', { status: 500 }, /^binary cache http:\/\/127\.0\.0\.1:\d+: nix-cache-info answered 500; the job went on without it$/, 'not used'],
    ['takes every request and never answers', { hang: true }, /^binary cache http:\/\/127\.0\.0\.1:\d+: unreachable \(no answer from 127\.0\.0\.1:\d+ in 5 s\); the job went on without it$/, 'not used'],
    ['answers 500 once the build asks it for paths', { status: 500, on: /\.narinfo$/ }, /^binary cache http:\/\/127\.0\.0\.1:\d+: \/\w{32}\.narinfo answered 500; the build went on without it from then on$/, 'stopped'],
    ['never answers once the build asks it for paths', { hang: true, on: /\.narinfo$/ }, /^binary cache http:\/\/127\.0\.0\.1:\d+: no answer from 127\.0\.0\.1:\d+ in 10 s; the build went on without it from then on$/, 'stopped'],
  ] as const)('builds and pushes with one warning when the cache %s', async (_, fault, warning, note) => {
    const key = await generateCacheKey('nia-bincache-down-1');
    const broken = await startBinaryCache({ fault });
    try {
      const flake = await makeClosureFlake('1', 0);
      const r = await job(flake, { 'binary-cache': broken.url, 'binary-cache-key': key.secret }, { HOME: await home(broken.netrc()) });
      expectSucceeded(r);
      expect(await builtSoFar(flake)).toEqual(['base', 'app']);
      expect(r.main.warnings).toHaveLength(1);
      expect(r.main.warnings[0]).toMatch(warning);
      // The post step does not try it again.
      expect(r.post?.warnings).toEqual([]);
      expect(r.post?.stdout).toMatch(/binary cache: nothing uploaded: the main step could not use it/);
      expect((await broken.requests()).filter((q) => !q.startsWith('GET /nix-cache-info'))).toEqual([]);
      expect(r.summary).toMatch(new RegExp(`Binary cache <code>http://127\\.0\\.0\\.1:\\d+</code>: ${note}: `));
      expect(JSON.parse(r.outputs.metadata!)['binary-cache'].note).toMatch(new RegExp(`^${note}: `));
      const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/bincache/app-${jobs}:latest`])) as { Digest: string };
      expect(inspected.Digest).toBe(r.outputs.digest);
    } finally {
      await broken.stop();
    }
  });
});

describe('a binary cache that refuses one narinfo', () => {
  it('publishes no narinfo of a path whose reference it failed to take: the cache never names a path it cannot complete', async () => {
    const key = await generateCacheKey('nia-bincache-partial-1');
    const flake = await makeClosureFlake('1', 0);
    // base is built first, to know which narinfo the cache will refuse.
    const base = await nixBuild(`${flake.flake}#base`, {});
    const refuse = await startBinaryCache({ fault: { status: 500, on: new RegExp(`^PUT /${basename(base.out).slice(0, 32)}\\.narinfo$`) } });
    try {
      const r = await job(flake, { 'binary-cache': refuse.url, 'binary-cache-key': key.secret }, { HOME: await home(refuse.netrc()) });
      expectSucceeded(r);
      expect(r.post?.warnings.join('\n')).toMatch(/answered 500/);
      // app refers to base: with base's narinfo refused, app's is not published either (its NAR may be).
      const names = Object.values(await refuse.narinfos()).map((t) => basename(field(t, 'StorePath')).slice(33));
      expect(names).not.toContain('cache-base');
      expect(names).not.toContain('cache-app');
    } finally {
      await refuse.stop();
    }
  });
});

describe('a binary cache whose download breaks', () => {
  it('a NAR cut halfway: Nix builds that path instead, and the job succeeds', async () => {
    const key = await generateCacheKey('nia-bincache-cut-1');
    const cache = await startBinaryCache({ fault: { truncate: true, on: /^GET \/nar\// } });
    try {
      const flake = await makeClosureFlake('1', 0);
      const writer = await job(flake, { 'binary-cache': cache.url, 'binary-cache-key': key.secret }, { HOME: await home(cache.netrc()) });
      expectSucceeded(writer);
      expect(Object.keys(await cache.narinfos()).length).toBeGreaterThan(0);
      await forgetOutputs(flake, ['docker', 'app', 'base']);
      const reader = await job(flake, { 'binary-cache': cache.url, 'binary-cache-public-key': key.pub }, { HOME: await home(cache.netrc()) });
      expectSucceeded(reader);
      // Every NAR download broke: what the cache would have given is built again.
      expect(await builtSoFar(flake)).toEqual(['base', 'app', 'base', 'app']);
      expect(reader.outputs.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    } finally {
      await cache.stop();
    }
  });
});

describe('a file:// binary cache, with the GitHub store cache or without it', () => {
  it('a job with both caches writes the directory (nix-cache-info first); a fresh runner with the binary cache alone builds nothing', async () => {
    const ours = await generateCacheKey('nia-bincache-file-1');
    const flake = await makeClosureFlake('1', 0);
    const dir = join(await mkdtemp(join(tmpdir(), 'nia-filecache-')), 'cache');
    const writer = await job(flake, { 'binary-cache': `file://${dir}`, 'binary-cache-key': ours.secret, cache: 'true' }, { ...server.env('v2'), HOME: await home() });
    expectSucceeded(writer);
    expect(writer.main.warnings).toEqual([]);
    expect(writer.post?.stdout).toMatch(/store cache: 2 paths \(2 new, 0 restored\)/);
    expect(await readFile(join(dir, 'nix-cache-info'), 'utf8')).toMatch(/^StoreDir: \/nix\/store$/m);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.narinfo'));
    expect(names).toHaveLength(2);
    for (const name of names) expect(signedBy(await readFile(join(dir, name), 'utf8'), ours.pub)).toBe(true);
    expect((await readdir(dir)).filter((n) => n.startsWith('.nix-image-action-upload'))).toEqual([]);

    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const reader = await job(flake, { 'binary-cache': `file://${dir}`, 'binary-cache-public-key': ours.pub }, { HOME: await home() });
    expectSucceeded(reader);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);
    expect(reader.main.stdout).toMatch(new RegExp(`copying path '/nix/store/\\w+-cache-app' from 'file://${dir}'`));
    expect(reader.outputs.digest).toBe(writer.outputs.digest);
  });
});

describe("the runner's AWS credentials", () => {
  it('reach no build: a fixed-output derivation that asks for them (impureEnvVars) gets none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-flake-aws-'));
    const records = await mkdtemp(join(tmpdir(), 'nia-records-'));
    // Builders run as the nixbld users.
    await writeFile(join(records, 'env'), '');
    await chmod(records, 0o777);
    await chmod(join(records, 'env'), 0o666);
    const archive = await makeImageArchive({ dir, name: 'image', compression: 'none', layers: [{ size: 10_000, seed: `aws-${basename(dir)}`, compressible: true }] });
    const unique = basename(dir).replace(/[^a-zA-Z0-9]/g, '');
    // A fixed-output derivation may name variables of the caller's environment for Nix to hand it.
    const probe = `derivation { name = "aws-probe-${unique}"; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
      impureEnvVars = [ "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN" "NIA_PROBE_VISIBLE" ];
      outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "ba9c736f19e7f60b7f6764adb0b7908c0a2b394e09b6c09863528c7f2bc86095";
      args = [ "-c" "echo \\"visible=$NIA_PROBE_VISIBLE id=$AWS_ACCESS_KEY_ID secret=$AWS_SECRET_ACCESS_KEY token=$AWS_SESSION_TOKEN\\" >> ${records}/env; printf probe > $out" ]; }`;
    await writeFile(
      join(dir, 'flake.nix'),
      `{\n  outputs = { self }: rec {\n    probe = ${probe};\n    docker = derivation { name = "image.tar"; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; inherit probe; args = [ "-c" "cp \${./${basename(archive.path)}} $out" ]; };\n  };\n}\n`,
    );
    const aws = { AWS_ACCESS_KEY_ID: 'AKIANIATESTPROBE0001', AWS_SECRET_ACCESS_KEY: 'nia-aws-secret-0123456789abcdefghijklmn', AWS_SESSION_TOKEN: 'nia-aws-session-token-zyxw', AWS_REGION: 'eu-west-1' };
    const r = await job({ flake: `path:${dir}` }, {}, { HOME: await home(), NIA_PROBE_VISIBLE: 'yes', ...aws });
    expectSucceeded(r);
    // The probe ran and saw what the environment holds (the variable the test adds), and no credential.
    expect((await readFile(join(records, 'env'), 'utf8')).trim()).toBe('visible=yes id= secret= token=');
  });
});
