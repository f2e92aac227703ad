// Pure pieces of the store cache: keys, the flake.lock hash, Nix's base32, narinfo, path-info shapes;
// and the watchdog around each @actions/cache call, with stand-in children that print what
// @actions/cache prints (the real one, against a failing and a hanging service: e2e/cache.test.ts).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheKeys, keyArgs, cacheProblem, deltaKey, flakeIdentity, supersedes, localFlakeDir, lockHash, pathSetKey, substituterLine, untrustedCacheWarning } from '../../src/nix/cache.js';
import { inChain, supersededKeys } from '../../src/nix/purge.js';
import { cacheCall, phaseOf, type CacheCallRequest } from '../../src/nix/cache-call.js';
import { narinfo } from '../../src/nix/binary-cache.js';
import { fingerprint, keyProblem, parseSecretKey } from '../../src/nix/signing.js';
import { nixBase32, normaliseNarHash, parsePathInfo, pathInfoArgs } from '../../src/nix/store.js';
import { nixTestEnv } from '../support/nix.js';

const sha = (s: string) => createHash('sha256').update(s).digest();

describe('keys', () => {
  it('name the flake (dir included, a local one relative to the workspace) and its locked inputs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-lock-'));
    await writeFile(join(dir, 'flake.nix'), '{ outputs = { self }: { }; }');
    await writeFile(join(dir, 'flake.lock'), '{"nodes":{"root":{}},"root":"root","version":7}');
    const env = { ...process.env, ...nixTestEnv() };
    // The lock as Nix resolves it: the same whether or not flake.lock was written yet.
    const lock = await lockHash('nix', `path:${dir}`, env);
    expect(lock).toMatch(/^[0-9a-f]{16}$/);
    const unlocked = await mkdtemp(join(tmpdir(), 'nia-lock-'));
    await writeFile(join(unlocked, 'flake.nix'), '{ outputs = { self }: { }; }');
    expect(await lockHash('nix', `path:${unlocked}`, env)).toBe(lock);

    expect(flakeIdentity('./services/api', '/ws')).toBe('local:services/api');
    expect(flakeIdentity('.?dir=services/api', '/ws')).toBe('local:services/api');
    expect(flakeIdentity('path:/ws/services/worker', '/ws')).toBe('local:services/worker');
    expect(flakeIdentity('.', '/ws')).toBe('local:.');
    expect(flakeIdentity('github:o/r?dir=services/api', '/ws')).toBe('remote:github:o/r?dir=services%2Fapi');
    expect(flakeIdentity('github:o/r', '/ws')).not.toBe(flakeIdentity('github:o/r?dir=x', '/ws'));
    // Every commit of a remote flake is the same flake, as with a local one: the rev is not in its name.
    const rev = (c: string) => c.repeat(40);
    expect(flakeIdentity(`github:o/r/${rev('a')}`, '/ws')).toBe('remote:github:o/r');
    expect(flakeIdentity(`github:o/r/${rev('b')}?dir=x`, '/ws')).toBe(flakeIdentity('github:o/r?dir=x', '/ws'));
    expect(flakeIdentity(`git+https://example.com/r.git?ref=main&rev=${rev('c')}`, '/ws')).toBe('remote:git+https://example.com/r.git?ref=main');
    expect(flakeIdentity('github:o/r/release-1', '/ws')).toBe('remote:github:o/r/release-1'); // a branch is another flake

    const api = cacheKeys({ attr: 'docker', flakeId: 'local:services/api', lock, platform: 'linux', arch: 'x64' });
    const worker = cacheKeys({ attr: 'docker', flakeId: 'local:services/worker', lock, platform: 'linux', arch: 'x64' });
    expect(api.keyBase).toMatch(new RegExp(`^nix-image-linux-x64-docker-[0-9a-f]{8}-${lock}-$`));
    expect(api.keyBase).not.toBe(worker.keyBase);
    expect(api.restoreKeys).toEqual([api.keyBase, api.keyBase.slice(0, -17), 'nix-image-linux-x64-docker-', 'nix-image-linux-x64-']);
    expect(cacheKeys({ keyPrefix: 'my key,v1', attr: 'docker', flakeId: 'x', lock })).toEqual({ keyBase: 'my_key_v1-', restoreKeys: ['my_key_v1-'] });
    // Matrix legs that differ only in build-args keep entries of their own (one would restore and purge the
    // other's); no build-args: the key is the flake's alone, as before; the same ones: the same key.
    const leg = (buildArgs?: string[]) => cacheKeys({ attr: 'docker', flakeId: 'local:services/api', lock, platform: 'linux', arch: 'x64', ...(buildArgs ? { buildArgs } : {}) });
    expect(leg([]).keyBase).toBe(api.keyBase);
    expect(leg(['--system', 'aarch64-linux']).keyBase).not.toBe(api.keyBase);
    expect(leg(['--system', 'aarch64-linux']).keyBase).toBe(leg(['--system', 'aarch64-linux']).keyBase);
    expect(leg(['--system', 'aarch64-linux']).keyBase).not.toBe(leg(['--system', 'x86_64-linux']).keyBase);
    expect(leg(['--system', 'aarch64-linux']).restoreKeys.slice(2)).toEqual(api.restoreKeys.slice(2)); // same attr, same system
    // What names the build, not how it is logged, nor a secret's value, nor the rev of an overridden input.
    expect(leg(['-L', '--show-trace']).keyBase).toBe(api.keyBase);
    expect(leg(['--system', 'aarch64-linux', '-L']).keyBase).toBe(leg(['--system', 'aarch64-linux']).keyBase);
    expect(leg(['--extra-access-tokens', 'github.com=ghp_one']).keyBase).toBe(leg(['--extra-access-tokens', 'github.com=ghp_two']).keyBase);
    expect(keyArgs(['--extra-access-tokens', 'github.com=ghp_one'])).toEqual(['--extra-access-tokens', '<secret>']);
    expect(leg(['--override-input', 'app', `github:o/app/${'a'.repeat(40)}`]).keyBase).toBe(leg(['--override-input', 'app', `github:o/app/${'b'.repeat(40)}`]).keyBase);
    expect(leg(['--override-input', 'app', 'github:o/app']).keyBase).not.toBe(leg(['--override-input', 'app', 'github:o/other']).keyBase);
    expect(localFlakeDir('github:owner/repo')).toBeUndefined();
    expect(localFlakeDir('.', '/work')).toBe('/work');
    expect(localFlakeDir('./sub?dir=x', '/work')).toBe('/work/sub');
  });

  it('names a path set independently of its order', () => {
    const info = (path: string) => ({ path, narHash: '', narSize: 1, references: [], signatures: [], ultimate: true });
    const a = pathSetKey('k-', [info('/nix/store/a'), info('/nix/store/b')]);
    expect(a).toMatch(/^k-[0-9a-f]{16}$/);
    expect(pathSetKey('k-', [info('/nix/store/b'), info('/nix/store/a')])).toBe(a);
    expect(pathSetKey('k-', [info('/nix/store/a')])).not.toBe(a);
    // The same paths signed are another set: a key set later saves its signatures.
    expect(pathSetKey('k-', [info('/nix/store/a'), info('/nix/store/b')], 'k-1')).not.toBe(a);
  });
});

