// Where the registry (and its token realm) send us, and what goes there: a redirect chain that has left
// the origin a credential belongs to carries no credential for the rest of the chain, even back at that
// origin; plain HTTP (a token realm, its redirects, the Azure AD exchange, a redirect of a read, an upload
// session) only under insecure and only on the registry's own host, any port. The real Distribution
// registry behind the fronts of support/registry.ts; `localhost` stands for another host than the
// registry's 127.0.0.1 (the same machine, another host name).
import { randomBytes } from 'node:crypto';
import type * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  forward,
  startOrigin,
  startRecordedTokenRegistry,
  startRegistry,
  startSplitRegistry,
  type SeenRequest,
  type SplitRegistry,
  type SplitRegistryOptions,
  type TestOrigin,
  type TestRegistry,
} from '../support/registry.js';
import { sha256Digest } from '../../src/hash.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const fastRetry = { attempts: 3, baseMs: 10, maxMs: 100 };
const BASIC = `Basic ${Buffer.from('tester:s3cret-pass').toString('base64')}`;

function client(host: string, repository: string, more: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ registry: host, repository, insecure: true, credentials: { username: 'tester', password: 's3cret-pass' }, logger: quiet, retry: fastRetry, ...more });
}

const withAuth = (seen: SeenRequest[]) => seen.filter((r) => r.authorization !== undefined);

/** host:port → the same port under the host name `localhost` (another host than 127.0.0.1). */
const elsewhere = (origin: TestOrigin): string => `http://localhost:${origin.host.split(':')[1]}`;

/** 307 to wherever `to` says. */
function redirect(res: http.ServerResponse, req: http.IncomingMessage, location: string): void {
  req.resume();
  res.writeHead(307, { location });
  res.end();
}

async function split(registry: TestRegistry, opts: SplitRegistryOptions, run: (s: SplitRegistry) => Promise<void>): Promise<void> {
  const s = await startSplitRegistry(registry, opts);
  try {
    await run(s);
  } finally {
    await s.stop();
  }
}

describe('a redirect chain that leaves the registry origin', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ auth: 'htpasswd' })));
  afterAll(async () => registry?.stop());

  it('sends no credentials on a hop back to the registry (registry → B → registry, another blob)', async () => {
    const wanted = randomBytes(10_000);
    const other = randomBytes(10_000);
    const seed = client(registry.host, 'redir/back');
    await seed.uploadBlobBytes(wanted);
    await seed.uploadBlobBytes(other);
    seed.close();
    const [wantedDigest, otherDigest] = [sha256Digest(wanted), sha256Digest(other)];
    let front = '';
    // B sends the read back to the registry, for another blob than was asked for.
    const b = await startOrigin({ handle: (req, res) => redirect(res, req, `${front}/v2/redir/back/blobs/${otherDigest}`) });
    try {
      await split(
        registry,
        { intercept: (req, res) => (req.method === 'GET' && req.url === `/v2/redir/back/blobs/${wantedDigest}` ? (redirect(res, req, `${b.origin}/elsewhere`), true) : false) },
        async (s) => {
          front = s.front.origin;
          const c = client(s.host, 'redir/back');
          await expect(c.getBlob(wantedDigest)).rejects.toThrow();
          expect(b.seen.map((r) => r.method)).toEqual(['GET']);
          expect(withAuth(b.seen)).toEqual([]);
          const asked = s.front.seen.filter((r) => r.url.endsWith(wantedDigest));
          expect(asked).toHaveLength(1);
          expect(asked[0]!.authorization).toBe(BASIC);
          const back = s.front.seen.filter((r) => r.url.endsWith(otherDigest));
          expect(back).toHaveLength(1);
          expect(back[0]!.authorization).toBeUndefined();
          c.close();
        },
      );
    } finally {
      await b.stop();
    }
  });

  it('keeps the credentials on a chain that stays on the registry origin', async () => {
    const bytes = randomBytes(10_000);
    const seed = client(registry.host, 'redir/stay');
    await seed.uploadBlobBytes(bytes);
    seed.close();
    await split(registry, { blobReads: ['front'] }, async (s) => {
      const c = client(s.host, 'redir/stay');
      expect(sha256Digest(await c.getBlob(sha256Digest(bytes)))).toBe(sha256Digest(bytes));
      const hop = s.front.seen.filter((r) => r.url.includes('nia-hop=0'));
      expect(hop).toHaveLength(1);
      expect(hop[0]!.authorization).toBe(BASIC);
      c.close();
    });
  });
});

