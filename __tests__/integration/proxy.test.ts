// The runner's proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) for the requests the action makes itself: a push
// to a TLS registry with basic auth goes through a CONNECT tunnel in which the proxy reads neither the
// password nor a header; a plain-HTTP registry through the proxy in absolute form; NO_PROXY as curl reads
// it (a bare domain covers its subdomains) and loopback never proxied; a proxy that will not tunnel fails
// in one line, or sends an insecure registry to plain HTTP; a binary cache's upstream and cache-purge's
// REST API go through it too (and a listing too large to read is said so, not taken for an outage),
// while the loopback front Nix reads the cache through is put in Nix's
// NO_PROXY. The proxy is support/proxy.ts (servers named under nia.test, which only it resolves); the
// registry and the binary cache are Debian's docker-registry and nginx.
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { startBinaryCache } from '../support/binary-cache.js';
import { startCacheServer } from '../support/cache-server.js';
import { generateCacheKey } from '../support/nix.js';
import { PROXIED_DOMAIN, startProxy, viaProxy, type ProxyOptions, type TestProxy } from '../support/proxy.js';
import { skopeo, startOrigin, startRegistry, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { openBinaryCache } from '../../src/nix/remote-cache.js';
import { purgeSuperseded } from '../../src/nix/purge.js';
import { bypassFor, noProxyList, proxyEnv, proxyProblem, proxySecrets, proxyWarning } from '../../src/proxy.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { pushImage } from '../../src/registry/push.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const saved = { ...process.env };
const fast = { attempts: 2, baseMs: 10, maxMs: 100, budgetMs: 2_000 };
let proxy: TestProxy;
let archive: MadeArchive;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-proxy-'));
  archive = await makeImageArchive({ dir: work, name: 'proxied', compression: 'none', layers: [{ size: 200_000, seed: 'p1', compressible: true }, { size: 100_000, seed: 'p2', compressible: false }] });
});
afterAll(() => {
  process.env = saved;
});
afterEach(async () => {
  process.env = { ...saved };
  await proxy?.stop();
});

/** The runner's proxy variables, set as the runner sets them before the action starts. */
async function behindProxy(vars: Record<string, string> = {}, opts: ProxyOptions = {}): Promise<TestProxy> {
  proxy = await startProxy(opts);
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) delete process.env[name];
  Object.assign(process.env, { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url }, vars);
  return proxy;
}

function client(host: string, repository: string, opts: Partial<RegistryClientOptions> = {}): RegistryClient {
  return new RegistryClient({ registry: host, repository, logger: quiet, retry: fast, ...opts });
}

async function push(host: string, repository: string, opts: Partial<RegistryClientOptions> = {}): Promise<string> {
  const c = client(host, repository, opts);
  try {
    await c.ping();
    return (await pushImage({ source: await detectSource(archive.path), client: c, tags: ['latest'], logger: quiet, tmpDir: work })).digest;
  } finally {
    c.close();
  }
}

/** The digest the registry holds under the tag, read by skopeo directly. */
async function held(registry: TestRegistry, repository: string, opts: { keepProxy?: boolean } = {}): Promise<string> {
  const env = { ...process.env };
  // skopeo goes to the registry directly (loopback is never proxied); keepProxy: a realm only the proxy resolves.
  if (!opts.keepProxy) process.env = { ...saved };
  try {
    const authenticated = registry.scheme === 'https' || registry.realm !== undefined;
    const tls = authenticated ? ['--tls-verify=false', '--creds', 'tester:s3cret-pass'] : ['--tls-verify=false'];
    return (JSON.parse(await skopeo(['inspect', ...tls, `docker://${registry.host}/${repository}:latest`])) as { Digest: string }).Digest;
  } finally {
    process.env = env;
  }
}

