// Reliability of the push against the real Distribution registry behind a fault proxy: every request
// retried on its own (429 on every third request, 503 bursts longer than one backoff), upload sessions
// reopened only when lost (a reset mid-PATCH with the blob committed anyway, or not; a PUT whose answer
// was lost), stalls up and down, a retry budget that fails a registry refusing everything in one line,
// fail-fast aborts, and two pushes of one image to one tag at once. Every result is checked against the
// registry with skopeo: the digest, and every blob pulled back.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { skopeo, startRegistry, type FaultProxy, type FaultRule, type TestRegistry, withFaultProxy } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';
import type { RetryPolicy } from '../../src/registry/transport/retry.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
/** Small waits, a budget far from reached. */
const fast: Partial<RetryPolicy> = { attempts: 8, baseMs: 50, maxMs: 400, budgetMs: 30_000 };
let work: string;
let archive: MadeArchive;
let registry: TestRegistry;

const SIZES = [300_000, 400_000, 1000];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-retries-'));
  archive = await makeImageArchive({
    dir: work,
    name: 'img',
    compression: 'none',
    layers: [
      { size: SIZES[0]!, seed: 'r-one', compressible: true },
      { size: SIZES[1]!, seed: 'r-two', compressible: false },
      { size: SIZES[2]!, seed: 'r-three', compressible: true },
    ],
  });
  registry = await startRegistry({});
});
afterAll(async () => registry?.stop());

function client(host: string, repository: string, more: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ registry: host, repository, insecure: true, logger: quiet, retry: fast, ...more });
}

async function push(c: RegistryClient, opts: { tags?: string[]; path?: string; uploads?: number } = {}): Promise<PushResult> {
  return pushImage({ source: await detectSource(opts.path ?? archive.path), client: c, tags: opts.tags ?? ['latest'], logger: quiet, tmpDir: work, ...(opts.uploads ? { uploads: opts.uploads } : {}) });
}

/** The tag in the registry (read directly, not through the proxy) has this digest, and every blob pulls. */
async function checkInRegistry(repo: string, digest: string): Promise<void> {
  const ref = `docker://${registry.host}/${repo}:latest`;
  const inspected = JSON.parse(await skopeo(['inspect', ref])) as { Digest: string };
  expect(inspected.Digest).toBe(digest);
  const dir = await mkdtemp(join(work, 'pull-'));
  await skopeo(['copy', ref, `oci:${dir}:x`]); // skopeo checks every blob's digest as it copies
  const manifest = JSON.parse(await skopeo(['inspect', '--raw', ref])) as { config: { digest: string }; layers: { digest: string }[] };
  const blobs = await readdir(join(dir, 'blobs', 'sha256'));
  for (const d of [manifest.config, ...manifest.layers]) expect(blobs).toContain(d.digest.slice(7));
}

async function notTagged(repo: string): Promise<void> {
  await expect(skopeo(['inspect', `docker://${registry.host}/${repo}:latest`])).rejects.toThrow();
}

const withProxy = <T>(rules: FaultRule[], run: (p: FaultProxy) => Promise<T>): Promise<T> => withFaultProxy(registry, rules, run);

const count = (log: string[], re: RegExp) => log.filter((l) => re.test(l)).length;
/** Bytes of the three layers and the config, as pushed: what a push with nothing sent twice PATCHes. */
const blobBytes = (r: PushResult) => r.layers.reduce((n, l) => n + l.size, r.config.size);

let clean: PushResult;