describe('the token realm', () => {
  let registry: TestRegistry;
  /** Records what reaches the token server (plain HTTP, on 127.0.0.1). */
  let tokens: TestOrigin;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ registry, tokens, stop } = await startRecordedTokenRegistry()));
  afterAll(async () => stop?.());

  it('sends no credentials on a redirect back to the realm (realm → other origin → realm)', async () => {
    let other = '';
    const realm = await startOrigin({
      handle: (req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.searchParams.has('back')) return forward(tokens.origin, req, res);
        url.searchParams.set('back', '1');
        redirect(res, req, `${other}/bounce?to=${encodeURIComponent(url.pathname + url.search)}`);
      },
    });
    const bounce = await startOrigin({ handle: (req, res) => redirect(res, req, `${realm.origin}${new URL(req.url ?? '/', 'http://x').searchParams.get('to')}`) });
    other = bounce.origin;
    tokens.seen.length = 0;
    try {
      await split(registry, { realm: () => `${realm.origin}/token` }, async (s) => {
        const c = client(s.host, 'redir/token');
        await expect(c.ping()).rejects.toThrow(/rejected the credentials of tester/);
        expect(realm.seen).toHaveLength(2);
        expect(realm.seen[0]!.authorization).toBe(BASIC);
        expect(realm.seen[1]!.url).toContain('back=1');
        expect(realm.seen[1]!.authorization).toBeUndefined();
        expect(withAuth(bounce.seen)).toEqual([]);
        expect(withAuth(tokens.seen)).toEqual([]);
        c.close();
      });
    } finally {
      await bounce.stop();
      await realm.stop();
    }
  });

  it('refuses a plain-HTTP realm on another host than the registry, even when insecure', async () => {
    tokens.seen.length = 0;
    await split(registry, { realm: () => `${elsewhere(tokens)}/token` }, async (s) => {
      const c = client(s.host, 'redir/token', { insecure: true });
      await expect(c.ping()).rejects.toThrow(
        /^registry 127\.0\.0\.1:\d+ names the token realm http:\/\/localhost:\d+\/token over plain HTTP: refused, credentials go over plain HTTP only to the registry's own host \(127\.0\.0\.1\), with insecure: true, or to a host insecure-registries names$/,
      );
      expect(tokens.seen).toEqual([]);
      c.close();
    });
  });

  it('takes a plain-HTTP realm on another host that insecure-registries names (a token server beside the registry)', async () => {
    tokens.seen.length = 0;
    await split(registry, { realm: () => `${elsewhere(tokens)}/token` }, async (s) => {
      const realmHost = new URL(elsewhere(tokens)).host;
      const c = client(s.host, 'redir/token', { insecure: true, plainHosts: [realmHost] });
      await c.ping();
      expect(await c.hasBlob(`sha256:${'0'.repeat(64)}`)).toBe(false); // a token was fetched there and used
      expect(tokens.seen.length).toBeGreaterThan(0);
      c.close();
    });
  });

  it('refuses a realm that redirects to plain HTTP on another host, even when insecure', async () => {
    tokens.seen.length = 0;
    const realm = await startOrigin({ tls: true, handle: (req, res) => redirect(res, req, `${elsewhere(tokens)}${req.url}`) });
    try {
      await split(registry, { realm: () => `${realm.origin}/token` }, async (s) => {
        const c = client(s.host, 'redir/token', { insecure: true, ca: [realm.cert!] });
        await expect(c.ping()).rejects.toThrow(
          /^registry 127\.0\.0\.1:\d+ sent the token request on to http:\/\/localhost:\d+\/token over plain HTTP: refused, credentials go over plain HTTP only to the registry's own host \(127\.0\.0\.1\), with insecure: true, or to a host insecure-registries names$/,
        );
        expect(realm.seen).toHaveLength(1);
        expect(tokens.seen).toEqual([]);
        c.close();
      });
    } finally {
      await realm.stop();
    }
  });

  it('refuses the Azure AD exchange at a plain-HTTP realm on another host, even when insecure', async () => {
    const jwt = (claims: object) => `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2lnbmF0dXJl`;
    const aadToken = jwt({ iss: 'https://sts.windows.net/72f988bf-0000-0000-0000-000000000000/', tid: '72f988bf-0000-0000-0000-000000000000' });
    const acr = await startOrigin({
      handle: (req, res) => {
        req.resume();
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'no' }] }));
      },
    });
    try {
      await split(registry, { realm: () => `${elsewhere(acr)}/oauth2/token` }, async (s) => {
        const credentials = { username: '00000000-0000-0000-0000-000000000000', password: '', identityToken: aadToken };
        const c = client(s.host, 'redir/acr', { insecure: true, credentials });
        await expect(c.ping()).rejects.toThrow(/^registry 127\.0\.0\.1:\d+ names the token realm http:\/\/localhost:\d+\/oauth2\/token over plain HTTP: refused/);
        expect(acr.seen).toEqual([]);
        c.close();
      });
    } finally {
      await acr.stop();
    }
  });
});

