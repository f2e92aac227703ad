// The test cache server against the real @actions/cache: both protocols, key matching, versions,
// and the Azure block upload that archives over 128 MiB take.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as cache from '@actions/cache';
import { startCacheServer, type CacheServer } from '../support/cache-server.js';

let server: CacheServer;
let work: string;
const saved = { ...process.env };

beforeAll(async () => {
  server = await startCacheServer();
  work = await mkdtemp(join(tmpdir(), 'nia-cachesrv-'));
  process.env.GITHUB_WORKSPACE = work;
  process.env.RUNNER_TEMP = join(work, 'tmp');
  await mkdir(process.env.RUNNER_TEMP);
});
afterAll(async () => {
  process.env = saved;
  await server?.stop();
});

function useProtocol(p: 'v1' | 'v2'): void {
  for (const k of ['ACTIONS_CACHE_URL', 'ACTIONS_RESULTS_URL', 'ACTIONS_CACHE_SERVICE_V2']) delete process.env[k];
  Object.assign(process.env, server.env(p));
  if (!process.env.ACTIONS_CACHE_SERVICE_V2) delete process.env.ACTIONS_CACHE_SERVICE_V2;
}

describe.each(['v2', 'v1'] as const)('@actions/cache over %s', (protocol) => {
  it('saves, restores by exact key and by prefix (newest first), and keeps versions apart', async () => {
    useProtocol(protocol);
    const dir = join(work, `data-${protocol}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'file'), 'one');
    expect(await cache.saveCache([dir], `k-${protocol}-a-1`)).toBeGreaterThan(0);
    await writeFile(join(dir, 'file'), 'two');
    expect(await cache.saveCache([dir], `k-${protocol}-a-2`)).toBeGreaterThan(0);

    await rm(dir, { recursive: true });
    expect(await cache.restoreCache([dir], `k-${protocol}-a-1`)).toBe(`k-${protocol}-a-1`);
    expect(await readFile(join(dir, 'file'), 'utf8')).toBe('one');
    expect(await cache.restoreCache([dir], 'nope', [`k-${protocol}-a-`])).toBe(`k-${protocol}-a-2`);
    expect(await readFile(join(dir, 'file'), 'utf8')).toBe('two');
    // Another path list is another version: no match.
    expect(await cache.restoreCache([join(work, 'elsewhere')], `k-${protocol}-a-1`)).toBeUndefined();
    const uploads = server.entries.filter((e) => e.key.startsWith(`k-${protocol}`)).map((e) => e.upload);
    expect(uploads).toEqual(protocol === 'v2' ? ['single', 'single'] : ['chunks', 'chunks']);
  });
});

describe('scopes and the REST API for caches', () => {
  function onRef(p: 'v1' | 'v2', ref: string): void {
    useProtocol(p);
    Object.assign(process.env, server.env(p, { ref }));
  }

  it.each(['v2', 'v1'] as const)('over %s, a branch sees its own entries then the default branch\'s; the default branch never sees the branch\'s', async (protocol) => {
    const dir = join(work, `scoped-${protocol}`);
    await mkdir(dir, { recursive: true });
    onRef(protocol, 'refs/heads/main');
    await writeFile(join(dir, 'file'), 'main');
    expect(await cache.saveCache([dir], `s-${protocol}-main`)).toBeGreaterThan(0);
    onRef(protocol, 'refs/heads/topic');
    await rm(dir, { recursive: true });
    expect(await cache.restoreCache([dir], 'nope', [`s-${protocol}-`])).toBe(`s-${protocol}-main`);
    await writeFile(join(dir, 'file'), 'topic');
    expect(await cache.saveCache([dir], `s-${protocol}-topic`)).toBeGreaterThan(0);
    expect(await cache.restoreCache([dir], 'nope', [`s-${protocol}-`])).toBe(`s-${protocol}-topic`);
    expect(server.entries.find((e) => e.key === `s-${protocol}-topic`)?.ref).toBe('refs/heads/topic');
    onRef(protocol, 'refs/heads/main');
    expect(await cache.restoreCache([dir], 'nope', [`s-${protocol}-`])).toBe(`s-${protocol}-main`);
    expect(await cache.restoreCache([dir], `s-${protocol}-topic`)).toBeUndefined();
  });

  it('lists by key prefix and ref, deletes by key and ref, and answers 403 to a token that may not delete', async () => {
    const api = `${server.url}/repos/owner/app/actions/caches`;
    const headers = { authorization: 'Bearer gh-token' };
    const list = async (query: string) => ((await (await fetch(`${api}?${query}`, { headers })).json()) as { total_count: number; actions_caches: { key: string; ref: string }[] });
    const listed = await list('key=s-v2-');
    expect(listed.actions_caches.map((c) => c.key).sort()).toEqual(['s-v2-main', 's-v2-topic']);
    expect((await list('key=s-v2-&ref=refs/heads/topic')).actions_caches.map((c) => c.key)).toEqual(['s-v2-topic']);
    expect((await fetch(`${api}?key=s-v2-topic`)).status).toBe(401);
    server.restWrite = false;
    try {
      expect((await fetch(`${api}?key=s-v2-topic&ref=refs/heads/topic`, { method: 'DELETE', headers })).status).toBe(403);
    } finally {
      server.restWrite = true;
    }
    expect((await fetch(`${api}?key=s-v2-topic&ref=refs/heads/main`, { method: 'DELETE', headers })).status).toBe(404);
    expect((await fetch(`${api}?key=s-v2-topic&ref=refs/heads/topic`, { method: 'DELETE', headers })).status).toBe(200);
    expect(server.entries.some((e) => e.key === 's-v2-topic')).toBe(false);
    expect(server.entries.some((e) => e.key === 's-v2-main')).toBe(true);
  });
});

describe('large archives', () => {
  it('go up in Azure blocks then a block list over 128 MiB, and come back whole', async () => {
    useProtocol('v2');
    const dir = join(work, 'big');
    await mkdir(dir, { recursive: true });
    const out = createWriteStream(join(dir, 'random'));
    for (let i = 0; i < 136; i++) out.write(randomBytes(1024 * 1024));
    await new Promise((r) => out.end(r));
    expect(await cache.saveCache([dir], 'big-1')).toBeGreaterThan(0);
    const entry = server.entries.find((e) => e.key === 'big-1')!;
    expect(entry.upload).toBe('blocks');
    expect(server.requests.some((r) => r.includes('comp=block&'))).toBe(true);
    const original = await readFile(join(dir, 'random'));
    await rm(dir, { recursive: true });
    expect(await cache.restoreCache([dir], 'big-1')).toBe('big-1');
    expect((await readFile(join(dir, 'random'))).equals(original)).toBe(true);
  }, 120_000);
});
