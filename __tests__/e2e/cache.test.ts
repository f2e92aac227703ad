// The store cache end to end: the bundled action with the real Nix and the real @actions/cache, against
// the test cache server. Job 1 builds and saves; the built paths are then deleted, as a fresh runner
// lacks them; job 2 restores and rebuilds nothing but the image's own assembly; job 3, after a source
// change, rebuilds only what changed and saves under a new key. A failing cache service costs a warning.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, type ActionRun } from '../support/action.js';
import { startCacheServer, type CacheServer } from '../support/cache-server.js';
import { forgetOutputs, makeClosureFlake, type ClosureFlake } from '../support/flakes.js';
import { nixTestEnv } from '../support/nix.js';
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

async function builds(flake: ClosureFlake): Promise<string[]> {
  return (await readFile(join(flake.records, 'builds'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
}

function ok(r: ActionRun): void {
  expect(r.main.errors, r.log).toEqual([]);
  expect(r.main.code, r.log).toBe(0);
  expect(r.post?.code, r.log).toBe(0);
}

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
    ok(first);
    expect(first.outputs['cache-hit']).toBe('false');
    expect(await builds(flake), first.log).toEqual(['base', 'app']);
    const saved = server.entries.filter((e) => e.committed);
    expect(saved).toHaveLength(1);
    expect(saved[0]!.key).toMatch(/^nix-image-linux-x64-docker-[0-9a-f]{16}-[0-9a-f]{16}$/);
    expect(first.summary).toMatch(/Store cache saved <code>nix-image-linux-x64-docker-/);

    await forgetOutputs(flake, ['docker', 'app', 'base']);
    const second = await job();
    ok(second);
    expect(second.outputs['cache-hit']).toBe('true');
    expect(await builds(flake)).toEqual(['base', 'app']); // nothing rebuilt
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
    ok(third);
    expect(third.outputs['cache-hit']).toBe('true');
    expect(await builds(flake)).toEqual(['base', 'app', 'app']); // only the changed derivation
    expect(third.outputs.digest).not.toBe(first.outputs.digest);
    const entries = server.entries.filter((e) => e.committed);
    expect(entries).toHaveLength(2);
    expect(entries[1]!.key).not.toBe(entries[0]!.key);
    expect(entries[1]!.key.slice(0, -16)).toBe(entries[0]!.key.slice(0, -16));
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/cache/app-3:latest`])) as { Digest: string };
    expect(inspected.Digest).toBe(third.outputs.digest);
  });

  it('saves in the post step also when the push failed', async () => {
    const flake = await makeClosureFlake('1');
    const proxy = await startFaultProxy(registry, [{ method: 'PUT', path: /\/blobs\/uploads\//, status: 500, times: 1000 }]);
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
    expect(await builds(flake)).toEqual(['base', 'app']);

    // A fresh runner, the app fixed: base comes from the cache, only app is built.
    await forgetOutputs(flake, ['base']);
    await flake.setVersion('2');
    const fixed = await job();
    ok(fixed);
    expect(fixed.outputs['cache-hit']).toBe('true');
    expect(fixed.main.stdout).toMatch(/copying path '\/nix\/store\/\w+-cache-base' from 'file:\/\//);
    expect(await builds(flake)).toEqual(['base', 'app', 'app']);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/cache/build-fails:latest`])) as { Digest: string };
    expect(inspected.Digest).toBe(fixed.outputs.digest);
  });

  it('builds and pushes with a warning when the cache service answers 500', async () => {
    const flake = await makeClosureFlake('1');
    server.failWith = 500;
    try {
      const r = await runAction({
        runtime: 'node24',
        inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: 'cache/down', insecure: 'true' },
        env: { ...nixTestEnv(), ...server.env('v2'), HOME: await mkdtemp(join(tmpdir(), 'nia-home-')) },
      });
      expect(r.main.code, r.log).toBe(0);
      expect(r.post?.code).toBe(0);
      expect(r.outputs['cache-hit']).toBe('false');
      // Warnings, never errors: the cache is an optimisation.
      expect(r.main.errors).toEqual([]);
      expect(r.post?.errors).toEqual([]);
      expect(r.main.warnings.join('\n')).toMatch(/Failed to restore: .*500/);
      expect(r.post?.warnings.join('\n')).toMatch(/Failed to save/);
      expect(r.summary).toMatch(/Store cache not saved/);
      const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/cache/down:latest`])) as { Digest: string };
      expect(inspected.Digest).toBe(r.outputs.digest);
    } finally {
      server.failWith = undefined;
    }
  }, 240_000);
});
