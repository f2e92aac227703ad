// Where the registry's credentials go, against the real Distribution registry behind a front that puts
// upload sessions and blob reads on other loopback origins (as registries hand blobs to S3 or a CDN):
// Authorization only to the registry's own origin (scheme, host, port), never over plain HTTP unless
// insecure, insecure only for the registry's host; tokens handed to onSecret; Retry-After honoured;
// an abort closes the connection and stops every retry.
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import type * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import {
  forward,
  skopeo,
  startOrigin,
  startRecordedTokenRegistry,
  startRegistry,
  startSplitRegistry,
  type Hop,
  type SeenRequest,
  type SplitRegistry,
  type TestOrigin,
  type TestRegistry,
} from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { sha256Digest } from '../../src/hash.js';
import { pushImage } from '../../src/registry/push.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const fastRetry = { attempts: 3, baseMs: 10, maxMs: 100 };
let work: string;
let archive: MadeArchive;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-cred-'));
  archive = await makeImageArchive({
    dir: work,
    name: 'img',
    compression: 'gzip',
    layers: [
      { size: 200_000, seed: 'cred-one', compressible: false },
      { size: 3_000, seed: 'cred-two', compressible: true },
    ],
  });
});

function client(host: string, repository: string, more: Partial<RegistryClientOptions> = {}): RegistryClient {
  const [username, password] = ['tester', 's3cret-pass'];
  return new RegistryClient({ registry: host, repository, insecure: true, credentials: { username, password }, logger: quiet, retry: fastRetry, ...more });
}

const withAuth = (seen: SeenRequest[]) => seen.filter((r) => r.authorization !== undefined);