describe('substituter', () => {
  it('is trusted without a key, and consulted after cache.nixos.org (40) and every other configured substituter', () => {
    expect(substituterLine('/home/runner/.cache/nix-image-action/binary-cache')).toBe(
      'extra-substituters = file:///home/runner/.cache/nix-image-action/binary-cache?trusted=1&priority=1000',
    );
  });

  it('with keys, is not trusted: a path needs a signature by one of them', () => {
    expect(substituterLine('/c', ['k-1:AAAA', 'k-2:BBBB'])).toBe('extra-substituters = file:///c?priority=1000\nextra-trusted-public-keys = k-1:AAAA k-2:BBBB');
  });
});

describe('untrusted user', () => {
  it('warns, naming the fix, only when Nix ignored the store cache itself', () => {
    const dir = '/home/runner/.cache/nix-image-action/binary-cache';
    expect(untrustedCacheWarning([`file://${dir}?trusted=1`], dir, 'runner')).toBe(
      `store cache: Nix ignored file://${dir} because runner is not a trusted user, so the build could not use it; ` +
        'add "trusted-users = root runner" to nix.conf, or let this action install Nix (README, Store cache)',
    );
    expect(untrustedCacheWarning(['https://example.cachix.org'], dir, 'runner')).toBeUndefined();
    expect(untrustedCacheWarning([], dir, 'runner')).toBeUndefined();
  });
});

