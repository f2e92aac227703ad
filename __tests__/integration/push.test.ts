// The push engine against the real Distribution registry: anonymous over HTTP, htpasswd basic auth over
// TLS, token auth; retries through injected faults; errors as one line; nothing tagged on failure.
// skopeo, an independent client, checks every digest we report and pulls every blob back.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { skopeo, startFaultProxy, startRegistry, type FaultRule, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage } from '../../src/registry/push.js';
import type { Credentials } from '../../src/registry/types.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const fastRetry = { attempts: 4, baseMs: 20, maxMs: 200 };
let work: string;
let archive: MadeArchive;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-int-'));
  archive = await makeImageArchive({
    dir: work,
    name: 'img',
    compression: 'gzip',
    layers: [
      { size: 300_000, seed: 'one', compressible: true },
      { size: 400_000, seed: 'two', compressible: false },
      { size: 1000, seed: 'three', compressible: true },
    ],
  });
});

function client(host: string, repository: string, credentials?: Credentials, insecure = true): RegistryClient {
  return new RegistryClient({ registry: host, repository, insecure, credentials, logger: quiet, retry: fastRetry });
}

async function push(c: RegistryClient, tags = ['latest']) {
  return pushImage({ source: await detectSource(archive.path), client: c, tags, logger: quiet, tmpDir: work });
}

async function checkWithSkopeo(ref: string, digest: string, creds?: string): Promise<void> {
  const inspected = JSON.parse(await skopeo(['inspect', `docker://${ref}`], { creds })) as { Digest: string };
  expect(inspected.Digest).toBe(digest);
  const config = JSON.parse(await skopeo(['inspect', '--config', '--raw', `docker://${ref}`], { creds }));
  expect(config.rootfs.diff_ids).toEqual(archive.diffIDs);
  const dir = await mkdtemp(join(work, 'pull-'));
  await skopeo(['copy', `docker://${ref}`, `oci:${dir}:x`], { creds });
  const blobs = await readdir(join(dir, 'blobs', 'sha256'));
  const manifest = JSON.parse(await skopeo(['inspect', '--raw', `docker://${ref}`], { creds }));
  for (const d of [manifest.config, ...manifest.layers]) expect(blobs).toContain(d.digest.slice(7));
  expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
}

