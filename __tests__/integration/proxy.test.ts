// The runner's proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) for the requests the action makes itself: a push
// to a TLS registry with basic auth goes through a CONNECT tunnel in which the proxy reads neither the
// password nor a header; a plain-HTTP registry through the proxy in absolute form; NO_PROXY keeps a host
// off it; a binary cache's upstream and cache-purge's REST API go through it too, while the loopback front
// Nix reads the cache through is put in Nix's NO_PROXY. The proxy is support/proxy.ts; the registry and
// the binary cache are Debian's docker-registry and nginx.
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { startBinaryCache } from '../support/binary-cache.js';
import { startCacheServer } from '../support/cache-server.js';
import { generateCacheKey } from '../support/nix.js';
import { startProxy, type TestProxy } from '../support/proxy.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { openBinaryCache } from '../../src/nix/remote-cache.js';
import { purgeSuperseded } from '../../src/nix/purge.js';
import { bypassFor, proxyEnv, proxyWarning } from '../../src/proxy.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { pushImage } from '../../src/registry/push.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const saved = { ...process.env };
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
async function behindProxy(vars: Record<string, string> = {}): Promise<TestProxy> {
  proxy = await startProxy();
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) delete process.env[name];
  Object.assign(process.env, { HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url }, vars);
  return proxy;
}

async function push(registry: TestRegistry, repository: string, opts: Partial<RegistryClientOptions> = {}): Promise<string> {
  const client = new RegistryClient({ registry: registry.host, repository, logger: quiet, ...opts });
  try {
    await client.ping();
    return (await pushImage({ source: await detectSource(archive.path), client, tags: ['latest'], logger: quiet, tmpDir: work })).digest;
  } finally {
    client.close();
  }
}

/** The digest the registry holds under the tag, read by skopeo without the proxy. */
async function held(registry: TestRegistry, repository: string): Promise<string> {
  const env = { ...process.env };
  process.env = { ...saved };
  try {
    const tls = registry.scheme === 'https' ? ['--tls-verify=false', '--creds', 'tester:s3cret-pass'] : ['--tls-verify=false'];
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
      const digest = await push(registry, 'proxied/tls', { credentials: { username: 'tester', password: 's3cret-pass' }, ca: [readFileSync(registry.caFile!, 'utf8')] });
      expect(proxy.seen.length).toBeGreaterThan(0);
      expect(new Set(proxy.seen)).toEqual(new Set([`CONNECT ${registry.host}`]));
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
      const digest = await push(registry, 'proxied/plain', { insecure: true });
      expect(proxy.seen).toContain(`GET http://${registry.host}/v2/`);
      expect(proxy.seen).toContain(`PUT http://${registry.host}/v2/proxied/plain/manifests/latest`);
      // insecure: HTTPS is tried first (a tunnel to the same host), then plain HTTP.
      expect(proxy.seen.every((s) => s === `CONNECT ${registry.host}` || s.includes(` http://${registry.host}/v2/`)), proxy.seen.join('\n')).toBe(true);
      expect(await held(registry, 'proxied/plain')).toBe(digest);
    } finally {
      await registry.stop();
    }
  });

  it('keeps a host NO_PROXY names off the proxy', async () => {
    const registry = await startRegistry({});
    try {
      await behindProxy({ NO_PROXY: `example.com,${registry.host.split(':')[0]}` });
      const digest = await push(registry, 'proxied/bypassed', { insecure: true });
      expect(proxy.seen).toEqual([]);
      expect(await held(registry, 'proxied/bypassed')).toBe(digest);
    } finally {
      await registry.stop();
    }
  });

  it("reads a binary cache's upstream through the proxy, and keeps the loopback front Nix reads off it", async () => {
    const cache = await startBinaryCache();
    try {
      await behindProxy({ NO_PROXY: 'example.com' });
      const { pub } = await generateCacheKey('nia-proxy-1');
      const opened = await openBinaryCache({ url: cache.url, trustedKeys: [pub], nix: 'nix', nixVersion: '2.8.0' });
      try {
        const front = /extra-substituters = (\S+)\?/.exec(opened.nixConf)?.[1];
        expect(front).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
        // What Nix is given: the front off the proxy, the user's NO_PROXY kept.
        expect(opened.nixEnv).toEqual({ NO_PROXY: 'example.com,127.0.0.1', no_proxy: 'example.com,127.0.0.1' });
        // A narinfo Nix asks the front for is fetched from upstream through the proxy.
        const before = proxy.seen.length;
        const answer = await fetch(`${front}/${'0'.repeat(32)}.narinfo`);
        expect(answer.status).toBe(404);
        expect(proxy.seen.slice(before)).toEqual([`GET ${cache.url}/${'0'.repeat(32)}.narinfo`]);
        expect(proxy.seen[0]).toBe(`GET ${cache.url}/nix-cache-info`);
      } finally {
        await opened.close();
      }
    } finally {
      await cache.stop();
    }
  });

  it("sends cache-purge's REST API requests through the proxy", async () => {
    const server = await startCacheServer();
    try {
      await behindProxy();
      Object.assign(process.env, server.env('v2', { ref: 'refs/heads/main' }), { GITHUB_REPOSITORY: 'owner/app' });
      const keyBase = 'nix-store-test-';
      const result = await purgeSuperseded(`${keyBase}${'a'.repeat(16)}`, keyBase, 'gh-token', `${keyBase}${'b'.repeat(16)}`);
      expect(result).toEqual({ deleted: [], bytes: 0 });
      expect(proxy.seen).toEqual([expect.stringMatching(new RegExp(`^GET ${server.url.replace(/[.]/g, '\\.')}/repos/owner/app/actions/caches\\?key=nix-store-test-a{16}&ref=refs%2Fheads%2Fmain`))]);
    } finally {
      await server.stop();
    }
  });

  it('reads the variables as curl does, and adds to NO_PROXY only behind a proxy', () => {
    expect(proxyEnv({ NO_PROXY: 'x' })).toBeUndefined();
    expect(proxyEnv({ https_proxy: 'http://p:3128', NO_PROXY: 'x' })).toEqual({ https_proxy: 'http://p:3128', NO_PROXY: 'x' });
    expect(bypassFor('127.0.0.1', {})).toEqual({});
    expect(bypassFor('127.0.0.1', { HTTP_PROXY: 'http://p:3128', no_proxy: 'a,127.0.0.1' })).toEqual({ NO_PROXY: 'a,127.0.0.1', no_proxy: 'a,127.0.0.1' });
    expect(bypassFor('127.0.0.1', { HTTP_PROXY: 'http://p:3128' })).toEqual({ NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' });
  });

  it('warns once when a proxy is set but the Node running the action cannot use it', () => {
    expect(proxyWarning({ HTTPS_PROXY: 'http://p:3128' }, '24.21.0')).toBeUndefined();
    expect(proxyWarning({}, '20.20.2')).toBeUndefined();
    expect(proxyWarning({ HTTPS_PROXY: 'http://p:3128' }, '24.4.1')).toBe(
      'HTTPS_PROXY or HTTP_PROXY is set, but Node 24.4.1 has no built-in proxy support (24.5 and later have it): the action\'s own requests go direct',
    );
  });
});