describe('faults, each request retried on its own', () => {
  beforeAll(async () => {
    clean = await push(client(registry.host, 'rel/clean'));
  });

  it('429 (Retry-After: 1) on every third request: pushes, retrying only the refused requests', async () => {
    await withProxy([{ status: 429, retryAfter: '1', every: 3, times: 1_000_000 }], async (proxy) => {
      const c = client(proxy.host, 'rel/rate-limited', { retry: { ...fast, maxMs: 2000 } });
      const started = Date.now();
      const result = await push(c);
      const seconds = (Date.now() - started) / 1000;
      const refused = count(proxy.log, / → 429$/);
      expect(refused).toBeGreaterThanOrEqual(5);
      expect(c.stats.retries).toBe(refused);
      expect(c.stats.causes).toEqual({ '429': refused });
      expect(result.retries).toEqual({ retries: refused, causes: { '429': refused }, tokens: 0, sessions: 0 });
      // Retry-After was honoured: no refused request came back sooner than a second later.
      expect(seconds).toBeGreaterThan(1);
      // Nothing was uploaded twice: one POST and one PATCH accepted per blob.
      expect(count(proxy.log, /^PATCH .* → 202$/)).toBe(4);
      expect(proxy.forwarded.PATCH).toBe(blobBytes(result));
      expect(result.digest).toBe(clean.digest);
      await checkInRegistry('rel/rate-limited', result.digest);
      c.close();
    });
  });

  it('503 bursts on the upload requests, each longer than several backoffs: pushes', async () => {
    await withProxy(
      [
        { path: /\/blobs\/uploads\/$/, status: 503, burstMs: 1200, times: 1_000_000 },
        { method: 'PUT', path: /\/blobs\/uploads\/.+digest=/, status: 503, burstMs: 1200, times: 1_000_000 },
      ],
      async (proxy) => {
        // Backoffs of 50–300 ms: a request needs 5 to 9 tries to outlast a burst.
        const c = client(proxy.host, 'rel/bursts', { retry: { ...fast, attempts: 30, baseMs: 100, maxMs: 300 } });
        const result = await push(c);
        // Each burst outlasted the first backoff (≤ 100 ms) many times over.
        expect(count(proxy.log, /^POST .* → 503$/)).toBeGreaterThanOrEqual(4);
        expect(count(proxy.log, /^PUT .* → 503$/)).toBeGreaterThanOrEqual(4);
        expect(c.stats.causes['503']).toBe(count(proxy.log, / → 503$/));
        expect(proxy.forwarded.PATCH).toBe(blobBytes(result));
        await checkInRegistry('rel/bursts', result.digest);
        c.close();
      },
    );
  });

  it('a reset mid-PATCH after the registry committed the blob: HEAD finds it, nothing is sent again', async () => {
    const big = (req: { headers: Record<string, string | string[] | undefined> }) => Number(req.headers['content-length']) === clean.layers[1]!.size;
    await withProxy([{ method: 'PATCH', when: big, commitThenReset: true, times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/committed');
      const result = await push(c);
      expect(proxy.log.filter((l) => l.includes('→ committed'))).toEqual([expect.stringMatching(/^PATCH .* → committed \(201\), reset$/)]);
      expect(count(proxy.log, /^POST /)).toBe(4); // one session per blob: none reopened
      expect(count(proxy.log, /^PATCH /)).toBe(4);
      expect(proxy.received.PATCH).toBe(blobBytes(result));
      expect(c.stats.sessions).toBe(0);
      expect(c.stats.causes).toEqual({ connection: 1 }); // the PATCH lost, counted though nothing was sent again
      expect(result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
      expect(result.digest).toBe(clean.digest);
      await checkInRegistry('rel/committed', result.digest);
      c.close();
    });
  });

  it('a reset mid-PATCH with half the body in the registry: a new session, the blob whole', async () => {
    const big = (req: { headers: Record<string, string | string[] | undefined> }) => Number(req.headers['content-length']) === clean.layers[1]!.size;
    await withProxy([{ method: 'PATCH', when: big, resetAfterBytes: 150_000, times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/partial');
      const result = await push(c);
      expect(count(proxy.log, /^PATCH .* → reset after 150000 bytes$/)).toBe(1);
      expect(count(proxy.log, /^POST /)).toBe(5); // the lost session, and a new one
      expect(c.stats.sessions).toBe(1);
      expect(c.stats.causes).toEqual({ connection: 1 });
      expect(result.digest).toBe(clean.digest);
      await checkInRegistry('rel/partial', result.digest);
      c.close();
    });
  });

  it('a PUT whose answer is lost after the registry committed: the retried PUT finds no session, HEAD finds the blob', async () => {
    await withProxy([{ method: 'PUT', path: /\/blobs\/uploads\/.+digest=/, dropAnswer: true, times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/put-lost');
      const result = await push(c);
      expect(count(proxy.log, /^PUT .*digest=.* → 201 not passed on, reset$/)).toBe(1);
      expect(count(proxy.log, /^PUT .*digest=.* → 404$/)).toBe(1); // BLOB_UPLOAD_UNKNOWN: the session is done
      expect(count(proxy.log, /^POST /)).toBe(4);
      expect(proxy.received.PATCH).toBe(blobBytes(result));
      expect(c.stats.sessions).toBe(0);
      expect(c.stats.causes).toEqual({ connection: 1, '404': 1 }); // the PUT sent again; the session found done
      await checkInRegistry('rel/put-lost', result.digest);
      c.close();
    });
  });
});

describe('stalls', () => {
  it('an upload that stops moving (the registry stops reading) is dropped after stallMs and sent on a new session', async () => {
    const big = (req: { headers: Record<string, string | string[] | undefined> }) => Number(req.headers['content-length']) === clean.layers[1]!.size;
    await withProxy([{ method: 'PATCH', when: big, stall: 'read', times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/stall-up', { stallMs: 1000 });
      const started = Date.now();
      const result = await push(c);
      const seconds = (Date.now() - started) / 1000;
      expect(seconds).toBeGreaterThanOrEqual(1);
      expect(seconds).toBeLessThan(15);
      expect(c.stats.causes).toEqual({ stall: 1 });
      expect(c.stats.sessions).toBe(1);
      await checkInRegistry('rel/stall-up', result.digest);
      c.close();
    });
  });

  it('a PUT that is never answered is retried after stallMs', async () => {
    await withProxy([{ method: 'PUT', path: /\/blobs\/uploads\/.+digest=/, stall: 'answer', times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/stall-answer', { stallMs: 1000 });
      const result = await push(c);
      expect(c.stats.causes).toEqual({ stall: 1 });
      expect(c.stats.sessions).toBe(0);
      await checkInRegistry('rel/stall-answer', result.digest);
      c.close();
    });
  });

  it('a download that stops mid-body is retried after stallMs and comes back whole', async () => {
    await withProxy([{ method: 'GET', path: /\/blobs\/sha256:/, stall: 'body', stallAfterBytes: 100, times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/clean', { stallMs: 1000 });
      const started = Date.now();
      const config = await c.getBlob(clean.config.digest);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
      expect(config.length).toBe(clean.config.size);
      expect(count(proxy.log, /^GET .* → 200, stalled$/)).toBe(1);
      expect(c.stats.causes).toEqual({ stall: 1 });
      c.close();
    });
  });
});

describe('the retry budget', () => {
  it('fails a registry that refuses everything within the budget, in one line naming the status and the request, nothing tagged', async () => {
    await withProxy([], async (proxy) => {
      const c = client(proxy.host, 'rel/refused', { retry: { attempts: 1000, baseMs: 50, maxMs: 200, budgetMs: 1500 } });
      await c.ping();
      proxy.rules.push({ status: 503, times: 1_000_000 });
      const started = Date.now();
      const error = await push(c).then(
        () => undefined,
        (e: Error) => e,
      );
      const ms = Date.now() - started;
      expect(error).toBeDefined();
      expect(ms).toBeGreaterThanOrEqual(1400);
      expect(ms).toBeLessThan(6000); // the budget, and one try
      expect(error!.message).toMatch(
        /^registry 127\.0\.0\.1:\d+ answered 503 Service Unavailable to HEAD blob sha256:[0-9a-f]{64} \(after \d+ tr(y|ies); retrying would pass the retry budget of 1\.5 s\)$/,
      );
      expect(proxy.log.some((l) => /^PUT .*\/manifests\//.test(l))).toBe(false);
      await notTagged('rel/refused');
      c.close();
    });
  });

  it('a request that keeps failing gives up after its tries, however much budget is left', async () => {
    await withProxy([{ method: 'PUT', path: /\/blobs\/uploads\//, status: 500, times: 1_000_000 }], async (proxy) => {
      const c = client(proxy.host, 'rel/put-500', { retry: { attempts: 4, baseMs: 20, maxMs: 100, budgetMs: 60_000 } });
      const error = await push(c).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(/^registry 127\.0\.0\.1:\d+ answered 500 Internal Server Error to PUT blob sha256:[0-9a-f]{64}: UNKNOWN: injected fault 500 \(after 4 tries\)$/);
      await notTagged('rel/put-500');
      c.close();
    });
  });
});

describe('fail fast', () => {
  it('a layer that fails for good aborts the uploads in flight and is reported at once, nothing tagged', async () => {
    const slow = await makeImageArchive({
      dir: work,
      name: 'slow',
      compression: 'none',
      layers: [
        { size: 1_500_000, seed: 'ff-big-1', compressible: false },
        { size: 1_500_000, seed: 'ff-big-2', compressible: false },
        { size: 2_000, seed: 'ff-small', compressible: true },
      ],
    });
    const small = (req: { headers: Record<string, string | string[] | undefined> }) => Number(req.headers['content-length']) < 100_000;
    await withProxy(
      [
        // The big layers crawl at 100 kB/s (15 s each); the small one is refused for good.
        { method: 'PATCH', when: (req) => !small(req), throttle: 100_000, times: 1_000_000 },
        { method: 'PATCH', when: small, status: 400, times: 1_000_000 },
      ],
      async (proxy) => {
        const c = client(proxy.host, 'rel/fail-fast');
        const started = Date.now();
        const error = await push(c, { path: slow.path }).then(
          () => undefined,
          (e: Error) => e,
        );
        const ms = Date.now() - started;
        expect(error?.message).toMatch(/^registry 127\.0\.0\.1:\d+ answered 400 Bad Request to PATCH blob sha256:[0-9a-f]{64}: UNKNOWN: injected fault 400$/);
        expect(ms).toBeLessThan(5000); // not the 15 s the other uploads would take
        // The big uploads were cut off: the proxy got far less than their bytes.
        expect(proxy.received.PATCH ?? 0).toBeLessThan(1_500_000);
        await new Promise((r) => setTimeout(r, 300));
        const seen = proxy.log.length;
        await new Promise((r) => setTimeout(r, 700));
        expect(proxy.log.length).toBe(seen); // nothing more is sent
        expect(proxy.log.some((l) => /^PUT .*\/manifests\//.test(l))).toBe(false);
        await notTagged('rel/fail-fast');
        c.close();
      },
    );
  });
});

describe('a registry catching up with its blobs', () => {
  it('a manifest PUT answered MANIFEST_BLOB_UNKNOWN is sent again a little later, and the image is tagged', async () => {
    await withProxy([{ method: 'PUT', path: /\/manifests\//, status: 400, code: 'MANIFEST_BLOB_UNKNOWN', times: 1 }], async (proxy) => {
      const c = client(proxy.host, 'rel/catching-up');
      const result = await push(c);
      expect(result.digest).toBe(clean.digest);
      expect(proxy.log.filter((l) => /^PUT .*\/manifests\/latest → 400$/.test(l))).toHaveLength(1);
      await checkInRegistry('rel/catching-up', clean.digest);
      c.close();
    });
  });

  it('one that keeps answering so fails after three tries, naming the code', async () => {
    await withProxy([{ method: 'PUT', path: /\/manifests\//, status: 400, code: 'MANIFEST_BLOB_UNKNOWN', times: 1000 }], async (proxy) => {
      const c = client(proxy.host, 'rel/never-catches-up');
      await expect(push(c)).rejects.toThrow(/answered 400 .*MANIFEST_BLOB_UNKNOWN/);
      expect(proxy.log.filter((l) => /^PUT .*\/manifests\//.test(l))).toHaveLength(3);
      c.close();
    });
  });
});

describe('concurrent pushes', () => {
  it('two pushes of the same image to the same tag at once both succeed with one digest', async () => {
    const a = client(registry.host, 'rel/concurrent');
    const b = client(registry.host, 'rel/concurrent');
    const [ra, rb] = await Promise.all([push(a, { tags: ['latest', 'v1'] }), push(b, { tags: ['latest', 'v1'] })]);
    expect(ra.digest).toBe(clean.digest);
    expect(rb.digest).toBe(clean.digest);
    await checkInRegistry('rel/concurrent', clean.digest);
    const v1 = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/rel/concurrent:v1`])) as { Digest: string };
    expect(v1.Digest).toBe(clean.digest);
    a.close();
    b.close();
  });
});
