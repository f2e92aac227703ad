// Cross-repository mounts, the monorepo case: several images in several repositories of one registry
// share their base layers. A push with reuse-tags naming another repository's tag (`mono/base:latest`)
// mounts the layers found there (POST ?mount=&from=) instead of uploading them: the bytes uploaded are
// those of the unshared layers only. A registry that answers the mount with 202 gets a normal upload.
// Against the real Distribution registry, anonymous and with token auth (the token's scope then includes
// pull on the other repository); skopeo checks every image and pulls every blob back.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type LayerSpec, type MadeArchive } from '../support/archives.js';
import { skopeo, startFaultProxy, startRegistry, type FaultRule, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';
import { parseImageName, parseReuseTags } from '../../src/registry/reference.js';
import type { Credentials } from '../../src/registry/types.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const fast = { attempts: 4, baseMs: 50, maxMs: 400, budgetMs: 30_000 };
let work: string;
/** Three images: the same base and lib layers, each its own app layer. */
const images: Record<'base' | 'a' | 'b', MadeArchive> = {} as never;

const shared: LayerSpec[] = [
  { size: 400_000, seed: 'mono-base', compressible: false },
  { size: 250_000, seed: 'mono-lib', compressible: true },
];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-mount-'));
  images.base = await makeImageArchive({ dir: work, name: 'base', compression: 'none', layers: [...shared, { size: 3_000, seed: 'mono-base-conf', compressible: true }] });
  images.a = await makeImageArchive({ dir: work, name: 'a', compression: 'none', layers: [...shared, { size: 120_000, seed: 'mono-app-a', compressible: false }] });
  images.b = await makeImageArchive({ dir: work, name: 'b', compression: 'none', layers: [...shared, { size: 90_000, seed: 'mono-app-b', compressible: false }] });
});

async function pushTo(
  host: string,
  repository: string,
  image: MadeArchive,
  reuse: string[],
  more: { credentials?: Credentials; registry?: TestRegistry } = {},
): Promise<{ result: PushResult; client: RegistryClient }> {
  const client = new RegistryClient({ registry: host, repository, insecure: true, logger: quiet, retry: fast, ...(more.credentials ? { credentials: more.credentials } : {}) });
  const reuseTags = parseReuseTags(reuse, parseImageName(host, repository));
  const result = await pushImage({ source: await detectSource(image.path), client, tags: ['latest'], reuseTags, logger: quiet, tmpDir: work });
  return { result, client };
}

async function checkPulls(registry: TestRegistry, repository: string, digest: string, creds?: string): Promise<void> {
  const ref = `docker://${registry.host}/${repository}:latest`;
  const inspected = JSON.parse(await skopeo(['inspect', ref], { creds })) as { Digest: string };
  expect(inspected.Digest).toBe(digest);
  const dir = await mkdtemp(join(work, 'pull-'));
  await skopeo(['copy', ref, `oci:${dir}:x`], { creds });
  const manifest = JSON.parse(await skopeo(['inspect', '--raw', ref], { creds })) as { config: { digest: string }; layers: { digest: string }[] };
  const blobs = await readdir(join(dir, 'blobs', 'sha256'));
  for (const d of [manifest.config, ...manifest.layers]) expect(blobs).toContain(d.digest.slice(7));
}

const uploadedBytes = (r: PushResult) => r.layers.filter((l) => l.action === 'uploaded').reduce((n, l) => n + l.size, r.config.size);

