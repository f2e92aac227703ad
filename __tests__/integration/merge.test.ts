// The merge input against the real Distribution registry: images pushed by digest (one per platform, as
// a matrix of jobs does) put together in one OCI index. Entries are read where they say: this
// repository by digest or by tag, another repository of the registry (its blobs mounted into the index's
// repository, never read as this repository's tag of the same name); another registry is refused. Every
// repository `tags` names gets the index and every image it lists (mounted within a registry, copied
// to another), or none is tagged: a missing image, or a registry that will not mount, fails before any
// tag moves; a tag failing half-way says which repositories and tags moved. Checked by reading the
// registries back (our client and skopeo).
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skopeo, startFaultProxy, startRegistry, type TestRegistry } from '../support/registry.js';
import type { ImageInput } from '../../src/image/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { MergeError, mergeToAll, type MergeResult } from '../../src/registry/merge.js';
import { pushImage } from '../../src/registry/push.js';
import { recordKey, type PushTarget } from '../../src/registry/targets.js';
import { MediaTypes } from '../../src/registry/types.js';

const quiet = { debug: () => {}, info: (m: string) => process.env.MERGE_DEBUG && console.log(m), warning: (m: string) => process.env.MERGE_DEBUG && console.log(m) };
const fast = { attempts: 3, baseMs: 20, maxMs: 100, budgetMs: 5_000 };
let work: string;
const clients: RegistryClient[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-merge-'));
});
afterAll(() => {
  for (const c of clients) c.close();
});

const client = (host: string, repository: string): RegistryClient => {
  const c = new RegistryClient({ registry: host, repository, insecure: true, logger: quiet, retry: fast });
  clients.push(c);
  return c;
};
const target = (host: string, repository: string, tags: string[]): PushTarget => ({ client: client(host, repository), tags, reuse: [], known: [] });

/** A two-layer image for one architecture: a base layer every platform shares, and one of its own. */
function platformImage(architecture: string, seed: string): ImageInput {
  const layers = [Buffer.alloc(60_000, 'merge-shared-base '), Buffer.alloc(20_000, `${seed} ${architecture} `)];
  return {
    description: `${architecture} image ${seed}`,
    async readLayers(visit) {
      for (const [i, bytes] of layers.entries()) await visit({ name: `layer ${i}`, seekable: true }, () => Readable.from([bytes]));
      return {
        order: layers.map((_, i) => `layer ${i}`),
        config: (diffIDs) => Buffer.from(JSON.stringify({ architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } })),
      };
    },
  };
}

/** Pushes an image of `architecture` to the repository, by digest (tags: none) or under `tags`; its digest. */
async function push(host: string, repository: string, architecture: string, seed: string, tags: string[] = []): Promise<string> {
  const r = await pushImage({ input: platformImage(architecture, seed), client: client(host, repository), tags, byDigest: tags.length === 0, logger: quiet, tmpDir: work });
  return r.digest;
}

interface IndexBody {
  mediaType: string;
  manifests: { digest: string; platform: { os: string; architecture: string } }[];
}

/** The index under `ref` in the repository, read back: its digest and the images it lists with their platforms. */
async function indexAt(host: string, repository: string, ref: string): Promise<{ digest: string; images: [string, string][] } | undefined> {
  const got = await client(host, repository).getManifest(ref);
  if (!got) return undefined;
  const body = JSON.parse(got.bytes.toString('utf8')) as IndexBody;
  expect(body.mediaType).toBe(MediaTypes.ociIndex);
  return { digest: got.digest, images: body.manifests.map((m) => [m.digest, `${m.platform.os}/${m.platform.architecture}`]) };
}

