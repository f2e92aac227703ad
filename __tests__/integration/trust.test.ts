// What a push reuses is verified, and one image has one digest in every registry. Against the real
// Distribution registry: a config in another repository (or a store-cache record kept for another
// repository) claiming the app layer's diff id for a blob holding something else never gets that blob
// into the image; a genuine layer another tool pushed is downloaded and hashed once, then mounted, and
// not downloaded again; a reuse tag skopeo pushed (its own gzip) in one of two registries still gives one
// digest in both, each layer compressed once; a re-tag that fails in the second repository says what the
// first already got; a layer matched by key against another repository is hashed before it is mounted.
// Every pushed image is checked by pulling its blobs back and inflating them (and
// with podman, which checks each layer's diff id as it unpacks).
import { mkdtemp } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type LayerSpec, type MadeArchive } from '../support/archives.js';
import { emptySkopeoBlobCache, podmanPull } from '../support/clients.js';
import { skopeo, startFaultProxy, startRegistry, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { archiveInput } from '../../src/image/input.js';
import type { ImageInput } from '../../src/image/types.js';
import { readLayerRecord, recordLayers } from '../../src/nix/layer-record.js';
import { RegistryClient } from '../../src/registry/client.js';
import { buildOciManifest, type KnownLayer } from '../../src/registry/manifest.js';
import { sha256Digest } from '../../src/hash.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';
import { parseImageName, parseReuseTags } from '../../src/registry/reference.js';
import { retagIfPushed } from '../../src/registry/shortcut.js';
import { knownFromRecord, pushToAll, type PushTarget } from '../../src/registry/targets.js';
import { MediaTypes } from '../../src/registry/types.js';

/** An input whose layers carry keys (as a layer plan's do) and no diff id: raw bytes per layer. */
function keyedInput(layers: { key: string; bytes: Buffer }[]): ImageInput {
  return {
    description: 'keyed layers',
    async readLayers(visit) {
      for (const [i, l] of layers.entries()) await visit({ name: `layer ${i}`, key: l.key, seekable: true }, () => Readable.from([l.bytes]));
      return {
        order: layers.map((_, i) => `layer ${i}`),
        keys: layers.map((l) => l.key),
        config: (diffIDs) => Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } })),
      };
    },
  };
}
const diffIDOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const quiet = { debug: () => {}, info: (m: string) => process.env.TRUST_DEBUG && console.log(m), warning: (m: string) => process.env.TRUST_DEBUG && console.log(m) };
const fast = { attempts: 3, baseMs: 20, maxMs: 100, budgetMs: 5_000 };
let work: string;
const images: Record<'base' | 'a' | 'b' | 'otherBase' | 'otherA' | 'otherB', MadeArchive> = {} as never;

const shared: LayerSpec[] = [
  { size: 300_000, seed: 'trust-base', compressible: false },
  { size: 200_000, seed: 'trust-lib', compressible: true },
];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-trust-'));
  images.base = await makeImageArchive({ dir: work, name: 'base', compression: 'none', layers: [...shared, { size: 3_000, seed: 'trust-base-conf', compressible: true }] });
  images.a = await makeImageArchive({ dir: work, name: 'a', compression: 'none', layers: [...shared, { size: 80_000, seed: 'trust-app-a', compressible: false }] });
  images.b = await makeImageArchive({ dir: work, name: 'b', compression: 'none', layers: [...shared, { size: 60_000, seed: 'trust-app-b', compressible: false }] });
  // Layers no other test pushes: skopeo finds none of them anywhere to reuse.
  const theirs: LayerSpec[] = [
    { size: 250_000, seed: 'trust-other-base', compressible: false },
    { size: 150_000, seed: 'trust-other-lib', compressible: true },
  ];
  images.otherBase = await makeImageArchive({ dir: work, name: 'other-base', compression: 'none', layers: [...theirs, { size: 2_000, seed: 'trust-other-conf', compressible: true }] });
  images.otherA = await makeImageArchive({ dir: work, name: 'other-a', compression: 'none', layers: [...theirs, { size: 70_000, seed: 'trust-other-a', compressible: false }] });
  images.otherB = await makeImageArchive({ dir: work, name: 'other-b', compression: 'none', layers: [...theirs, { size: 50_000, seed: 'trust-other-b', compressible: false }] });
});