describe('anonymous registry: a monorepo of three images', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({})));
  afterAll(async () => registry?.stop());

  it('mounts the shared layers from the other repositories: only the unshared layers are uploaded', async () => {
    const base = await pushTo(registry.host, 'mono/base', images.base, []);
    expect(base.result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);

    const proxy = await startFaultProxy(registry, []);
    try {
      const a = await pushTo(proxy.host, 'mono/a', images.a, ['latest', 'mono/base:latest']);
      expect(a.result.layers.map((l) => l.action)).toEqual(['mounted', 'mounted', 'uploaded']);
      expect(a.result.layers.slice(0, 2).map((l) => l.digest)).toEqual(base.result.layers.slice(0, 2).map((l) => l.digest));
      // What went over the wire: the app layer and the config, nothing else.
      expect(a.result.bytesUploaded).toBe(a.result.layers[2]!.size + a.result.config.size);
      expect(proxy.forwarded.PATCH).toBe(a.result.bytesUploaded);
      const mounts = proxy.log.filter((l) => /^POST \/v2\/mono\/a\/blobs\/uploads\/\?mount=sha256%3A[0-9a-f]{64}&from=mono%2Fbase → 201$/.test(l));
      expect(mounts).toHaveLength(2);
      await checkPulls(registry, 'mono/a', a.result.digest);

      // The third image may find the shared layers in either; the app layer of a is of no use to it.
      proxy.log.length = 0;
      proxy.forwarded.PATCH = 0;
      const b = await pushTo(proxy.host, 'mono/b', images.b, ['mono/a:latest', 'mono/base:latest']);
      expect(b.result.layers.map((l) => l.action)).toEqual(['mounted', 'mounted', 'uploaded']);
      expect(b.result.bytesUploaded).toBe(uploadedBytes(b.result));
      expect(b.result.bytesUploaded).toBe(b.result.layers[2]!.size + b.result.config.size);
      expect(proxy.forwarded.PATCH).toBe(b.result.bytesUploaded);
      await checkPulls(registry, 'mono/b', b.result.digest);

      // Pushed again: everything is in mono/b now, nothing is mounted or sent.
      proxy.forwarded.PATCH = 0;
      const again = await pushTo(proxy.host, 'mono/b', images.b, ['mono/a:latest']);
      expect(again.result.layers.map((l) => l.action)).toEqual(['reused', 'reused', 'reused']);
      expect(again.result.digest).toBe(b.result.digest);
      expect(proxy.forwarded.PATCH).toBe(0);
      for (const c of [a.client, b.client, again.client, base.client]) c.close();
    } finally {
      await proxy.stop();
    }
  });

  it('uploads the layers itself when the registry answers the mount with 202 (an upload session instead)', async () => {
    await pushTo(registry.host, 'mono/base', images.base, []);
    // The proxy drops the mount query: the registry opens a plain session, as one that does not mount would.
    const rules: FaultRule[] = [{ method: 'POST', path: /mount=/, rewritePath: (p) => p.replace(/\?.*$/, ''), times: 1_000_000 }];
    const proxy = await startFaultProxy(registry, rules);
    try {
      const c = await pushTo(proxy.host, 'mono/c', images.a, ['mono/base:latest']);
      expect(c.result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
      expect(proxy.log.filter((l) => /^POST .*mount=.* → 202$/.test(l))).toHaveLength(2);
      // The sessions the registry opened for the mounts were given back.
      expect(proxy.log.filter((l) => /^DELETE \/v2\/mono\/c\/blobs\/uploads\/.* → 204$/.test(l))).toHaveLength(2);
      expect(c.result.bytesUploaded).toBe(c.result.layers.reduce((n, l) => n + l.size, c.result.config.size));
      await checkPulls(registry, 'mono/c', c.result.digest);
      c.client.close();
    } finally {
      await proxy.stop();
    }
  });

  it('makes and uploads the layers of a reuse tag whose repository does not exist', async () => {
    const d = await pushTo(registry.host, 'mono/d', images.a, ['mono/nowhere:latest']);
    expect(d.result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    d.client.close();
  });
});

describe('token auth', () => {
  let registry: TestRegistry;
  const creds = { username: 'tester', password: 's3cret-pass' };
  beforeAll(async () => (registry = await startRegistry({ auth: 'token', refuseScope: /^repository:secret\// })));
  afterAll(async () => registry?.stop());

  it('asks for pull on the other repository in the token scope, and mounts', async () => {
    const base = await pushTo(registry.host, 'mono/base', images.base, [], { credentials: creds });
    const from = registry.issued.length;
    const a = await pushTo(registry.host, 'mono/a', images.a, ['mono/base:latest'], { credentials: creds });
    expect(a.result.layers.map((l) => l.action)).toEqual(['mounted', 'mounted', 'uploaded']);
    expect(a.result.bytesUploaded).toBe(a.result.layers[2]!.size + a.result.config.size);
    const scopes = registry.issued.slice(from).map((t) => t.scopes);
    expect(scopes.at(-1)).toEqual(['repository:mono/a:pull,push', 'repository:mono/base:pull']);
    await checkPulls(registry, 'mono/a', a.result.digest, 'tester:s3cret-pass');
    base.client.close();
    a.client.close();
  });

  it('pushes without mounting when the token server refuses pull on the other repository', async () => {
    const from = registry.issued.length;
    const e = await pushTo(registry.host, 'mono/e', images.a, ['secret/base:latest'], { credentials: creds });
    expect(e.result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(registry.issued.slice(from).map((t) => t.scopes)).toEqual([['repository:mono/e:pull,push'], ['repository:mono/e:pull,push']]);
    await checkPulls(registry, 'mono/e', e.result.digest, 'tester:s3cret-pass');
    e.client.close();
  });
});
