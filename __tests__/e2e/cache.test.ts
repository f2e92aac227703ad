// The store cache end to end: the bundled action with the real Nix and the real @actions/cache, against
// the test cache server. Job 1 builds and saves; the built paths are then deleted, as a fresh runner
// lacks them; job 2 restores and rebuilds nothing but the image's own assembly; job 3, after a source
// change, rebuilds only what changed and saves under a new key. A signed cache is used only under its
// keys. A cache service that answers 500 or never answers costs one warning, and nothing is saved after
// a failed restore.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, type ActionRun } from '../support/action.js';
import { expectSucceeded } from '../support/expect-run.js';
import { startCacheServer, type CacheServer } from '../support/cache-server.js';
import { builtSoFar, forgetOutputs, makeClosureFlake } from '../support/flakes.js';
import { generateCacheKey, nixTestEnv } from '../support/nix.js';
import { skopeo, startFaultProxy, startRegistry, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry;
let server: CacheServer;

beforeAll(async () => {
  registry = await startRegistry({});
  server = await startCacheServer();
});
afterAll(async () => {
  await registry?.stop();
  await server?.stop();
});

describe('the store cache', () => {
  it('saves after a build, restores on a fresh runner, and saves again only what changed', async () => {
    const flake = await makeClosureFlake('1');
    const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
    const workspace = await mkdtemp(join(tmpdir(), 'nia-ws-'));
    // Each job pushes to a repository of its own: one that already held the image would be re-tagged
    // without restoring or building anything (the registry as binary cache, tested in dockertools.test.ts).
    let jobs = 0;
    const job = () =>
      runAction({
        runtime: 'node24',
        inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: `cache/app-${++jobs}`, insecure: 'true' },
        env: { ...nixTestEnv(), ...server.env('v2'), HOME: home },
        cwd: workspace,
      });

    const first = await job();
    expectSucceeded(first);
    expect(first.outputs['cache-hit']).toBe('false');
    expect(await builtSoFar(flake), first.log).toEqual(['base', 'app']);
    const saved = server.entries.filter((e) => e.committed);
    expect(saved).toHaveLength(1);
    expect(saved[0]!.key).toMatch(/^nix-image-linux-x64-docker-[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{16}$/);
    expect(first.summary).toMatch(/Store cache saved <code>nix-image-linux-x64-docker-/);

    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const second = await job();
    expectSucceeded(second);
    expect(second.outputs['cache-hit']).toBe('true');
    expect(await builtSoFar(flake)).toEqual(['base', 'app']); // nothing rebuilt
    expect(second.main.stdout).toMatch(/copying path '\/nix\/store\/\w+-cache-app' from 'file:\/\//);
    expect(second.main.stdout).toMatch(/copying path '\/nix\/store\/\w+-cache-base' from 'file:\/\//);
    expect(second.outputs.digest).toBe(first.outputs.digest);
    expect(server.entries.filter((e) => e.committed)).toHaveLength(1); // unchanged set: nothing saved
    expect(second.post?.stdout).toContain('nothing new to save');
    expect(JSON.parse(second.outputs.metadata!)['cache-hit']).toBe('true');
    expect(second.summary).toMatch(/restored \d+ paths/);

    await forgetOutputs(flake, ['docker', 'app', 'base']);
    await flake.setVersion('2');
    const third = await job();
    expectSucceeded(third);
    expect(third.outputs['cache-hit']).toBe('true');
    expect(await builtSoFar(flake)).toEqual(['base', 'app', 'app']); // only the changed derivation
    expect(third.outputs.digest).not.toBe(first.outputs.digest);
    const entries = server.entries.filter((e) => e.committed);
    expect(entries).toHaveLength(2);
    expect(entries[1]!.key).not.toBe(entries[0]!.key);
    // A delta on the first entry: only the changed package, not the closure again.
    expect(entries[1]!.key).toMatch(new RegExp(`^${entries[0]!.key}-d1-[0-9a-f]{16}$`));
    expect(third.post?.stdout).toMatch(/store cache: 1 new paths of 2, \d+ bytes; saving as \S+-d1-/);
    expect(third.summary).toMatch(/Store cache saved <code>\S+-d1-[0-9a-f]{16}<\/code>: a delta of 1 new paths/);
    expect(entries[1]!.size).toBeLessThan(entries[0]!.size / 10);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/cache/app-3:latest`])) as { Digest: string };
    expect(inspected.Digest).toBe(third.outputs.digest);

    // A fresh runner after it restores the chain (the base and the delta) and builds nothing.
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const fourth = await job();
    expectSucceeded(fourth);
    expect(await builtSoFar(flake)).toEqual(['base', 'app', 'app']);
    expect(fourth.outputs.digest).toBe(third.outputs.digest);
    expect(JSON.parse(fourth.outputs.metadata!)['store-cache']).toMatchObject({ key: entries[1]!.key, entries: 2, paths: 3 });
    expect(fourth.summary).toMatch(/restored 3 paths \([^)]*\) from 2 entries/);
    expect(fourth.post?.stdout).toContain('nothing new to save');
    expect(server.entries.filter((e) => e.committed)).toHaveLength(2);
  });

  it('saves in the post step also when the push failed', async () => {
    const flake = await makeClosureFlake('1');
    const proxy = await startFaultProxy(registry, [{ method: 'PUT', path: /\/blobs\/uploads\//, status: 500, times: 1000, retryAfter: '0' }] /* Retry-After: 0: the registry asks for the retries at once, so the test does not wait out the backoff */);
    try {
      const before = server.entries.filter((e) => e.committed).length;
      const r = await runAction({
        runtime: 'node24',
        inputs: { flake: flake.flake, attr: 'docker', registry: proxy.host, image: 'cache/push-fails', insecure: 'true' },
        env: { ...nixTestEnv(), ...server.env('v2'), HOME: await mkdtemp(join(tmpdir(), 'nia-home-')) },
      });
      expect(r.main.code).not.toBe(0);
      expect(r.main.errors[0]).toMatch(/answered 500/);
      expect(r.post?.code).toBe(0);
      expect(server.entries.filter((e) => e.committed).length).toBe(before + 1);
      expect(r.post?.stdout).toMatch(/store cache: 2 paths \(2 new, 0 restored\)/);
    } finally {
      await proxy.stop();
    }
  });

  it('saves what a failed build built, so the next attempt builds only what failed', async () => {
    const flake = await makeClosureFlake('1');
    await flake.setVersion('2', { failApp: true });
    const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
    const job = () =>
      runAction({
        runtime: 'node24',
        inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: 'cache/build-fails', insecure: 'true' },
        env: { ...nixTestEnv(), ...server.env('v2'), HOME: home },
      });
    const before = server.entries.filter((e) => e.committed).length;

    const failed = await job();
    expect(failed.main.code).not.toBe(0);
    expect(failed.main.errors[0]).toMatch(/cache-app\.drv' failed .*the app does not compile/);
    expect(failed.post?.code, failed.log).toBe(0);
    expect(failed.post?.stdout).toContain('the build failed; saving what it built');
    expect(failed.post?.stdout).toMatch(/store cache: 1 paths \(1 new, 0 restored\)/); // base
    expect(server.entries.filter((e) => e.committed).length).toBe(before + 1);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);

    // A fresh runner, the app fixed: base comes from the cache, only app is built.
    await forgetOutputs(flake, ['base']);
    await flake.setVersion('2');
    const fixed = await job();
    expectSucceeded(fixed);
    expect(fixed.outputs['cache-hit']).toBe('true');
    expect(fixed.main.stdout).toMatch(/copying path '\/nix\/store\/\w+-cache-base' from 'file:\/\//);
    expect(await builtSoFar(flake)).toEqual(['base', 'app', 'app']);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/cache/build-fails:latest`])) as { Digest: string };
    expect(inspected.Digest).toBe(fixed.outputs.digest);
  });
});