describe('basic auth: upload sessions and blob reads on other origins', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ auth: 'htpasswd' })));
  afterAll(async () => registry?.stop());

  async function split(blobReads: Hop[], run: (s: SplitRegistry) => Promise<void>): Promise<void> {
    const s = await startSplitRegistry(registry, { uploadsOnA: true, blobReads });
    try {
      await run(s);
    } finally {
      await s.stop();
    }
  }

  it('pushes with every PATCH and PUT of an upload session on another origin, which gets no Authorization', async () => {
    await split(['a'], async (s) => {
      const c = client(s.host, 'cred/split');
      const result = await pushImage({ source: await detectSource(archive.path), client: c, tags: ['latest'], logger: quiet, tmpDir: work });
      expect(result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded']);
      // The sessions went to A: two layers and the config, one PATCH and one PUT each.
      expect(s.a.seen.filter((r) => r.method === 'PATCH')).toHaveLength(3);
      expect(s.a.seen.filter((r) => r.method === 'PUT')).toHaveLength(3);
      expect(withAuth(s.a.seen)).toEqual([]);
      // The registry got its credentials on everything but the first probe.
      expect(s.front.seen.slice(1).every((r) => r.authorization === 'Basic dGVzdGVyOnMzY3JldC1wYXNz')).toBe(true);
      expect(s.front.seen.some((r) => r.method === 'POST')).toBe(true);
      expect(s.front.seen.some((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.url.includes('/uploads/')))).toBe(false);

      // A second push reads the old config through a redirect to A: no Authorization there either.
      const again = await pushImage({ source: await detectSource(archive.path), client: client(s.host, 'cred/split'), tags: ['latest'], logger: quiet, tmpDir: work });
      expect(again.digest).toBe(result.digest);
      expect(again.layers.map((l) => l.action)).toEqual(['reused', 'reused']);
      expect(s.a.seen.some((r) => r.method === 'GET' && r.url.includes(result.config.digest))).toBe(true);
      expect(withAuth(s.a.seen)).toEqual([]);
      c.close();
    });
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/cred/split:latest`], { creds: 'tester:s3cret-pass' })) as { Digest: string };
    expect(inspected.Digest).toMatch(/^sha256:/);
  });

  it('judges every redirect hop against the registry: A, A again and B of a chain get no Authorization', async () => {
    const bytes = randomBytes(50_000);
    await client(registry.host, 'cred/chain').uploadBlobBytes(bytes);
    // Registry → A → A (a hop within the same other origin) → B.
    await split(['a', 'a', 'b'], async (s) => {
      const c = client(s.host, 'cred/chain');
      expect(sha256Digest(await c.getBlob(sha256Digest(bytes)))).toBe(sha256Digest(bytes));
      expect(s.a.seen.map((r) => r.method)).toEqual(['GET', 'GET']);
      expect(s.b.seen.map((r) => r.method)).toEqual(['GET']);
      expect(withAuth([...s.a.seen, ...s.b.seen])).toEqual([]);
      // The read started at the registry, with credentials.
      expect(s.front.seen.at(-1)).toMatchObject({ method: 'GET', authorization: expect.stringMatching(/^Basic /) });
      c.close();
    });
  });

  it('sends no credentials on a hop that comes back to the registry origin after the chain left it', async () => {
    const bytes = randomBytes(20_000);
    await client(registry.host, 'cred/back').uploadBlobBytes(bytes);
    await split(['a', 'front'], async (s) => {
      const c = client(s.host, 'cred/back');
      // The front serves the end of the chain by itself, as a presigned URL would.
      expect(sha256Digest(await c.getBlob(sha256Digest(bytes)))).toBe(sha256Digest(bytes));
      expect(withAuth(s.a.seen)).toEqual([]);
      const back = s.front.seen.filter((r) => r.url.includes('nia-hop=1'));
      expect(back).toHaveLength(1);
      expect(back[0]!.authorization).toBeUndefined();
      c.close();
    });
  });
});

describe('TLS registry: a redirect from https to http of the same host and port', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ tls: true, auth: 'htpasswd' })));
  afterAll(async () => registry?.stop());

  it('gets no credentials (another scheme is another origin)', async () => {
    const bytes = randomBytes(10_000);
    await client(registry.host, 'cred/downgrade').uploadBlobBytes(bytes);
    const s = await startSplitRegistry(registry, { blobReads: ['front-http'] });
    try {
      const c = client(s.host, 'cred/downgrade');
      expect(sha256Digest(await c.getBlob(sha256Digest(bytes)))).toBe(sha256Digest(bytes));
      const plain = s.front.seen.filter((r) => r.scheme === 'http');
      expect(plain.map((r) => r.method)).toEqual(['GET']);
      expect(withAuth(plain)).toEqual([]);
      expect(s.front.seen.filter((r) => r.scheme === 'https').slice(1).every((r) => r.authorization?.startsWith('Basic '))).toBe(true);
      c.close();
    } finally {
      await s.stop();
    }
  });
});

describe('token realm', () => {
  let registry: TestRegistry;
  /** Records what reaches the token server. */
  let tokens: TestOrigin;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ registry, tokens, stop } = await startRecordedTokenRegistry()));
  afterAll(async () => stop?.());

  /** The registry behind a front whose challenge names `realm` (given the recording token server's URL). */
  async function withRealm(realm: (tokenUrl: string) => string, run: (s: SplitRegistry) => Promise<void>): Promise<void> {
    const s = await startSplitRegistry(registry, { realm: () => realm(`${tokens.origin}/token`) });
    try {
      await run(s);
    } finally {
      await s.stop();
    }
  }

  it('refuses a plain-HTTP realm of an https registry in one line naming it, unless insecure', async () => {
    await withRealm(
      (t) => t,
      async (s) => {
        tokens.seen.length = 0;
        // The registry's certificate is trusted, so insecure is not needed to reach it.
        const strict = client(s.host, 'cred/token', { insecure: false, ca: [s.front.cert!] });
        await expect(strict.ping()).rejects.toThrow(
          /^registry 127\.0\.0\.1:\d+ names the token realm http:\/\/127\.0\.0\.1:\d+\/token over plain HTTP: set insecure: true to get a token there$/,
        );
        expect(tokens.seen).toEqual([]);
        strict.close();

        const secrets: string[] = [];
        const loose = client(s.host, 'cred/token', { insecure: true, onSecret: (v) => secrets.push(v) });
        await loose.uploadBlobBytes(Buffer.from('token realm over http, insecure'));
        expect(tokens.seen.length).toBeGreaterThan(0);
        expect(tokens.seen.every((r) => r.authorization === 'Basic dGVzdGVyOnMzY3JldC1wYXNz')).toBe(true);
        // onSecret got every token, and those are what the registry received.
        expect(secrets.length).toBeGreaterThan(0);
        const bearers = s.front.seen.filter((r) => r.authorization).map((r) => r.authorization);
        expect(bearers.length).toBeGreaterThan(2);
        for (const b of bearers) expect(secrets.map((t) => `Bearer ${t}`)).toContain(b);
        loose.close();
      },
    );
  });

  it('verifies the TLS certificate of the realm even when insecure: insecure is for the registry host only', async () => {
    const realm = await startOrigin({ tls: true, handle: (req, res) => forward(tokens.origin, req, res) });
    try {
      await withRealm(
        () => `${realm.origin}/token`,
        async (s) => {
          const c = client(s.host, 'cred/token', { insecure: true });
          await expect(c.ping()).rejects.toThrow(
            /^cannot verify the TLS certificate of 127\.0\.0\.1:\d+ \(\w+\), where registry 127\.0\.0\.1:\d+ sent us: insecure: true applies to the registry's own host only$/,
          );
          expect(realm.seen).toEqual([]);
          c.close();
          // Trusted, the same realm works (with the registry still unverified under insecure).
          const trusting = client(s.host, 'cred/token', { insecure: true, ca: [realm.cert!] });
          await trusting.ping();
          expect(realm.seen.length).toBe(1);
          expect(realm.seen[0]!.authorization).toMatch(/^Basic /);
          trusting.close();
        },
      );
    } finally {
      await realm.stop();
    }
  });

  it('refuses a realm that redirects from https to http, sending the credentials nowhere over HTTP', async () => {
    const realm = await startOrigin({
      tls: true,
      handle: (req, res) => {
        req.resume();
        res.writeHead(307, { location: `${tokens.origin}${req.url}` });
        res.end();
      },
    });
    try {
      await withRealm(
        () => `${realm.origin}/token`,
        async (s) => {
          tokens.seen.length = 0;
          const c = client(s.host, 'cred/token', { insecure: false, ca: [s.front.cert!, realm.cert!] });
          await expect(c.ping()).rejects.toThrow(
            /^registry 127\.0\.0\.1:\d+ sent the token request on to http:\/\/127\.0\.0\.1:\d+\/token over plain HTTP: set insecure: true to get a token there$/,
          );
          expect(realm.seen).toHaveLength(1);
          expect(tokens.seen).toEqual([]);
          c.close();
        },
      );
    } finally {
      await realm.stop();
    }
  });
});

describe('retries and aborts', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({})));
  afterAll(async () => registry?.stop());

  async function fronted(intercept: (req: http.IncomingMessage, res: http.ServerResponse) => boolean, run: (s: SplitRegistry) => Promise<void>) {
    const s = await startSplitRegistry(registry, { intercept });
    try {
      await run(s);
    } finally {
      await s.stop();
    }
  }

  it('waits as long as Retry-After says, not the (10 ms) backoff', async () => {
    let refused = 0;
    await fronted(
      (req, res) => {
        if (req.method !== 'HEAD' || refused > 0) return false;
        refused++;
        req.resume();
        res.writeHead(429, { 'retry-after': '2', 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
        return true;
      },
      async (s) => {
        const c = client(s.host, 'cred/retry-after', { credentials: undefined, retry: { attempts: 3, baseMs: 10, maxMs: 5000 } });
        await c.ping();
        const started = Date.now();
        expect(await c.hasBlob(`sha256:${'0'.repeat(64)}`)).toBe(false);
        expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
        const heads = s.front.seen.filter((r) => r.method === 'HEAD');
        expect(heads).toHaveLength(2);
        expect(heads[1]!.at - heads[0]!.at).toBeGreaterThanOrEqual(1900);
        c.close();
      },
    );
  });

  it('aborts an upload in flight: rejects at once with AbortError, closes the connection and the body, sends nothing more', async () => {
    await fronted(
      () => false,
      async (s) => {
        const c = client(s.host, 'cred/abort', { credentials: undefined, retry: { attempts: 5, baseMs: 10, maxMs: 50 } });
        await c.ping();
        const controller = new AbortController();
        const bodies: Readable[] = [];
        // 10 MB promised, 16 KiB every 20 ms given.
        const trickle = () => {
          let timer: NodeJS.Timeout | undefined;
          const body = new Readable({
            read() {
              timer = setTimeout(() => this.push(Buffer.alloc(16 * 1024, 7)), 20);
            },
            destroy(error, done) {
              clearTimeout(timer);
              done(error);
            },
          });
          bodies.push(body);
          return body;
        };
        const upload = c.uploadBlob({ digest: `sha256:${'1'.repeat(64)}`, size: 10_000_000 }, trickle, { signal: controller.signal });
        upload.catch(() => undefined);
        await waitFor(() => s.front.seen.some((r) => r.method === 'PATCH'));
        await new Promise((r) => setTimeout(r, 200));
        const aborted = Date.now();
        controller.abort();
        const error = await upload.then(
          () => undefined,
          (e: Error) => e,
        );
        expect(Date.now() - aborted).toBeLessThan(500);
        expect(error?.name).toBe('AbortError');
        expect(bodies).toHaveLength(1);
        expect(bodies[0]!.destroyed).toBe(true);
        const patch = s.front.seen.find((r) => r.method === 'PATCH')!;
        await waitFor(() => patch.closedEarly === true);
        const count = s.front.seen.length;
        await new Promise((r) => setTimeout(r, 500));
        expect(s.front.seen).toHaveLength(count);
        expect(s.front.seen.filter((r) => r.at > aborted)).toEqual([]);
        c.close();
      },
    );
  });

  it('aborts during a retry wait: no further try', async () => {
    await fronted(
      (req, res) => {
        if (req.method !== 'HEAD') return false;
        req.resume();
        res.writeHead(503);
        res.end();
        return true;
      },
      async (s) => {
        const c = client(s.host, 'cred/abort-wait', { credentials: undefined, retry: { attempts: 5, baseMs: 3000, maxMs: 3000 } });
        await c.ping();
        const controller = new AbortController();
        const head = c.hasBlob(`sha256:${'2'.repeat(64)}`, { signal: controller.signal });
        head.catch(() => undefined);
        await waitFor(() => s.front.seen.some((r) => r.method === 'HEAD'));
        const aborted = Date.now();
        controller.abort();
        await expect(head).rejects.toMatchObject({ name: 'AbortError' });
        expect(Date.now() - aborted).toBeLessThan(200);
        await new Promise((r) => setTimeout(r, 400));
        expect(s.front.seen.filter((r) => r.method === 'HEAD')).toHaveLength(1);
        c.close();
      },
    );
  });
});

async function waitFor(test: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('waited 5 s for a condition');
    await new Promise((r) => setTimeout(r, 10));
  }
}