describe('the runner proxy', () => {
  it('pushes to a TLS registry with basic auth through a CONNECT tunnel: the proxy sees the host, never the password', async () => {
    const registry = await startRegistry({ tls: true, auth: 'htpasswd' });
    try {
      await behindProxy();
      const named = viaProxy(registry.host);
      const digest = await push(named, 'proxied/tls', { credentials: { username: 'tester', password: 's3cret-pass' }, ca: [readFileSync(registry.caFile!, 'utf8')] });
      expect(proxy.seen.length).toBeGreaterThan(0);
      expect(new Set(proxy.seen)).toEqual(new Set([`CONNECT ${named}`]));
      const carried = proxy.carried();
      expect(carried.length).toBeGreaterThan(100_000); // the layers went through it...
      expect(carried).not.toContain('s3cret-pass'); // ...encrypted: no password, no header, no path in clear
      expect(carried).not.toContain(Buffer.from('tester:s3cret-pass').toString('base64'));
      expect(carried).not.toContain('/v2/');
      expect(await held(registry, 'proxied/tls')).toBe(digest);
    } finally {
      await registry.stop();
    }
  });

  it('sends a plain-HTTP registry its requests through the proxy in absolute form', async () => {
    const registry = await startRegistry({});
    try {
      await behindProxy();
      const named = viaProxy(registry.host);
      const digest = await push(named, 'proxied/plain', { insecure: true });
      expect(proxy.seen).toContain(`GET http://${named}/v2/`);
      expect(proxy.seen).toContain(`PUT http://${named}/v2/proxied/plain/manifests/latest`);
      // insecure: HTTPS is tried first (a tunnel to the same host), then plain HTTP.
      expect(proxy.seen.every((s) => s === `CONNECT ${named}` || s.includes(` http://${named}/v2/`)), proxy.seen.join('\n')).toBe(true);
      expect(await held(registry, 'proxied/plain')).toBe(digest);
    } finally {
      await registry.stop();
    }
  });

  it('warns once when a plain-HTTP registry\'s credentials cross the proxy unencrypted', async () => {
    // The realm is on the registry's own host name: a plain-HTTP realm elsewhere is refused outright.
    const registry = await startRegistry({ auth: 'token', realmHost: `registry.${PROXIED_DOMAIN}` });
    try {
      await behindProxy();
      const named = viaProxy(registry.host);
      const realm = new URL(registry.realm!).host;
      const warnings: string[] = [];
      const logger = { ...quiet, warning: (m: string) => void warnings.push(m) };
      const digest = await push(named, 'proxied/clear', { insecure: true, credentials: { username: 'tester', password: 's3cret-pass' }, logger });
      expect(proxy.carried()).toContain('Bearer '); // what the warning is about
      // The token request is the first to carry credentials through the proxy.
      expect(warnings).toEqual([
        `${realm} is plain HTTP and reached through the runner's proxy (HTTP_PROXY): its credentials cross the proxy unencrypted; add the host to NO_PROXY, or serve it over HTTPS`,
      ]);
      expect(await held(registry, 'proxied/clear', { keepProxy: true })).toBe(digest);
    } finally {
      await registry.stop();
    }
  });

  it('reaches loopback directly, and a host NO_PROXY covers (a bare domain covers its subdomains, as in curl)', async () => {
    const registry = await startRegistry({});
    try {
      await behindProxy({ NO_PROXY: 'example.com,nia.test' });
      expect(await held(registry, 'proxied/direct').catch(() => 'none')).toBe('none');
      const digest = await push(registry.host, 'proxied/direct', { insecure: true });
      expect(await held(registry, 'proxied/direct')).toBe(digest);
      // registry.nia.test is covered by nia.test: it is looked up directly, and only the proxy knows it.
      await expect(client(viaProxy(registry.host), 'proxied/direct', { insecure: true }).ping()).rejects.toThrow(/cannot reach registry registry\.nia\.test:\d+: getaddrinfo ENOTFOUND/);
      expect(proxy.seen).toEqual([]);
    } finally {
      await registry.stop();
    }
  });

  it('a proxy that will not tunnel fails in one line (not retried); an insecure registry is then tried over plain HTTP', async () => {
    const registry = await startRegistry({});
    try {
      await behindProxy({}, { refuseConnect: 407 });
      const named = viaProxy(registry.host);
      await expect(client(named, 'proxied/refused').ping()).rejects.toThrow(
        `the proxy (HTTPS_PROXY) did not open a tunnel to ${named}: 407 Proxy Authentication Required (the proxy wants credentials: put them in its URL, http://user:password@host:port)`,
      );
      expect(proxy.seen).toEqual([`CONNECT ${named}`]);
      const digest = await push(named, 'proxied/refused', { insecure: true });
      expect(await held(registry, 'proxied/refused')).toBe(digest);
    } finally {
      await registry.stop();
    }
  });

  it("reads a binary cache's upstream through the proxy, and keeps the loopback front Nix reads off it", async () => {
    const cache = await startBinaryCache();
    try {
      await behindProxy({ NO_PROXY: 'example.com' });
      const { pub } = await generateCacheKey('nia-proxy-1');
      const url = `http://${viaProxy(new URL(cache.url).host, 'cache')}`;
      const opened = await openBinaryCache({ url, trustedKeys: [pub], nix: 'nix', nixVersion: '2.8.0' });
      try {
        const front = /extra-substituters = (\S+)\?/.exec(opened.nixConf)?.[1];
        expect(front).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
        // What Nix is given: the front off the proxy, the user's NO_PROXY kept.
        expect(opened.nixEnv).toEqual({ NO_PROXY: 'example.com,127.0.0.1', no_proxy: 'example.com,127.0.0.1' });
        // A narinfo Nix asks the front for is fetched from upstream through the proxy.
        const before = proxy.seen.length;
        const answer = await fetch(`${front}/${'0'.repeat(32)}.narinfo`);
        expect(answer.status).toBe(404);
        expect(proxy.seen.slice(before)).toEqual([`GET ${url}/${'0'.repeat(32)}.narinfo`]);
        expect(proxy.seen[0]).toBe(`GET ${url}/nix-cache-info`);
      } finally {
        await opened.close();
      }
    } finally {
      await cache.stop();
    }
  });

  it("sends cache-purge's REST API requests, its token included, through the proxy", async () => {
    const server = await startCacheServer();
    try {
      await behindProxy();
      const api = `http://${viaProxy(new URL(server.url).host, 'api')}`;
      Object.assign(process.env, server.env('v2', { ref: 'refs/heads/main' }), { GITHUB_REPOSITORY: 'owner/app', GITHUB_API_URL: api });
      const keyBase = 'nix-store-test-';
      const [oldBase, newBase] = [`${keyBase}${'a'.repeat(16)}`, `${keyBase}${'b'.repeat(16)}`];
      server.entries.push({ id: 9001, key: oldBase, version: 'v', size: 10, committed: true, seq: 9001, file: '', ref: 'refs/heads/main' });
      const result = await purgeSuperseded(oldBase, keyBase, 'gh-token-value', newBase);
      expect(result).toEqual({ deleted: [oldBase], bytes: 10 });
      expect(server.entries.some((e) => e.key === oldBase)).toBe(false);
      expect(proxy.seen).toEqual([
        `GET ${api}/repos/owner/app/actions/caches?key=${oldBase}&ref=refs%2Fheads%2Fmain&per_page=100&page=1`,
        `DELETE ${api}/repos/owner/app/actions/caches?key=${oldBase}&ref=refs%2Fheads%2Fmain`,
      ]);
      expect(proxy.carried()).toContain('gh-token-value'); // plain HTTP here: the proxy read the token
    } finally {
      await server.stop();
    }
  });
});