describe('a signed store cache', () => {
  it('a job with binary-cache-key signs what it saves; a reader with its public key uses it and saves nothing; one trusting another key builds it all again', async () => {
    const ours = await generateCacheKey('nia-e2e-ours-1');
    const other = await generateCacheKey('nia-e2e-other-1');
    const flake = await makeClosureFlake('1');
    let jobs = 0;
    const job = (keys: Record<string, string>) =>
      runAction({
        runtime: 'node24',
        inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: `cache/signed-${++jobs}`, insecure: 'true', ...keys },
        env: { ...nixTestEnv(), ...server.env('v2') },
      });

    const writer = await job({ 'binary-cache-key': ours.secret });
    expectSucceeded(writer);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);
    expect(writer.post?.stdout).toMatch(/store cache: 2 paths \(2 new, 0 restored\)/);
    expect(writer.masks).toContain(ours.secret);
    expect(writer.rawLog.split('\n').filter((l) => !l.startsWith('::add-mask::') && l.includes(ours.secret.split(':')[1]!))).toEqual([]);

    // A fork's pull request: the public key only. The signed paths are used; nothing can be signed, so nothing is saved.
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const entries = server.entries.filter((e) => e.committed).length;
    const reader = await job({ 'binary-cache-public-key': ours.pub });
    expectSucceeded(reader);
    expect(reader.outputs['cache-hit']).toBe('true');
    expect(await builtSoFar(flake)).toEqual(['base', 'app']); // nothing rebuilt
    expect(reader.main.stdout).toMatch(/copying path '\/nix\/store\/\w+-cache-app' from 'file:\/\//);
    expect(reader.post?.stdout).toContain('binary-cache-public-key is set without binary-cache-key');
    expect(server.entries.filter((e) => e.committed).length).toBe(entries);

    // Trusting another key: the entry is restored, but Nix takes none of its paths and builds them.
    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const stranger = await job({ 'binary-cache-public-key': other.pub });
    expectSucceeded(stranger);
    expect(await builtSoFar(flake)).toEqual(['base', 'app', 'base', 'app']);
    expect(stranger.main.stdout).not.toMatch(/copying path '\/nix\/store\/\w+-cache-(app|base)' from 'file:\/\//);
    expect(stranger.outputs.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

// What bounds the cost is the watchdog on each call, asserted through the reason it gives ("no answer in
// 5 s"); how long the whole job took is for the benchmarks, not for a test.
describe('a cache service that is down or stalls', () => {
  let jobs = 0;
  async function cacheJob(): Promise<{ r: ActionRun; requests: string[]; image: string }> {
    const flake = await makeClosureFlake('1');
    const image = `outage/app-${++jobs}`;
    const before = server.requests.length;
    const r = await runAction({
      runtime: 'node24',
      inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image, insecure: 'true' },
      env: { ...nixTestEnv(), ...server.env('v2'), HOME: await mkdtemp(join(tmpdir(), 'nia-home-')) },
    });
    return { r, requests: server.requests.slice(before), image };
  }
  async function pushed(image: string, r: ActionRun): Promise<void> {
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/${image}:latest`])) as { Digest: string };
    expect(inspected.Digest).toBe(r.outputs.digest);
  }

  it.each([
    ['answers 500 to everything', { failWith: 500 }, /^the lookup kept failing for 5 s: Failed request: \(500\) Internal Server Error: injected failure$/],
    ['takes every request and never answers', { hang: true }, /^the lookup got no answer in 5 s$/],
  ] as const)('builds and pushes with one warning, and saves nothing, when the service %s', async (_, fault, reason) => {
    Object.assign(server, fault);
    try {
      const { r, requests, image } = await cacheJob();
      expectSucceeded(r);
      expect(r.post?.errors).toEqual([]);
      expect(r.outputs['cache-hit']).toBe('false');
      // One line, and only one: @actions/cache's own warnings and errors are plain lines.
      expect(r.main.warnings).toHaveLength(1);
      const warning = /^store cache: the cache service was unreachable \((.*)\); the job went on without the store cache$/.exec(r.main.warnings[0]!);
      expect(warning, r.main.warnings[0]).not.toBeNull();
      expect(warning![1]).toMatch(reason);
      expect(r.post?.warnings).toEqual([]);
      // The post step does not try the service again.
      expect(requests.every((q) => q.includes('/GetCacheEntryDownloadURL')), requests.join('\n')).toBe(true);
      expect(r.post?.stdout).toContain('store cache: not saved: the restore failed in the main step');
      expect(r.summary).toMatch(/Store cache: false \(cache service unreachable\)/);
      expect(r.summary).toMatch(/Store cache not saved: the cache service was unreachable when restoring/);
      await pushed(image, r);
    } finally {
      server.failWith = undefined;
      server.hang = false;
    }
  });

  it('bounds each call of the save on its own: a reservation that never answers costs seconds', async () => {
    server.hang = true;
    server.faultOn = /\/CreateCacheEntry$/;
    try {
      const { r, requests, image } = await cacheJob();
      expectSucceeded(r);
      expect(r.main.warnings).toEqual([]);
      expect(r.outputs['cache-hit']).toBe('false'); // the lookup answered: no entry yet
      expect(r.post?.warnings).toEqual([
        'store cache: the cache service was unreachable (the reserve got no answer in 5 s); the job went on without saving the store cache',
      ]);
      expect(requests.filter((q) => q.includes('/CreateCacheEntry'))).toHaveLength(1);
      expect(requests.some((q) => q.includes('/FinalizeCacheEntryUpload'))).toBe(false);
      expect(r.summary).toMatch(/Store cache not saved: the cache service was unreachable/);
      await pushed(image, r);
    } finally {
      server.hang = false;
      server.faultOn = undefined;
    }
  });
});
