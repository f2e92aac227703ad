// Bearer tokens that expire mid-push: the real Distribution registry with token auth whose tokens live
// 3 s (the test token server signs `exp` so the registry refuses them once `expires_in` has passed), and a
// push slowed to take several token lifetimes. The client must fetch the next token before the one it
// holds runs out, never sending an expired one (no 401 but the first, unauthenticated probe).
import { mkdtemp, readdir } from 'node:fs/promises';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { skopeo, startFaultProxy, startRegistry, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage } from '../../src/registry/push.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const fast = { attempts: 4, baseMs: 50, maxMs: 400, budgetMs: 30_000 };
const creds = { username: 'tester', password: 's3cret-pass' };
let work: string;
let archive: MadeArchive;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-tokens-'));
  archive = await makeImageArchive({
    dir: work,
    name: 'img',
    compression: 'none',
    layers: [
      { size: 250_000, seed: 'tok-one', compressible: false },
      { size: 250_000, seed: 'tok-two', compressible: false },
      { size: 250_000, seed: 'tok-three', compressible: false },
      { size: 2_000, seed: 'tok-four', compressible: true },
    ],
  });
});

function status(url: string, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { authorization } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

describe('tokens that live 3 s', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ auth: 'token', tokenSeconds: 3 })));
  afterAll(async () => registry?.stop());

  it('are refused by the registry once expired (the premise of the next test)', async () => {
    const c = new RegistryClient({ registry: registry.host, repository: 'tok/premise', insecure: true, credentials: creds, logger: quiet, retry: fast });
    await c.ping();
    const bearer = `Bearer ${registry.issued.at(-1)!.token}`;
    const url = `http://${registry.host}/v2/tok/premise/tags/list`;
    expect(await status(url, bearer)).not.toBe(401);
    await new Promise((r) => setTimeout(r, 4200));
    expect(await status(url, bearer)).toBe(401);
    c.close();
  });

  it('a push lasting several lifetimes renews the token before it expires: no request is refused', async () => {
    // Each layer's PATCH crawls at 100 kB/s (2.5 s each), one upload at a time: about 8 s in all.
    const proxy = await startFaultProxy(registry, [{ method: 'PATCH', throttle: 100_000, times: 1_000_000 }]);
    const issuedBefore = registry.issued.length;
    try {
      const c = new RegistryClient({ registry: proxy.host, repository: 'tok/long', insecure: true, credentials: creds, logger: quiet, retry: fast });
      const started = Date.now();
      const result = await pushImage({ source: await detectSource(archive.path), client: c, tags: ['latest'], logger: quiet, tmpDir: work, uploads: 1 });
      const seconds = (Date.now() - started) / 1000;
      expect(seconds).toBeGreaterThan(6);
      // Only the first probe, which carries no token, got a 401.
      expect(proxy.log.filter((l) => l.endsWith('→ 401'))).toEqual(['GET /v2/ → 401']);
      const issued = registry.issued.slice(issuedBefore);
      expect(issued.length).toBeGreaterThanOrEqual(3);
      expect(c.stats.tokens).toBe(issued.length);
      // Fetched ahead of expiry: never more than a lifetime apart, never much more often than needed.
      for (let i = 1; i < issued.length; i++) {
        const gap = issued[i]!.at - issued[i - 1]!.at;
        expect(gap).toBeLessThan(3000);
        expect(gap).toBeGreaterThan(1000);
      }
      expect(issued.every((t) => t.scopes.includes('repository:tok/long:pull,push'))).toBe(true);
      const ref = `docker://${registry.host}/tok/long:latest`;
      const inspected = JSON.parse(await skopeo(['inspect', ref], { creds: 'tester:s3cret-pass' })) as { Digest: string };
      expect(inspected.Digest).toBe(result.digest);
      const dir = await mkdtemp(join(work, 'pull-'));
      await skopeo(['copy', ref, `oci:${dir}:x`], { creds: 'tester:s3cret-pass' });
      expect((await readdir(join(dir, 'blobs', 'sha256'))).length).toBe(result.layers.length + 2);
      c.close();
    } finally {
      await proxy.stop();
    }
  });
});

describe('a token answer without expires_in', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ auth: 'token', omitExpiresIn: true })));
  afterAll(async () => registry?.stop());

  it('is taken to live 60 s, per the token spec: one token serves a whole short push', async () => {
    const c = new RegistryClient({ registry: registry.host, repository: 'tok/default', insecure: true, credentials: creds, logger: quiet, retry: fast });
    const result = await pushImage({ source: await detectSource(archive.path), client: c, tags: ['latest'], logger: quiet, tmpDir: work });
    expect(result.layers).toHaveLength(4);
    expect(c.stats.tokens).toBe(1);
    expect(registry.issued).toHaveLength(1);
    c.close();
  });
});