const client = (host: string, repository: string) => new RegistryClient({ registry: host, repository, insecure: true, logger: quiet, retry: fast });

async function pushTo(host: string, repository: string, image: MadeArchive, reuse: string[], known: KnownLayer[] = []): Promise<PushResult> {
  const c = client(host, repository);
  try {
    const reuseTags = parseReuseTags(reuse, parseImageName(host, repository));
    return await pushImage({ source: await detectSource(image.path), client: c, tags: ['latest'], reuseTags, known, logger: quiet, tmpDir: work });
  } finally {
    c.close();
  }
}

/** Pulls the image under `ref` back blob by blob: each layer must inflate to its config's diff id. */
async function expectConsistent(host: string, repository: string, ref: string, podman = true): Promise<string[]> {
  const c = client(host, repository);
  try {
    const got = (await c.getManifest(ref))!;
    const manifest = JSON.parse(got.bytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    const config = JSON.parse((await c.getBlob(manifest.config.digest)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
    const inflated: string[] = [];
    for (const layer of manifest.layers) inflated.push(`sha256:${createHash('sha256').update(gunzipSync(await c.getBlob(layer.digest))).digest('hex')}`);
    expect(inflated).toEqual(config.rootfs.diff_ids);
    if (podman) await podmanPull(`${host}/${repository}:${ref}`);
    return manifest.layers.map((l) => l.digest);
  } finally {
    c.close();
  }
}

/** Puts into `repository` under `tag` an image whose config claims `diffID` for a blob holding `bytes`. */
async function forge(host: string, repository: string, tag: string, diffID: string, bytes: Buffer): Promise<string> {
  const c = client(host, repository);
  try {
    const blob = gzipSync(bytes);
    await c.uploadBlobBytes(blob);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffID] } }));
    await c.uploadBlobBytes(config);
    const manifest = buildOciManifest(
      { mediaType: MediaTypes.ociConfig, digest: sha256Digest(config), size: config.length },
      [{ mediaType: MediaTypes.ociLayerGzip, digest: sha256Digest(blob), size: blob.length }],
    );
    await c.putManifest(tag, manifest.bytes, manifest.mediaType);
    return sha256Digest(blob);
  } finally {
    c.close();
  }
}