describe('anonymous, plain HTTP', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({})));
  afterAll(async () => registry?.stop());

  it('pushes, then skips everything the second time, and computes the same digest without a registry', async () => {
    const first = await push(client(registry.host, 'int/anon'), ['latest', 'v1']);
    expect(first.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(first.config.digest).toBe(archive.configDigest);
    await checkWithSkopeo(`${registry.host}/int/anon:latest`, first.digest);
    await checkWithSkopeo(`${registry.host}/int/anon:v1`, first.digest);

    const second = await push(client(registry.host, 'int/anon'));
    expect(second.digest).toBe(first.digest);
    expect(second.layers.map((l) => l.action)).toEqual(['reused', 'reused', 'reused']);
    expect(second.bytesUploaded).toBe(0);

    // Another repository of the same registry: the blobs are checked, found missing, uploaded.
    const other = await push(client(registry.host, 'int/other'));
    expect(other.digest).toBe(first.digest);

    const dry = await pushImage({ source: await detectSource(archive.path), tags: ['latest'], logger: quiet, tmpDir: work });
    expect(dry.digest).toBe(first.digest);
    expect(dry.pushed).toBe(false);
  });

  it('reuses the layers of an image under a reuse tag when pushing a new tag, unread and uncompressed', async () => {
    const layers = (last: string) => [
      { size: 300_000, seed: 'base', compressible: true },
      { size: 200_000, seed: 'lib', compressible: false },
      { size: 5_000, seed: last, compressible: true },
    ];
    const a = await makeImageArchive({ dir: work, name: 'reuse-a', compression: 'none', layers: layers('app-1') });
    const b = await makeImageArchive({ dir: work, name: 'reuse-b', compression: 'none', layers: layers('app-2') });
    const pushTo = async (path: string, tags: string[], reuseTags?: string[]) =>
      pushImage({ source: await detectSource(path), client: client(registry.host, 'int/reuse'), tags, reuseTags, logger: quiet, tmpDir: work });

    const first = await pushTo(a.path, ['latest']);
    // A per-commit tag that does not exist yet: the two unchanged layers come from latest's manifest.
    const second = await pushTo(b.path, ['sha-2'], ['latest', 'missing']);
    expect(second.layers.map((l) => l.action)).toEqual(['reused', 'reused', 'uploaded']);
    expect(second.layers.slice(0, 2).map((l) => l.digest)).toEqual(first.layers.slice(0, 2).map((l) => l.digest));
    expect(second.bytesUploaded).toBe(second.layers[2]!.size + second.config.size);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/int/reuse:sha-2`])) as { Digest: string; Layers: string[] };
    expect(inspected.Digest).toBe(second.digest);
    expect(inspected.Layers).toEqual(second.layers.map((l) => l.digest));

    // Without reuse tags the same layers are compressed again, found by HEAD, and not uploaded.
    const third = await pushTo(b.path, ['sha-3'], []);
    expect(third.layers.map((l) => l.action)).toEqual(['present', 'present', 'present']);
    expect(third.digest).toBe(second.digest);
    expect(third.bytesUploaded).toBe(0);
  });

  it('refuses plain HTTP unless insecure', async () => {
    await expect(client(registry.host, 'int/secure', undefined, false).ping()).rejects.toThrow(/does not speak HTTPS.*insecure: true/);
  });
});

describe('htpasswd basic auth over TLS', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ tls: true, auth: 'htpasswd' })));
  afterAll(async () => registry?.stop());

  it('pushes with the right password', async () => {
    const [username, password] = Object.entries(registry.users)[0]!;
    const result = await push(client(registry.host, 'int/basic', { username, password }));
    await checkWithSkopeo(`${registry.host}/int/basic:latest`, result.digest, `${username}:${password}`);
  });

  it('fails in one line on a wrong password, without retrying', async () => {
    const c = client(registry.host, 'int/basic', { username: 'tester', password: 'wrong' });
    await expect(c.ping()).rejects.toThrow(/^registry 127\.0\.0\.1:\d+ rejected the credentials of tester \(401\)$/);
  });

  it('asks for credentials when none are given', async () => {
    await expect(client(registry.host, 'int/basic').ping()).rejects.toThrow(/requires a user name and password/);
  });

  it('does not trust a self-signed certificate unless insecure', async () => {
    await expect(client(registry.host, 'int/basic', { username: 'tester', password: 'x' }, false).ping()).rejects.toThrow(
      /cannot verify the TLS certificate of 127\.0\.0\.1:\d+ .*insecure: true/,
    );
  });
});

describe('token auth', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({ auth: 'token' })));
  afterAll(async () => registry?.stop());

  it('gets a token for the repository scope and pushes', async () => {
    const [username, password] = Object.entries(registry.users)[0]!;
    const result = await push(client(registry.host, 'int/token', { username, password }));
    await checkWithSkopeo(`${registry.host}/int/token:latest`, result.digest, `${username}:${password}`);
  });

  it('fails in one line when the token server refuses the password', async () => {
    const c = client(registry.host, 'int/token', { username: 'tester', password: 'wrong' });
    await expect(c.ping()).rejects.toThrow(/rejected the credentials of tester: .*401.*UNAUTHORIZED: invalid username or password/);
  });
});

describe('faults', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({})));
  afterAll(async () => registry?.stop());

  async function throughProxy(rules: FaultRule[], repo: string) {
    const proxy = await startFaultProxy(registry, rules);
    try {
      const result = await push(client(proxy.host, repo)).then(
        (r) => ({ ok: true as const, r }),
        (e: Error) => ({ ok: false as const, e }),
      );
      return { result, log: proxy.log };
    } finally {
      await proxy.stop();
    }
  }

  it('retries 500, 429 with Retry-After, and dropped connections, then succeeds', async () => {
    const { result, log } = await throughProxy(
      [
        { method: 'HEAD', path: /\/blobs\//, status: 500, times: 2 },
        { method: 'POST', path: /uploads/, status: 429, times: 1, retryAfter: '0' },
        { method: 'PUT', path: /uploads/, status: 0, drop: true, times: 1 },
        { method: 'PUT', path: /manifests/, status: 503, times: 1 },
      ],
      'int/flaky',
    );
    expect(result.ok, result.ok ? '' : result.e.message).toBe(true);
    if (!result.ok) return;
    expect(log.filter((l) => / → (500|429|503|dropped)$/.test(l))).toHaveLength(5);
    await checkWithSkopeo(`${registry.host}/int/flaky:latest`, result.r.digest);
  });

  it('gives up on a registry that keeps answering 500, in one line, with nothing tagged', async () => {
    const { result } = await throughProxy([{ method: 'PUT', path: /uploads/, status: 500, times: 1000 }], 'int/broken');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.e.message).not.toContain('\n');
    expect(result.e.message).toMatch(/^registry 127\.0\.0\.1:\d+ answered 500 Internal Server Error to PUT blob sha256:[0-9a-f]{64}: UNKNOWN: injected fault 500 \(after 4 tries\)$/);
    await expect(skopeo(['inspect', `docker://${registry.host}/int/broken:latest`])).rejects.toThrow();
  });

  it('pushes without the layer plan when the tag it would reuse from cannot be read', async () => {
    const first = await push(client(registry.host, 'int/unreadable'));
    // The old image's config cannot be fetched: its layers are compressed and found by HEAD instead.
    const { result, log } = await throughProxy([{ method: 'GET', path: /\/blobs\//, status: 500, times: 1000 }], 'int/unreadable');
    expect(result.ok, result.ok ? '' : result.e.message).toBe(true);
    if (!result.ok) return;
    expect(log.some((l) => /^GET .*\/blobs\/.* → 500$/.test(l))).toBe(true);
    expect(result.r.layers.map((l) => l.action)).toEqual(['present', 'present', 'present']);
    expect(result.r.digest).toBe(first.digest);
    expect(result.r.bytesUploaded).toBe(0);
  });

  it('streams large blobs in one PATCH, as ghcr.io needs: no request body over 4 MiB in a PUT or a ranged PATCH', async () => {
    const big = await makeImageArchive({
      dir: work,
      name: 'big',
      compression: 'none',
      layers: [
        { size: 6_000_000, seed: 'big', compressible: false },
        { size: 2_000, seed: 'small', compressible: true },
      ],
    });
    const over4MiB = (req: { headers: Record<string, string | string[] | undefined> }) => Number(req.headers['content-length'] ?? 0) > 4 * 2 ** 20;
    const proxy = await startFaultProxy(registry, [
      { method: 'PUT', path: /uploads/, when: over4MiB, status: 416, times: 1000 },
      { method: 'PATCH', path: /uploads/, when: (req) => over4MiB(req) && req.headers['content-range'] !== undefined, status: 416, times: 1000 },
    ]);
    try {
      const result = await pushImage({ source: await detectSource(big.path), client: client(proxy.host, 'int/big'), tags: ['latest'], logger: quiet, tmpDir: work });
      expect(result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded']);
      expect(result.layers[0]!.size).toBeGreaterThan(4 * 2 ** 20);
      expect(proxy.log.filter((l) => l.endsWith('→ 416'))).toEqual([]);
      // Every blob (two layers, the config) went POST, one PATCH, an empty PUT.
      expect(proxy.log.filter((l) => l.startsWith('PATCH '))).toHaveLength(3);
      const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/int/big:latest`])) as { Digest: string; Layers: string[] };
      expect(inspected.Digest).toBe(result.digest);
      const dir = await mkdtemp(join(work, 'pull-big-'));
      await skopeo(['copy', `docker://${registry.host}/int/big:latest`, `oci:${dir}:x`]);
      expect(await readdir(join(dir, 'blobs', 'sha256'))).toContain(result.layers[0]!.digest.slice(7));
    } finally {
      await proxy.stop();
    }
  });

  it('sends the blob as one ranged chunk to a registry that asks for chunks', async () => {
    const { result, log } = await throughProxy(
      [
        { method: 'POST', path: /uploads/, status: 202, forward: true, addHeaders: { 'oci-chunk-min-length': '1024' }, times: 1000 },
        { method: 'PATCH', path: /uploads/, when: (req) => req.headers['content-range'] === undefined, status: 400, times: 1000 },
      ],
      'int/chunks',
    );
    expect(result.ok, result.ok ? '' : result.e.message).toBe(true);
    if (!result.ok) return;
    expect(log.filter((l) => /^PATCH .* → 202$/.test(l))).toHaveLength(4);
    await checkWithSkopeo(`${registry.host}/int/chunks:latest`, result.r.digest);
  });

  it('takes 201 for a PATCH, as ECR answers, and pushes', async () => {
    const { result, log } = await throughProxy([{ method: 'PATCH', path: /uploads/, status: 201, forward: true, times: 1000 }], 'int/ecr-like');
    expect(result.ok, result.ok ? '' : result.e.message).toBe(true);
    if (!result.ok) return;
    expect(log.filter((l) => /^PATCH .* → 201$/.test(l))).toHaveLength(4); // three layers and the config
    await checkWithSkopeo(`${registry.host}/int/ecr-like:latest`, result.r.digest);
  });
});