/** The repository holds the image: its manifest by digest, and its config and every layer. */
async function expectHolds(host: string, repository: string, digest: string): Promise<void> {
  const c = client(host, repository);
  const got = await c.getManifest(digest);
  expect(got, `${host}/${repository}@${digest}`).toBeDefined();
  expect(got!.digest).toBe(digest);
  const manifest = JSON.parse(got!.bytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  for (const d of [manifest.config, ...manifest.layers]) expect(await c.hasBlob(d.digest), `${repository} blob ${d.digest}`).toBe(true);
}

const rejection = async (p: Promise<unknown>): Promise<Error> => {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(Error);
  return e as Error;
};

describe('one registry', () => {
  let registry: TestRegistry;
  let other: TestRegistry;
  beforeAll(async () => ([registry, other] = await Promise.all([startRegistry({}), startRegistry({})])));
  afterAll(async () => Promise.all([registry?.stop(), other?.stop()]));

  it('(a) merges images of this repository named by digest and by tag into one index under the tags', async () => {
    const amd = await push(registry.host, 'm/a', 'amd64', 'a');
    const arm = await push(registry.host, 'm/a', 'arm64', 'a', ['arm-build']);
    const merged = await mergeToAll([target(registry.host, 'm/a', ['latest', 'v1'])], [amd, 'arm-build'], { 'org.opencontainers.image.version': '1' }, quiet);
    expect(merged.images.map((i) => [i.ref, i.repository, i.descriptor.digest])).toEqual([
      [amd, 'm/a', amd],
      ['arm-build', 'm/a', arm],
    ]);
    expect(merged.repositories).toEqual([{ registry: registry.host, repository: 'm/a', tags: ['latest', 'v1'], images: [{ digest: amd, action: 'present' }, { digest: arm, action: 'present' }] }]);
    for (const tag of ['latest', 'v1']) {
      expect(await indexAt(registry.host, 'm/a', tag)).toEqual({ digest: merged.index.digest, images: [[amd, 'linux/amd64'], [arm, 'linux/arm64']] });
    }
    // skopeo reads the same index, and its annotations.
    const raw = JSON.parse(await skopeo(['inspect', '--raw', `docker://${registry.host}/m/a:latest`])) as IndexBody & { annotations: Record<string, string> };
    expect(raw.manifests.map((m) => m.digest)).toEqual([amd, arm]);
    expect(raw.annotations).toEqual({ 'org.opencontainers.image.version': '1' });
  });

  it('refuses an image the registry answers with other bytes than the digest asked for: nothing is indexed or tagged', async () => {
    const amd = await push(registry.host, 'm/swap', 'amd64', 'swap');
    const arm = await push(registry.host, 'm/swap', 'arm64', 'swap');
    // A mirror or proxy that answers GET manifests/<amd> with another manifest (arm's).
    const proxy = await startFaultProxy(registry, [{ method: 'GET', path: new RegExp(`/manifests/${amd}$`), rewritePath: (p) => p.replace(amd, arm), times: 100 }]);
    try {
      const error = await rejection(mergeToAll([target(proxy.host, 'm/swap', ['latest'])], [amd], undefined, quiet));
      expect(error.message).toBe(`registry ${proxy.host} answered GET manifest ${amd} with other bytes (${arm})`);
      expect(proxy.log.filter((l) => /^PUT /.test(l))).toEqual([]);
    } finally {
      await proxy.stop();
    }
    expect(await indexAt(registry.host, 'm/swap', 'latest')).toBeUndefined();
  });

  it('(b) takes other/app:v1 and other/app@sha256:… from that repository, mounting the images into this one', async () => {
    // Both repositories have a v1, of different platforms: `m/b-other:v1` is not this repository's v1.
    const amd = await push(registry.host, 'm/b', 'amd64', 'b', ['v1']);
    const arm = await push(registry.host, 'm/b-other', 'arm64', 'b', ['v1']);
    const s390x = await push(registry.host, 'm/b-other', 's390x', 'b');
    const proxy = await startFaultProxy(registry, []);
    try {
      const merged = await mergeToAll([target(proxy.host, 'm/b', ['latest'])], ['v1', 'm/b-other:v1', `m/b-other@${s390x}`], undefined, quiet);
      expect(merged.images.map((i) => [i.ref, i.repository, i.descriptor.digest])).toEqual([
        ['v1', 'm/b', amd],
        ['m/b-other:v1', 'm/b-other', arm],
        [`m/b-other@${s390x}`, 'm/b-other', s390x],
      ]);
      expect(merged.repositories[0]!.images.map((i) => i.action)).toEqual(['present', 'mounted', 'mounted']);
      // Mounted, not uploaded: no blob bytes went to the registry.
      expect(proxy.forwarded.PATCH ?? 0).toBe(0);
      expect(proxy.log.filter((l) => /^POST \/v2\/m\/b\/blobs\/uploads\/\?mount=sha256%3A[0-9a-f]{64}&from=m%2Fb-other → 201$/.test(l)).length).toBeGreaterThan(0);
    } finally {
      await proxy.stop();
    }
    expect(await indexAt(registry.host, 'm/b', 'latest')).toMatchObject({ images: [[amd, 'linux/amd64'], [arm, 'linux/arm64'], [s390x, 'linux/s390x']] });
    for (const d of [arm, s390x]) {
      await expectHolds(registry.host, 'm/b', d);
      expect(JSON.parse(await skopeo(['inspect', '--raw', `docker://${registry.host}/m/b@${d}`])).layers).toHaveLength(2);
    }
    // This repository's own v1 is where it was.
    expect((await client(registry.host, 'm/b').getManifest('v1'))!.digest).toBe(amd);
  });

  it('(c) refuses an entry of another registry in one line, naming merge, and tags nothing', async () => {
    const amd = await push(registry.host, 'm/c', 'amd64', 'c');
    const arm = await push(other.host, 'm/c', 'arm64', 'c');
    const error = await rejection(mergeToAll([target(registry.host, 'm/c', ['latest'])], [amd, `${other.host}/m/c@${arm}`], undefined, quiet));
    expect(error.message).toBe(
      `input merge: "${other.host}/m/c@${arm}" is in registry ${other.host}, not ${registry.host}: an index can only list images of its own registry (copy the image there first)`,
    );
    expect(await client(registry.host, 'm/c').getManifest('latest')).toBeUndefined();
    expect(await client(registry.host, 'm/c').getManifest(arm)).toBeUndefined();
  });

  it('(e) fails before anything is tagged when an entry is missing, or when a repository cannot get an image', async () => {
    const amd = await push(registry.host, 'm/e', 'amd64', 'e');
    const arm = await push(registry.host, 'm/e-other', 'arm64', 'e');
    const missing = `sha256:${'0'.repeat(64)}`;
    const targets = [target(registry.host, 'm/e', ['latest']), target(other.host, 'm/e', ['latest']), target(registry.host, 'm/e-mirror', ['latest'])];
    const error = await rejection(mergeToAll(targets, [amd, missing], undefined, quiet));
    expect(error).toBeInstanceOf(MergeError);
    expect(error.message).toBe(`merge: ${missing} is not in m/e`);
    for (const t of targets) expect(await t.client.getManifest('latest'), recordKey(t)).toBeUndefined();

    // The registry answers the mounts into the third repository with an upload session: refused, saying
    // which, and the repositories before it (which got every image) are not tagged either. The proxy
    // stands for the registry (the index's home goes through it too).
    const proxy = await startFaultProxy(registry, [{ method: 'POST', path: /^\/v2\/m\/e-mirror\/blobs\/uploads\/\?mount=/, rewritePath: (p) => p.replace(/\?.*$/, ''), times: 1_000_000 }]);
    try {
      const more = [target(proxy.host, 'm/e', ['latest']), target(other.host, 'm/e', ['latest']), target(proxy.host, 'm/e-mirror', ['latest'])];
      const refused = await rejection(mergeToAll(more, [amd, `m/e-other@${arm}`], undefined, quiet));
      expect(refused).toBeInstanceOf(MergeError);
      expect(refused.message).toMatch(
        // The images go in in order: the first entry's blobs are the first the registry would not mount.
        new RegExp(`^merge: ${proxy.host} would not mount blob sha256:[0-9a-f]{64} of ${amd} from m/e into m/e-mirror \\(it opened an upload instead\\): an image goes into another repository of its registry by a cross-repository mount only$`),
      );
      expect(proxy.log.filter((l) => /^POST \/v2\/m\/e-mirror\/blobs\/uploads\/\?mount=.* → 202$/.test(l)).length).toBeGreaterThan(0);
      for (const [host, repository] of [[registry.host, 'm/e'], [other.host, 'm/e'], [registry.host, 'm/e-mirror']] as const) {
        expect(await client(host, repository).getManifest('latest'), `${host}/${repository}`).toBeUndefined();
      }
      // The first two did get the images (by digest): only the tags wait for every repository.
      await expectHolds(registry.host, 'm/e', arm);
      await expectHolds(other.host, 'm/e', arm);
    } finally {
      await proxy.stop();
    }
  });

  it('(f) says which repositories and tags moved when tagging fails half-way', async () => {
    const amd = await push(registry.host, 'm/f', 'amd64', 'f');
    const arm = await push(registry.host, 'm/f', 'arm64', 'f');
    // The second repository refuses its tag for good, not its images nor the index by digest.
    const proxy = await startFaultProxy(registry, [{ method: 'PUT', path: /^\/v2\/m\/f-two\/manifests\/(?!sha256:)/, status: 503, times: 1_000_000 }]);
    try {
      const targets = [target(proxy.host, 'm/f', ['latest', 'v1']), target(proxy.host, 'm/f-two', ['latest'])];
      const error = await rejection(mergeToAll(targets, [amd, arm], undefined, quiet));
      expect(error.message).toContain('503');
      expect(error.message).toContain(`(repositories tagged already: ${proxy.host}/m/f (latest, v1); not tagged: ${proxy.host}/m/f-two)`);
      expect(error.message).not.toContain('\n');
      const moved = await indexAt(registry.host, 'm/f', 'v1');
      expect(moved?.images).toEqual([[amd, 'linux/amd64'], [arm, 'linux/arm64']]);
      expect(await client(registry.host, 'm/f-two').getManifest('latest')).toBeUndefined();
      // The index is there by digest all the same: a run again only moves the tag.
      expect((await client(registry.host, 'm/f-two').getManifest(moved!.digest))?.digest).toBe(moved!.digest);
    } finally {
      await proxy.stop();
    }
    // The second repository refuses its second tag only: it is partly tagged, and said to be.
    const partial = await startFaultProxy(registry, [{ method: 'PUT', path: /^\/v2\/m\/f-three\/manifests\/v2$/, status: 503, times: 1_000_000 }]);
    try {
      const targets = [target(partial.host, 'm/f', ['latest']), target(partial.host, 'm/f-three', ['v1', 'v2'])];
      const error = await rejection(mergeToAll(targets, [amd, arm], undefined, quiet));
      expect(error.message).toContain(`(repositories tagged already: ${partial.host}/m/f (latest); partly tagged: ${partial.host}/m/f-three (v1); not tagged: none)`);
      expect(await client(registry.host, 'm/f-three').getManifest('v1')).toBeDefined();
      expect(await client(registry.host, 'm/f-three').getManifest('v2')).toBeUndefined();
    } finally {
      await partial.stop();
    }
  });
});

describe('(d) tags in several repositories and registries', () => {
  let a: TestRegistry;
  let b: TestRegistry;
  beforeAll(async () => ([a, b] = await Promise.all([startRegistry({}), startRegistry({})])));
  afterAll(async () => Promise.all([a?.stop(), b?.stop()]));

  it('puts one index, and every image it lists, under the tags of every repository', async () => {
    const amd = await push(a.host, 'd/app', 'amd64', 'd');
    const arm = await push(a.host, 'd/arm-job', 'arm64', 'd');
    const targets = [target(a.host, 'd/app', ['latest', '1.0']), target(a.host, 'd/mirror', ['latest']), target(b.host, 'd/app', ['latest', '1.0']), target(b.host, 'd/mirror', ['latest'])];
    const merged: MergeResult = await mergeToAll(targets, [amd, `d/arm-job@${arm}`], undefined, quiet);
    expect(merged.repositories.map((r) => [`${r.registry}/${r.repository}`, r.tags, r.images.map((i) => i.action)])).toEqual([
      [`${a.host}/d/app`, ['latest', '1.0'], ['present', 'mounted']],
      [`${a.host}/d/mirror`, ['latest'], ['mounted', 'mounted']],
      [`${b.host}/d/app`, ['latest', '1.0'], ['copied', 'copied']],
      // Copied once into the second registry, then mounted there from the repository that got it.
      [`${b.host}/d/mirror`, ['latest'], ['mounted', 'mounted']],
    ]);
    const want = { digest: merged.index.digest, images: [[amd, 'linux/amd64'], [arm, 'linux/arm64']] };
    for (const [host, repository, tags] of [[a.host, 'd/app', ['latest', '1.0']], [a.host, 'd/mirror', ['latest']], [b.host, 'd/app', ['latest', '1.0']], [b.host, 'd/mirror', ['latest']]] as const) {
      for (const tag of tags) expect(await indexAt(host, repository, tag), `${host}/${repository}:${tag}`).toEqual(want);
      for (const d of [amd, arm]) await expectHolds(host, repository, d);
      const inspected = JSON.parse(await skopeo(['inspect', '--raw', `docker://${host}/${repository}:latest`])) as IndexBody;
      expect(inspected.manifests.map((m) => m.digest)).toEqual([amd, arm]);
    }
    // skopeo pulls the arm64 image out of the copy in the second registry, every blob digest-checked.
    const dir = await mkdtemp(join(work, 'pull-'));
    await skopeo(['copy', '--override-arch', 'arm64', `docker://${b.host}/d/app:latest`, `oci:${dir}:arm`]);
    const ociIndex = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(ociIndex.manifests[0]!.digest).toBe(arm);
  });
});