describe('one registry', () => {
  let registry: TestRegistry;
  beforeAll(async () => (registry = await startRegistry({})));
  afterAll(async () => registry?.stop());

  it('does not mount a blob another repository claims holds the app layer: the real layer is made and uploaded', async () => {
    const forged = await forge(registry.host, 'forged/base', 'latest', images.a.diffIDs[2]!, Buffer.from('anything but the app layer'));
    const a = await pushTo(registry.host, 'forged/a', images.a, ['forged/base:latest']);
    expect(a.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
    expect(a.layers.map((l) => l.digest)).not.toContain(forged);
    expect(a.layers.map((l) => l.diffID)).toEqual(images.a.diffIDs);
    expect(a.layersMade).toBe(3);
    const pulled = await expectConsistent(registry.host, 'forged/a', 'latest');
    expect(pulled).toEqual(a.layers.map((l) => l.digest));
  });

  it('checks a genuine layer another tool pushed once, mounts it, and never downloads it again', async () => {
    // skopeo compresses the layers its own way: blobs this action did not make, under diff ids it did not check.
    await emptySkopeoBlobCache();
    await skopeo(['copy', `docker-archive:${images.otherBase.path}`, `docker://${registry.host}/other/base:latest`]);
    const theirs = JSON.parse(await skopeo(['inspect', '--raw', `docker://${registry.host}/other/base:latest`])) as { layers: { digest: string }[] };
    const sharedBlobs = theirs.layers.slice(0, 2).map((l) => l.digest);
    const proxy = await startFaultProxy(registry, []);
    const downloads = () => proxy.log.filter((l) => sharedBlobs.some((d) => l.startsWith(`GET /v2/other/base/blobs/${d} `))).length;
    try {
      const a = await pushTo(proxy.host, 'other/a', images.otherA, ['other/base:latest']);
      expect(a.layers.map((l) => l.action)).toEqual(['mounted', 'mounted', 'uploaded']);
      expect(a.layers.slice(0, 2).map((l) => l.digest)).toEqual(sharedBlobs);
      expect(a.layers.map((l) => l.verified)).toEqual([true, true, undefined]);
      expect(downloads()).toBe(2);
      await expectConsistent(registry.host, 'other/a', 'latest');

      const b = await pushTo(proxy.host, 'other/b', images.otherB, ['other/base:latest']);
      expect(b.layers.map((l) => l.action)).toEqual(['mounted', 'mounted', 'uploaded']);
      expect(b.layers.slice(0, 2).map((l) => l.digest)).toEqual(sharedBlobs);
      expect(downloads()).toBe(2); // what the first push found is remembered
      await expectConsistent(registry.host, 'other/b', 'latest');
    } finally {
      await proxy.stop();
    }
  });

  it('hashes a layer matched by key in another repository before mounting it; one whose bytes differ is made', async () => {
    const one = Buffer.alloc(200_000, 'keyed layer one ');
    const two = Buffer.alloc(100_000, 'keyed layer two ');
    const changed = Buffer.alloc(100_000, 'same key, other bytes ');
    const push = async (repository: string, bytes: Buffer[], reuse: string[]) => {
      const c = client(registry.host, repository);
      try {
        const reuseTags = parseReuseTags(reuse, parseImageName(registry.host, repository));
        return await pushImage({ input: keyedInput(bytes.map((b, i) => ({ key: `k${i}`, bytes: b }))), client: c, tags: ['latest'], reuseTags, logger: quiet, tmpDir: work });
      } finally {
        c.close();
      }
    };
    const base = await push('keyed/base', [one, two], []);
    expect(base.layersMade).toBe(2);
    // keyed/base's key annotations are ours, but keyed/app trusts only its own.
    const app = await push('keyed/app', [one, changed], ['keyed/base:latest']);
    expect(app.layers.map((l) => l.action)).toEqual(['mounted', 'uploaded']);
    expect(app.layers[0]!.verified).toBe(true);
    expect(app.layers.map((l) => l.diffID)).toEqual([diffIDOf(one), diffIDOf(changed)]);
    expect(app.layersMade).toBe(1);
    await expectConsistent(registry.host, 'keyed/app', 'latest', false);
    // In its own repository, a layer under our key annotation is taken as is: nothing read, nothing checked.
    const again = await push('keyed/app', [one, changed], []);
    expect(again.layers.map((l) => l.action)).toEqual(['reused', 'reused']);
    expect(again.layers.map((l) => l.verified)).toEqual([undefined, undefined]);
    expect(again.digest).toBe(app.digest);
  });

  it('does not use a store-cache record entry kept for another repository that names a wrong blob', async () => {
    const base = await pushTo(registry.host, 'rec/t', images.base, []);
    // The record of rec/other claims base's first layer blob (in rec/t too) holds the app layer of a.
    const dir = await mkdtemp(join(work, 'record-'));
    const wrong = base.layers[0]!;
    const recordedFor = `${registry.host}/rec/other`;
    await recordLayers(dir, recordedFor, [{ diffID: images.a.diffIDs[2]!, digest: wrong.digest, size: wrong.size }]);
    const other: KnownLayer[] = (await readLayerRecord(dir, recordedFor)).map((l) => ({
      diffID: l.diffID,
      desc: { mediaType: MediaTypes.ociLayerGzip, digest: l.digest, size: l.size },
      recordedFor,
    }));
    expect(other).toHaveLength(1);

    const a = await pushTo(registry.host, 'rec/t', images.a, [], other);
    expect(a.layers[2]!.action).toBe('uploaded');
    expect(a.layers[2]!.digest).not.toBe(wrong.digest);
    expect(a.layers.map((l) => l.diffID)).toEqual(images.a.diffIDs);
    await expectConsistent(registry.host, 'rec/t', 'latest');
    // What the action reads of the record for a push to rec/t is rec/t's alone, bound to it.
    expect(await knownFromRecord(dir, { client: client(registry.host, 'rec/other') })).toEqual(other);
    expect(await knownFromRecord(dir, { client: client(registry.host, 'rec/t') })).toEqual([]);
  });

  it('says which repositories and tags a re-tag moved when the second repository fails for good', async () => {
    const wanted = { 'org.example.producer': 'trust-retag' };
    for (const repository of ['re/one', 're/two']) {
      const c = client(registry.host, repository);
      await pushImage({ input: archiveInput(await detectSource(images.a.path)), client: c, tags: ['build-1'], annotations: wanted, logger: quiet, tmpDir: work });
      c.close();
    }
    const proxy = await startFaultProxy(registry, [{ method: 'PUT', path: /\/v2\/re\/two\/manifests\//, status: 503, times: 1_000_000 }]);
    const targets: PushTarget[] = [
      { client: client(registry.host, 're/one'), tags: ['latest', 'v1'], reuse: [{ repository: 're/one', tag: 'build-1' }], known: [] },
      { client: client(proxy.host, 're/two'), tags: ['latest', 'v1'], reuse: [{ repository: 're/two', tag: 'build-1' }], known: [] },
    ];
    try {
      const error = (await retagIfPushed(targets, wanted, quiet).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(Error);
      expect(error.message).toContain('503');
      expect(error.message).toContain(`repositories tagged already: ${registry.host}/re/one (latest, v1)`);
      expect(error.message).toContain(`not tagged: ${proxy.host}/re/two`);
      const one = await client(registry.host, 're/one').getManifest('v1');
      expect(one).toBeDefined();
      expect(await client(registry.host, 're/two').getManifest('latest')).toBeUndefined();
    } finally {
      for (const t of targets) t.client.close();
      await proxy.stop();
    }
  });
});

describe('two registries', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  beforeAll(async () => ([a, b] = await Promise.all([startRegistry({}), startRegistry({})])));
  afterAll(async () => Promise.all([a?.stop(), b?.stop()]));

  it('pushes one digest everywhere when the reuse tag holds blobs skopeo pushed, each layer compressed once', async () => {
    await emptySkopeoBlobCache();
    await skopeo(['copy', `docker-archive:${images.a.path}`, `docker://${a.host}/two/app:latest`]);
    const theirs = JSON.parse(await skopeo(['inspect', '--raw', `docker://${a.host}/two/app:latest`])) as { layers: { digest: string }[] };
    const targets: PushTarget[] = [
      { client: client(a.host, 'two/app'), tags: ['latest'], reuse: [{ repository: 'two/app', tag: 'latest' }], known: [] },
      { client: client(b.host, 'two/app'), tags: ['latest'], reuse: [], known: [] },
      { client: client(a.host, 'two/mirror'), tags: ['latest'], reuse: [], known: [] },
    ];
    try {
      const results = await pushToAll(archiveInput(await detectSource(images.b.path)), targets, { logger: quiet, tmpDir: work });
      const [inA, inB, mirror] = results as [PushResult, PushResult, PushResult];
      expect(new Set(results.map((r) => r.digest)).size).toBe(1);
      // skopeo's blobs for the shared layers, checked, then kept: only the app layer is made.
      expect(inA.layers.map((l) => l.action)).toEqual(['reused', 'reused', 'uploaded']);
      expect(inA.layers.slice(0, 2).map((l) => l.digest)).toEqual(theirs.layers.slice(0, 2).map((l) => l.digest));
      expect(results.map((r) => r.layersMade)).toEqual([1, 0, 0]);
      expect(inB.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
      expect(mirror.layers.map((l) => l.action)).toEqual(['mounted', 'mounted', 'mounted']);
      for (const [host, repository] of [[a.host, 'two/app'], [b.host, 'two/app'], [a.host, 'two/mirror']] as const) {
        const inspected = JSON.parse(await skopeo(['inspect', `docker://${host}/${repository}:latest`])) as { Digest: string };
        expect(inspected.Digest).toBe(inA.digest);
        expect(await expectConsistent(host, repository, 'latest')).toEqual(inA.layers.map((l) => l.digest));
      }
    } finally {
      for (const t of targets) t.client.close();
    }
  });
});