describe('plain-HTTP places a TLS registry sends us to', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ tls: true, auth: 'htpasswd' })));
  afterAll(async () => registry?.stop());

  it('refuses an upload session on plain HTTP unless insecure: no byte goes there', async () => {
    await split(registry, { uploadsOnA: true }, async (s) => {
      const c = client(s.host, 'redir/upload', { insecure: false, ca: [s.front.cert!] });
      const bytes = randomBytes(20_000);
      await expect(c.uploadBlobBytes(bytes)).rejects.toThrow(
        new RegExp(
          `^registry 127\\.0\\.0\\.1:\\d+ sent the upload of ${sha256Digest(bytes)} to plain-HTTP http://127\\.0\\.0\\.1:\\d+: refused, bytes and credentials go over plain HTTP only to the registry's own host \\(127\\.0\\.0\\.1\\), with insecure: true, or to a host insecure-registries names$`,
        ),
      );
      expect(s.a.seen).toEqual([]);
      c.close();
    });
  });

  it('refuses an upload session on plain HTTP on another host, even when insecure', async () => {
    let to = '';
    await split(
      registry,
      {
        intercept: (req, res) => {
          if (req.method !== 'POST' || !req.url?.startsWith('/v2/redir/upload-elsewhere/blobs/uploads/')) return false;
          req.resume();
          res.writeHead(202, { location: `${to}/v2/redir/upload-elsewhere/blobs/uploads/session`, 'content-length': '0' });
          res.end();
          return true;
        },
      },
      async (s) => {
        to = elsewhere(s.a);
        const c = client(s.host, 'redir/upload-elsewhere', { insecure: true });
        await expect(c.uploadBlobBytes(randomBytes(20_000))).rejects.toThrow(/^registry 127\.0\.0\.1:\d+ sent the upload of sha256:[0-9a-f]{64} to plain-HTTP http:\/\/localhost:\d+: refused/);
        expect(s.a.seen).toEqual([]);
        c.close();
      },
    );
  });

  it('refuses a read redirected to plain HTTP unless insecure', async () => {
    const bytes = randomBytes(10_000);
    const seed = client(registry.host, 'redir/read');
    await seed.uploadBlobBytes(bytes);
    seed.close();
    await split(registry, { blobReads: ['front-http'] }, async (s) => {
      const c = client(s.host, 'redir/read', { insecure: false, ca: [s.front.cert!] });
      await expect(c.getBlob(sha256Digest(bytes))).rejects.toThrow(
        /^registry 127\.0\.0\.1:\d+ redirected GET \/v2\/redir\/read\/blobs\/sha256:[0-9a-f]{64} to plain-HTTP http:\/\/127\.0\.0\.1:\d+: refused, bytes and credentials go over plain HTTP only to the registry's own host \(127\.0\.0\.1\), with insecure: true, or to a host insecure-registries names$/,
      );
      expect(s.front.seen.filter((r) => r.scheme === 'http')).toEqual([]);
      c.close();
    });
  });

  it('refuses a read redirected to plain HTTP on another host, even when insecure', async () => {
    const bytes = randomBytes(10_000);
    const seed = client(registry.host, 'redir/read-elsewhere');
    await seed.uploadBlobBytes(bytes);
    seed.close();
    let to = '';
    await split(
      registry,
      { intercept: (req, res) => (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') ? (redirect(res, req, `${to}${req.url}`), true) : false) },
      async (s) => {
        to = elsewhere(s.b);
        const c = client(s.host, 'redir/read-elsewhere', { insecure: true });
        await expect(c.getBlob(sha256Digest(bytes))).rejects.toThrow(/^registry 127\.0\.0\.1:\d+ redirected GET \/v2\/redir\/read-elsewhere\/blobs\/sha256:[0-9a-f]{64} to plain-HTTP http:\/\/localhost:\d+: refused/);
        expect(s.b.seen).toEqual([]);
        c.close();
      },
    );
  });
});