describe('binary cache format', () => {
  it('encodes hashes in Nix base32, as nix-hash --to-base32 does', () => {
    expect(nixBase32(sha(''))).toBe('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
    expect(nixBase32(sha('hello'))).toBe('094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic');
  });

  it('writes narinfo with basenames for references and deriver, signed when there is a key', () => {
    const info = {
      path: '/nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top',
      narHash: `sha256:${nixBase32(sha(''))}`,
      narSize: 176,
      references: ['/nix/store/ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep'],
      deriver: '/nix/store/7zx337yakl8qlqyc8zd9dz51n3lzw12v-top.drv',
      signatures: [],
      ultimate: true,
    };
    const unsigned = [
      'StorePath: /nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top',
      'URL: nar/yx3hfvay2gc7i0fai747ylmpcaglpgvb.nar',
      'Compression: none',
      'NarHash: sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73',
      'NarSize: 176',
      'References: ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep',
      'Deriver: 7zx337yakl8qlqyc8zd9dz51n3lzw12v-top.drv',
    ];
    expect(narinfo(info)).toBe([...unsigned, ''].join('\n'));
    // Ed25519 from the 32-byte seed 0…0 (its public key is the last 32 bytes of the secret key).
    const seed = Buffer.alloc(32);
    const pub = Buffer.from('O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=', 'base64');
    const key = parseSecretKey(`k-1:${Buffer.concat([seed, pub]).toString('base64')}`);
    expect(key.publicKey).toBe(`k-1:${pub.toString('base64')}`);
    const signed = narinfo(info, key).split('\n');
    expect(signed.slice(0, -2)).toEqual(unsigned);
    expect(signed.at(-2)).toMatch(/^Sig: k-1:[A-Za-z0-9+/]{86}==$/);
    expect(fingerprint(info.path, info.narHash, 176, info.references)).toBe(
      '1;/nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top;sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73;176;/nix/store/ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep',
    );
    expect(keyProblem('k-1:AAAA', 64)).toBe('expected a key of 64 bytes after "k-1:", got 3');
    expect(keyProblem('no colon', 64)).toMatch(/^expected <name>:<base64>/);
  });

  it('reads nix path-info --json in the shape of Nix 2.8 (a list) and of 2.19+ (keyed by path), hashes in every form', () => {
    const hash = `sha256:${nixBase32(sha(''))}`;
    const old = JSON.stringify([{ path: '/nix/store/a-x', narHash: `sha256-${sha('').toString('base64')}`, narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'] }]);
    const current = JSON.stringify({ '/nix/store/a-x': { narHash: `sha256:${sha('').toString('hex')}`, narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], deriver: '/nix/store/d.drv', ultimate: true }, '/nix/store/missing': null });
    // narHash in Nix's base 32 whatever the form printed; printedNarHash as printed (what an SBOM reports).
    expect(parsePathInfo(old)).toEqual([{ path: '/nix/store/a-x', narHash: hash, printedNarHash: `sha256-${sha('').toString('base64')}`, narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], ultimate: false }]);
    expect(parsePathInfo(current)).toEqual([{ path: '/nix/store/a-x', narHash: hash, printedNarHash: `sha256:${sha('').toString('hex')}`, narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], deriver: '/nix/store/d.drv', ultimate: true }]);
    expect(normaliseNarHash(hash)).toBe(hash);
    expect(normaliseNarHash('md5:abc')).toBeUndefined();
  });

  it('asks for --json-format 1 from Nix 2.33 on, and not before (2.8 to 2.32 do not know it)', () => {
    expect(pathInfoArgs('2.8.0')).toEqual(['path-info', '--json']);
    expect(pathInfoArgs('2.32.4')).toEqual(['path-info', '--json']);
    expect(pathInfoArgs('2.33.0')).toEqual(['path-info', '--json', '--json-format', '1']);
    expect(pathInfoArgs('2.35.3')).toEqual(['path-info', '--json', '--json-format', '1']);
    expect(pathInfoArgs(undefined)).toEqual(['path-info', '--json']);
  });
});

/** A stand-in child: `body` runs with `say(line)` (stdout), `result(value)` (fd 3, then exit) and `sleep(ms)`. */
async function child(body: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-cache-child-'));
  const script = join(dir, 'child.mjs');
  await writeFile(
    script,
    [
      "import { writeSync, appendFileSync, writeFileSync } from 'node:fs';",
      "import { spawn } from 'node:child_process';",
      "const say = (l) => process.stdout.write(l + '\\n');",
      "const result = (value) => { writeSync(3, JSON.stringify({ value }) + '\\n'); process.exit(0); };",
      'const sleep = (ms) => new Promise((r) => setTimeout(r, ms));',
      'const request = JSON.parse(process.env.NIA_CACHE_CALL);',
      body,
    ].join('\n'),
  );
  return script;
}

const restore: CacheCallRequest = { op: 'restore', paths: ['/nowhere'], key: 'k-', restoreKeys: ['k-'] };

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // A zombie waiting for a reaper is gone too.
  return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

describe('the watchdog around a cache call', () => {
  it('gives a service call its own bound, retries included, and kills the child with what it started', async () => {
    const pidFile = join(await mkdtemp(join(tmpdir(), 'nia-pid-')), 'pid');
    const script = await child(`
      const tar = spawn('sleep', ['60'], { stdio: 'ignore' });
      writeFileSync(${JSON.stringify(pidFile)}, String(tar.pid));
      say('::debug::[Request] GetCacheEntryDownloadURL http://127.0.0.1:1/twirp/x');
      say('Attempt 1 of 5 failed with error: Failed request: (500) Internal Server Error: injected failure. Retrying request in 3000 ms...');
      setInterval(() => {}, 1000);
    `);
    const lines: string[] = [];
    const call = await cacheCall(restore, { script, callMs: 500, write: (t) => lines.push(t) });
    expect(call.timedOut).toBe('the lookup kept failing for 0.5 s: Failed request: (500) Internal Server Error: injected failure');
    expect(call.seconds).toBeLessThan(3);
    expect(lines.join('')).toContain('Attempt 1 of 5 failed');
    expect(gone(Number(await readFile(pidFile, 'utf8')))).toBe(true);
    expect(cacheProblem(call)).toEqual({ reason: call.timedOut, unreachable: true });
  });

  it('records its temporary folder for the post step before the child writes there (a step cancelled mid-call leaves it to post)', async () => {
    const stateFile = join(await mkdtemp(join(tmpdir(), 'nia-state-')), 'state');
    await writeFile(stateFile, '');
    const saved = process.env.GITHUB_STATE;
    process.env.GITHUB_STATE = stateFile;
    try {
      const script = await child(`say('temp=' + process.env.RUNNER_TEMP); result({ key: 'k-1' });`);
      const lines: string[] = [];
      await cacheCall(restore, { script, write: (t) => lines.push(t) });
      const temp = /temp=(\S+)/.exec(lines.join(''))?.[1];
      expect(temp).toMatch(/nia-cache-call-[0-9a-f]+$/);
      expect(await readFile(stateFile, 'utf8')).toContain(temp!);
    } finally {
      if (saved === undefined) delete process.env.GITHUB_STATE;
      else process.env.GITHUB_STATE = saved;
    }
  });

  it('names a call that got no answer, and a retry of the same call buys it no time', async () => {
    const script = await child(`
      say('::debug::Resource Url: http://127.0.0.1:1/_apis/artifactcache/cache?keys=k-&version=1');
      await sleep(300);
      say('::debug::Resource Url: http://127.0.0.1:1/_apis/artifactcache/cache?keys=k-&version=1');
      setInterval(() => {}, 1000);
    `);
    const call = await cacheCall(restore, { script, callMs: 500, write: () => {} });
    expect(call.timedOut).toBe('the lookup got no answer in 0.5 s');
    expect(call.seconds).toBeLessThan(0.5 + 1);
  });

  it('gives each of a chain\'s lookups (v2: one request marker per call) a bound of its own', async () => {
    const script = await child(`
      for (let i = 0; i < 3; i++) { say('::debug::[Request] GetCacheEntryDownloadURL http://127.0.0.1:1/twirp/x'); await sleep(600); say('::debug::[Response] - 200'); }
      result({ key: null });
    `);
    const call = await cacheCall(restore, { script, callMs: 1000, write: () => {} });
    expect(call.timedOut).toBeUndefined();
    expect(call.seconds).toBeGreaterThan(1.5); // three lookups of 0.6 s each, none over the bound
  });

  it('lets a transfer run while its bytes grow, and stops one that stalls', async () => {
    const moving = await child(`
      say('::debug::Starting download of archive to: /tmp/x/cache.tzst');
      for (let i = 1; i <= 12; i++) { say('Received ' + i * 100 + ' of 1200 (' + i + '%), 1.0 MBs/sec'); await sleep(100); }
      result({ key: 'k-1' });
    `);
    const ok = await cacheCall(restore, { script: moving, stallMs: 400, write: () => {} });
    expect(ok).toMatchObject({ value: { key: 'k-1' } });
    expect(ok.timedOut).toBeUndefined();
    expect(ok.seconds).toBeGreaterThan(1);

    const stalled = await child(`
      say('::debug::Starting download of archive to: /tmp/x/cache.tzst');
      setInterval(() => say('Received 500 of 1200 (41.7%), 0.0 MBs/sec'), 100);
    `);
    const stopped = await cacheCall(restore, { script: stalled, stallMs: 400, write: () => {} });
    expect(stopped.timedOut).toBe('the download made no progress for 0.4 s');
  });

  it('counts files growing in its RUNNER_TEMP as progress (an archive being written)', async () => {
    const script = await child(`
      say('::debug::Archive Path: ' + process.env.RUNNER_TEMP + '/a/cache.tzst');
      for (let i = 0; i < 12; i++) { appendFileSync(process.env.RUNNER_TEMP + '/cache.tzst', 'x'.repeat(1000)); await sleep(250); }
      result({ id: 7 });
    `);
    const call = await cacheCall({ op: 'save', paths: ['/nowhere'], key: 'k-1' }, { script, stallMs: 1600, write: () => {} });
    expect(call).toMatchObject({ value: { id: 7 } });
    expect(call.seconds).toBeGreaterThan(2.5);
  });

  it("shows @actions/cache's warnings as plain lines, keeps its masks, and reports its failure", async () => {
    const script = await child(`
      say('::add-mask::s3cret');
      say('::warning::Failed to restore: Failed to GetCacheEntryDownloadURL: Received non-retryable error: Failed request: (501) Not Implemented');
      result({ key: null });
    `);
    const lines: string[] = [];
    const call = await cacheCall(restore, { script, write: (t) => lines.push(t) });
    expect(lines).toEqual([
      '::add-mask::s3cret\n',
      '@actions/cache: Failed to restore: Failed to GetCacheEntryDownloadURL: Received non-retryable error: Failed request: (501) Not Implemented\n',
    ]);
    expect(call.failure).toEqual({ message: 'Failed to GetCacheEntryDownloadURL: Received non-retryable error: Failed request: (501) Not Implemented', level: 'warning' });
    expect(call.value).toEqual({ key: null });
    expect(cacheProblem(call)?.unreachable).toBe(true);
  });

  it('reports a child that ends without a result, and a missing child script', async () => {
    const script = await child(`console.error('boom'); process.exit(3);`);
    const call = await cacheCall(restore, { script, write: () => {} });
    expect(call.failure).toEqual({ message: 'the cache call ended (code 3) without a result: boom', level: 'error' });
    const missing = await cacheCall(restore, { script: '/nowhere/post.js' });
    expect(missing.failure?.message).toBe('cannot run the cache call: /nowhere/post.js not found');
  });
});

describe('cache problems', () => {
  const outcome = (failure?: { message: string; level: 'error' | 'warning' | 'info' }) => ({ messages: [], seconds: 0, ...(failure ? { failure } : {}) });
  it('tells an unreachable service from a refusal and from other failures', () => {
    expect(cacheProblem(outcome())).toBeUndefined();
    expect(cacheProblem(outcome({ message: 'Cache service responded with 503', level: 'error' }))?.unreachable).toBe(true);
    expect(cacheProblem(outcome({ message: 'connect ECONNREFUSED 127.0.0.1:9', level: 'warning' }))?.unreachable).toBe(true);
    expect(cacheProblem(outcome({ message: 'Unable to reserve cache with key k, another job may be creating this cache.', level: 'info' }))).toEqual({
      reason: 'Unable to reserve cache with key k, another job may be creating this cache.',
      unreachable: false,
    });
    expect(cacheProblem(outcome({ message: 'cache read denied: no readable scopes', level: 'warning' }))?.unreachable).toBe(false);
  });

  it("finds each call and transfer in @actions/cache's output (v2 and v1)", () => {
    expect(phaseOf('::debug::[Request] GetCacheEntryDownloadURL https://results/twirp/x', 'restore')).toEqual({ name: 'lookup', kind: 'call' });
    expect(phaseOf('::debug::[Request] CreateCacheEntry https://results/twirp/x', 'save')).toEqual({ name: 'reserve', kind: 'call' });
    expect(phaseOf('::debug::[Request] FinalizeCacheEntryUpload https://results/twirp/x', 'save')).toEqual({ name: 'commit', kind: 'call' });
    expect(phaseOf('::debug::Resource Url: https://ghes/_apis/artifactcache/cache?keys=a&version=b', 'restore')).toMatchObject({ name: 'lookup', kind: 'call', retried: true });
    expect(phaseOf('::debug::Resource Url: https://ghes/_apis/artifactcache/caches', 'save')).toMatchObject({ name: 'reserve', kind: 'call', retried: true });
    expect(phaseOf('::debug::Resource Url: https://ghes/_apis/artifactcache/caches/4', 'save')).toBeUndefined();
    expect(phaseOf('::debug::Commiting cache', 'save')).toEqual({ name: 'commit', kind: 'call' });
    expect(phaseOf('::debug::Starting download of archive to: /t/cache.tzst', 'restore')).toEqual({ name: 'download', kind: 'work' });
    expect(phaseOf('::debug::Archive Path: /t/cache.tzst', 'restore')).toEqual({ name: 'download', kind: 'work' });
    expect(phaseOf('::debug::Archive Path: /t/cache.tzst', 'save')).toEqual({ name: 'archive', kind: 'work' });
    expect(phaseOf('Cache Size: ~2 MB (2002170 B)', 'restore')).toEqual({ name: 'extract', kind: 'work' });
    expect(phaseOf('::debug::Attempting to upload cache located at: /t/cache.tzst', 'save')).toEqual({ name: 'upload', kind: 'work' });
    expect(phaseOf('::debug::Upload cache', 'save')).toEqual({ name: 'upload', kind: 'work' });
    expect(phaseOf('Cache hit for: k-1', 'restore')).toBeUndefined();
  });
});

describe('what cache-purge deletes', () => {
  const keyBase = 'nix-store-v3-linux-x64-abc-';
  const paths = (n: string) => [{ path: `/nix/store/${n}` }] as Parameters<typeof pathSetKey>[1];
  const oldBase = pathSetKey(keyBase, paths('a'));
  const otherBase = pathSetKey(keyBase, paths('b'));
  const newBase = pathSetKey(keyBase, paths('c'));
  const d1 = deltaKey(oldBase, 1, pathSetKey(keyBase, paths('d')));
  const d2 = deltaKey(oldBase, 2, pathSetKey(keyBase, paths('e')));
  const ref = 'refs/heads/main';
  const listed = [oldBase, d1, d2, otherBase, deltaKey(otherBase, 1, newBase), newBase, `${oldBase}-extra`].map((key) => ({ key, ref, size_in_bytes: 1 }));

  it('deletes the old base and its deltas in this ref, nothing else', () => {
    expect(supersededKeys([...listed, { key: d2, ref: 'refs/heads/other', size_in_bytes: 1 }], oldBase, keyBase, ref, newBase)).toEqual([oldBase, d1, d2]);
  });

  it('takes no chain manifest at its word: a base that is the key prefix, another prefix, or the new entry deletes nothing', () => {
    expect(supersededKeys(listed, keyBase, keyBase, ref, newBase)).toEqual([]);
    expect(supersededKeys(listed, 'nix-store-v3-', keyBase, ref, newBase)).toEqual([]);
    expect(supersededKeys(listed, newBase, keyBase, ref, newBase)).toEqual([]);
    expect(supersededKeys(listed, pathSetKey('other-prefix-', paths('a')), keyBase, ref, newBase)).toEqual([]);
  });

  it('a new base supersedes the restored chain only: not one restored from another prefix, nor another chain a manifest names', () => {
    expect(supersedes({ keyBase, restoredKey: d2 }, oldBase, newBase)).toBe(true);
    expect(supersedes({ keyBase, restoredKey: oldBase }, oldBase, newBase)).toBe(true);
    // Restored by a fallback prefix (flake.lock changed): its chain is another prefix's, left alone.
    const fallback = pathSetKey('nix-store-v3-linux-x64-', paths('a'));
    expect(supersedes({ keyBase, restoredKey: fallback }, fallback, newBase)).toBe(false);
    // A manifest in the restored entry naming some other base.
    expect(supersedes({ keyBase, restoredKey: d2 }, otherBase, newBase)).toBe(false);
    expect(supersedes({ keyBase, restoredKey: undefined }, oldBase, newBase)).toBe(false);
    expect(supersedes({ keyBase, restoredKey: newBase }, newBase, newBase)).toBe(false);
  });

  it('purges after a new base only when the entry restored is the chain the manifest names', () => {
    expect(inChain(oldBase, oldBase)).toBe(true);
    expect(inChain(d2, oldBase)).toBe(true);
    expect(inChain(otherBase, oldBase)).toBe(false);
    expect(inChain(`${oldBase}-extra`, oldBase)).toBe(false);
  });
});