describe('answers too large to read', () => {
  it('a nix-cache-info over 64 KiB leaves the binary cache out, instead of a verdict on its cut-off text', async () => {
    const origin = await startOrigin({
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/x-nix-cache-info' });
        res.end(`WantMassQuery: 1\n${'Comment: x\n'.repeat(10_000)}StoreDir: /somewhere/else\n`);
      },
    });
    try {
      const { pub } = await generateCacheKey('nia-big-info-1');
      const opened = await openBinaryCache({ url: origin.origin, trustedKeys: [pub], nix: 'nix', nixVersion: '2.8.0' });
      expect(opened.note).toBe('not used: its nix-cache-info is over 64 KiB, which no cache writes');
      expect(opened.nixConf).toBe('');
    } finally {
      await origin.stop();
    }
  });
});

describe('cache-purge against a listing it will not read', () => {

  it('says the list is too large instead of taking a cut-off answer for an unreachable API', async () => {
    const origin = await startOrigin({
      handle: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"total_count":1,"actions_caches":[${'{"key":"x","ref":"y","size_in_bytes":1},'.repeat(500_000)}{}]}`);
      },
    });
    try {
      Object.assign(process.env, { GITHUB_API_URL: origin.origin, GITHUB_REPOSITORY: 'owner/app', GITHUB_REF: 'refs/heads/main' });
      const keyBase = 'nix-store-test-';
      const result = await purgeSuperseded(`${keyBase}${'a'.repeat(16)}`, keyBase, 'gh-token', `${keyBase}${'b'.repeat(16)}`);
      expect(result).toEqual({ deleted: [], bytes: 0, problem: 'the list of caches is over 16 MiB' });
    } finally {
      await origin.stop();
    }
  });
});

describe('the proxy variables', () => {
  it('are read as @actions/http-client reads them (lower case first), NO_PROXY as curl reads it, loopback always direct', () => {
    expect(proxyEnv({ NO_PROXY: 'x' })).toBeUndefined();
    expect(proxyEnv({ https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:2', NO_PROXY: 'Corp.Example, .svc ,*.internal,10.0.0.0/8,10.1.2.3,reg:5000,*' })).toEqual({
      HTTPS_PROXY: 'http://a:1',
      NO_PROXY: 'corp.example,.corp.example,svc,.svc,internal,.internal,10.0.0.0-10.255.255.255,10.1.2.3,reg:5000,*,localhost,.localhost,127.0.0.0-127.255.255.255,::1',
    });
    expect(noProxyList('192.168.4.7/22')).toBe('192.168.4.0-192.168.7.255,localhost,.localhost,127.0.0.0-127.255.255.255,::1');
  });

  it('refuses a proxy URL it cannot use, in one line without its credentials, and masks its password', () => {
    const bad = { HTTPS_PROXY: 'http://user:s3cret@proxy:99999' };
    expect(proxyProblem(bad)).toBe('HTTPS_PROXY is not a proxy URL (expected http://host:port)');
    expect(proxyEnv(bad)).toBeUndefined();
    expect(proxyProblem({ http_proxy: 'socks5://p:1080' })).toBe('http_proxy names a socks5 proxy; only http:// and https:// proxies are supported');
    expect(proxyProblem({ HTTPS_PROXY: 'proxy.corp:3128' })).toBeUndefined(); // scheme-less, as curl takes it
    expect(proxySecrets({ HTTPS_PROXY: 'http://ci:p%40ss@proxy:3128' })).toEqual(['p%40ss', 'p@ss']);
    expect(proxySecrets(bad)).toEqual(['s3cret']);
    expect(proxySecrets({ http_proxy: 'ci:pw@proxy:3128' })).toEqual(['pw']);
    // A raw @ in the password: the userinfo runs to the last @, as the URL parser (and Node) read it.
    expect(proxySecrets({ HTTPS_PROXY: 'http://user:p@ss@proxy:3128' })).toEqual(['p@ss', 'p%40ss']);
    expect(new URL('http://user:p@ss@proxy:3128').host).toBe('proxy:3128');
  });

  it('adds to NO_PROXY only behind a proxy', () => {
    expect(bypassFor('127.0.0.1', {})).toEqual({});
    expect(bypassFor('127.0.0.1', { HTTP_PROXY: 'http://p:3128', no_proxy: 'a,127.0.0.1' })).toEqual({ NO_PROXY: 'a,127.0.0.1', no_proxy: 'a,127.0.0.1' });
    expect(bypassFor('127.0.0.1', { HTTP_PROXY: 'http://p:3128' })).toEqual({ NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' });
  });

  it('warns once when a proxy is set but the Node running the action cannot use it', () => {
    expect(proxyWarning({ HTTPS_PROXY: 'http://p:3128' }, '24.21.0')).toBeUndefined();
    expect(proxyWarning({}, '20.20.2')).toBeUndefined();
    expect(proxyWarning({ HTTPS_PROXY: 'http://p:3128' }, '24.4.1')).toBe(
      "HTTPS_PROXY or HTTP_PROXY is set, but Node 24.4.1 has no built-in proxy support (24.5 and later have it): the action's own requests go direct",
    );
  });
});
