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
