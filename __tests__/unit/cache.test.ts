// Pure pieces of the store cache: keys, the flake.lock hash, Nix's base32, narinfo, path-info shapes;
// and the watchdog around each @actions/cache call, with stand-in children that print what
// @actions/cache prints (the real one, against a failing and a hanging service: e2e/cache.test.ts).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheKeys, cacheProblem, localFlakeDir, lockHash, pathSetKey, substituterLine, untrustedCacheWarning } from '../../src/nix/cache.js';
import { cacheCall, phaseOf, type CacheCallRequest } from '../../src/nix/cache-call.js';
import { narinfo, nixBase32 } from '../../src/nix/binary-cache.js';
import { parsePathInfo } from '../../src/nix/store.js';

const sha = (s: string) => createHash('sha256').update(s).digest();

describe('keys', () => {
  it('restore by the flake.lock prefix, then the attr, then the system; cache-key replaces the prefix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-lock-'));
    await writeFile(join(dir, 'flake.lock'), '{"nodes":{}}');
    const lock = createHash('sha256').update('{"nodes":{}}').digest('hex').slice(0, 16);
    expect(lockHash(`path:${dir}`)).toBe(lock);
    expect(lockHash(dir)).toBe(lock);
    expect(cacheKeys({ attr: 'docker', flake: dir, platform: 'linux', arch: 'x64' })).toEqual({
      keyBase: `nix-image-linux-x64-docker-${lock}-`,
      restoreKeys: [`nix-image-linux-x64-docker-${lock}-`, 'nix-image-linux-x64-docker-', 'nix-image-linux-x64-'],
    });
    expect(cacheKeys({ keyPrefix: 'my key,v1', attr: 'docker', flake: dir })).toEqual({ keyBase: 'my_key_v1-', restoreKeys: ['my_key_v1-'] });
    // A remote flake has no lock here: its reference names its inputs.
    expect(lockHash('github:owner/repo')).not.toBe(lockHash('github:owner/other'));
    expect(localFlakeDir('github:owner/repo')).toBeUndefined();
    expect(localFlakeDir('.', '/work')).toBe('/work');
    expect(localFlakeDir('./sub?dir=x', '/work')).toBe('/work/sub');
  });

  it('names a path set independently of its order', () => {
    const info = (path: string) => ({ path, narSize: 1, references: [], signatures: [] });
    const a = pathSetKey('k-', [info('/nix/store/a'), info('/nix/store/b')]);
    expect(a).toMatch(/^k-[0-9a-f]{16}$/);
    expect(pathSetKey('k-', [info('/nix/store/b'), info('/nix/store/a')])).toBe(a);
    expect(pathSetKey('k-', [info('/nix/store/a')])).not.toBe(a);
  });
});

describe('substituter', () => {
  it('is trusted, and consulted after cache.nixos.org (40) and every other configured substituter', () => {
    expect(substituterLine('/home/runner/.cache/nix-image-action/binary-cache')).toBe(
      'extra-substituters = file:///home/runner/.cache/nix-image-action/binary-cache?trusted=1&priority=1000',
    );
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

  it('writes narinfo with basenames for references and deriver', () => {
    const text = narinfo(
      { path: '/nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top', narSize: 176, references: ['/nix/store/ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep'], deriver: '/nix/store/7zx337yakl8qlqyc8zd9dz51n3lzw12v-top.drv', signatures: [] },
      sha(''),
      176,
    );
    expect(text).toBe(
      [
        'StorePath: /nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top',
        'URL: nar/yx3hfvay2gc7i0fai747ylmpcaglpgvb.nar',
        'Compression: none',
        'NarHash: sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73',
        'NarSize: 176',
        'References: ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep',
        'Deriver: 7zx337yakl8qlqyc8zd9dz51n3lzw12v-top.drv',
        '',
      ].join('\n'),
    );
  });

  it('reads nix path-info --json in the shape of Nix 2.8 (a list) and of 2.19+ (keyed by path)', () => {
    const old = JSON.stringify([{ path: '/nix/store/a-x', narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'] }]);
    const current = JSON.stringify({ '/nix/store/a-x': { narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], deriver: '/nix/store/d.drv' }, '/nix/store/missing': null });
    expect(parsePathInfo(old)).toEqual([{ path: '/nix/store/a-x', narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'] }]);
    expect(parsePathInfo(current)).toEqual([{ path: '/nix/store/a-x', narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], deriver: '/nix/store/d.drv' }]);
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
    expect(phaseOf('::debug::Resource Url: https://ghes/_apis/artifactcache/cache?keys=a&version=b', 'restore')).toEqual({ name: 'lookup', kind: 'call' });
    expect(phaseOf('::debug::Resource Url: https://ghes/_apis/artifactcache/caches', 'save')).toEqual({ name: 'reserve', kind: 'call' });
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
