// End-to-end, real Nix: an image shaped exactly as dockerTools makes it (support/flakes.ts,
// makeDockerToolsFlake) is pushed from its layer plan, its archive never built: the stream script, the
// .tar.gz and the .tar attrs push one digest, which the archive path (layers-from: archive, reading what
// the reference stream script writes) gives too; imageid is skopeo's config digest of that archive;
// podman and skopeo pull it intact; after a one-package change only the changed layers are made.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAYER_KEY_ANNOTATION } from '../../src/registry/manifest.js';
import { runAction, type ActionRun } from '../support/action.js';
import { podmanPull } from '../support/clients.js';
import { startCacheServer, type CacheServer } from '../support/cache-server.js';
import { forgetOutputs, makeDockerToolsFlake, type DockerToolsFlake } from '../support/flakes.js';
import { nixTestEnv, pathWithoutNix } from '../support/nix.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';

const run = promisify(execFile);
let registry: TestRegistry;
let fixture: DockerToolsFlake;
beforeAll(async () => {
  registry = await startRegistry({});
  fixture = await makeDockerToolsFlake();
});
afterAll(async () => {
  await registry?.stop();
});

const base = { cache: 'false', insecure: 'true' };

function expectSuccess(r: ActionRun): void {
  expect(r.main.errors, r.log).toEqual([]);
  expect(r.main.code, r.log).toBe(0);
}

interface Metadata {
  digest: string;
  imageid: string;
  format: string;
  'store-path': string;
  layers: { total: number; uploaded: number; skipped: number; reused: number; made: number; list: { digest: string; diffID: string; action: string; storePaths?: string[] }[] };
}

const metadata = (r: ActionRun): Metadata => JSON.parse(r.outputs.metadata!) as Metadata;

async function nixBuild(attr: string): Promise<string> {
  const { stdout } = await run('nix', ['build', '--no-link', '--json', `${fixture.flake}#${attr}`], { env: { ...process.env, ...nixTestEnv() } });
  return (JSON.parse(stdout) as { outputs: { out: string } }[])[0]!.outputs.out;
}

async function inspectRaw(ref: string): Promise<{ config: { digest: string }; layers: { digest: string; annotations?: Record<string, string> }[]; annotations?: Record<string, string> }> {
  return JSON.parse(await skopeo(['inspect', '--raw', ref])) as never;
}

describe('a dockerTools image pushed from its layer plan', () => {
  const push = (attr: string, image: string, more: Record<string, string> = {}) =>
    runAction({ runtime: 'node24', inputs: { ...base, flake: fixture.flake, attr, registry: registry.host, image, tags: 'latest', ...more }, env: nixTestEnv() });

  it('pushes one digest from the stream, the .tar.gz and the .tar, never building an archive; the archive path agrees', async () => {
    const stream = await push(fixture.attrs.stream, 'dt/stream');
    expectSuccess(stream);
    const m = metadata(stream);
    expect(m.format).toBe('layers from the store');
    expect(stream.log).toMatch(/image: layers made from the store, the archive is not built \(.*streamLayeredImage/);
    expect(m.layers).toMatchObject({ total: 3, made: 3, uploaded: 3, reused: 0 });
    // Every layer names its store paths and carries the key of what fixed its bytes.
    expect(m.layers.list.map((l) => l.storePaths?.length)).toEqual([1, 1, 1]);
    expect(m.layers.list[0]!.storePaths![0]).toMatch(/-fixture-base$/);
    expect(m.layers.list[2]!.storePaths![0]).toMatch(/-fixture-customisation-layer$/);

    const gz = await push(fixture.attrs.tarGz, 'dt/targz');
    const tar = await push(fixture.attrs.tar, 'dt/tar');
    expectSuccess(gz);
    expectSuccess(tar);
    expect(gz.log).toMatch(/buildLayeredImage \(pigz -nTR\)/);
    expect(tar.log).toMatch(/buildLayeredImage \(none\)/);
    expect(gz.outputs.digest).toBe(stream.outputs.digest);
    expect(tar.outputs.digest).toBe(stream.outputs.digest);
    // Not one archive was built, and the store-path output is the image's own output path.
    for (const r of [stream, gz, tar]) expect(existsSync(metadata(r)['store-path'])).toBe(false);

    // The archive path, forced: the reference stream script writes the archive, the action reads it.
    const forced = await push(fixture.attrs.tarGz, 'dt/forced', { 'layers-from': 'archive' });
    expectSuccess(forced);
    expect(forced.log).toMatch(/image: building the output and reading its archive: layers-from: archive/);
    expect(metadata(forced).format).toBe('docker-archive+gzip');
    // The same config and layer blobs; the manifest records what fixed its bytes: the image derivation
    // itself (its stream script included) when the archive is read, the conf when the layers are made.
    expect(forced.outputs.imageid).toBe(stream.outputs.imageid);
    expect(metadata(forced).layers.list.map((l) => l.digest)).toEqual(m.layers.list.map((l) => l.digest));
    expect(forced.outputs.digest).not.toBe(stream.outputs.digest);
    const recorded = async (ref: string) => (JSON.parse(await skopeo(['inspect', '--raw', `docker://${ref}`])) as { annotations: Record<string, string> }).annotations['io.github.nix-image-action.derivation'];
    expect(await recorded(`${registry.host}/dt/forced:latest`)).toMatch(/\.drv$/);
    expect(await recorded(`${registry.host}/dt/forced:latest`)).not.toBe(await recorded(`${registry.host}/dt/stream:latest`));

    // imageid is the config digest skopeo reads from the same archive (the uncompressed one).
    const archive = await nixBuild(fixture.attrs.tar);
    const fromArchive = JSON.parse(await skopeo(['inspect', '--raw', `docker-archive:${archive}`])) as { config: { digest: string } };
    expect(stream.outputs.imageid).toBe(fromArchive.config.digest);
    // ... and the layers the archive holds are the ones pushed (diff ids from the archive's config).
    const config = JSON.parse(await skopeo(['inspect', '--config', '--raw', `docker-archive:${archive}`])) as { rootfs: { diff_ids: string[] } };
    expect(m.layers.list.map((l) => l.diffID)).toEqual(config.rootfs.diff_ids);

    // Independent clients: podman checks every diff id as it unpacks; skopeo reads the manifest back.
    const id = await podmanPull(`${registry.host}/dt/stream:latest`);
    expect(`sha256:${id}`).toBe(stream.outputs.imageid);
    const raw = await inspectRaw(`docker://${registry.host}/dt/stream:latest`);
    expect(raw.config.digest).toBe(stream.outputs.imageid);
    for (const l of raw.layers) expect(l.annotations?.[LAYER_KEY_ANNOTATION]).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('after a one-package change makes and uploads only the changed layers; unchanged, it makes none', async () => {
    const image = 'dt/changes';
    const first = await push(fixture.attrs.tarGz, image);
    expectSuccess(first);
    const before = await inspectRaw(`docker://${registry.host}/${image}:latest`);

    await fixture.setVersion('2');
    const second = await push(fixture.attrs.tarGz, image);
    expectSuccess(second);
    const m = metadata(second);
    expect(second.outputs.digest).not.toBe(first.outputs.digest);
    // base is reused unread; app and the customisation layer (it links to app) are made and uploaded.
    expect(m.layers).toMatchObject({ total: 3, made: 2, uploaded: 2, reused: 1 });
    expect(m.layers.list.map((l) => l.action)).toEqual(['reused', 'uploaded', 'uploaded']);
    // The summary says which package changed and what it cost: a row per layer with its store paths.
    expect(second.summary).toMatch(/<td>1<\/td><td><code title="\/nix\/store\/[0-9a-z]{32}-fixture-base">fixture-base<\/code><\/td><td>[\d.]+ KiB<\/td><td>reused without being read<\/td>/);
    expect(second.summary).toMatch(/<td>2<\/td><td><code title="[^"]+">fixture-app-2<\/code><\/td><td>[\d.]+ (B|KiB)<\/td><td>uploaded<\/td>/);
    expect(second.summary).toMatch(/Time: Nix install [\d.]+ s, evaluation [\d.]+ s, build [\d.]+ s, push [\d.]+ s/);
    const after = await inspectRaw(`docker://${registry.host}/${image}:latest`);
    expect(after.layers[0]!.digest).toBe(before.layers[0]!.digest);
    expect(after.layers[1]!.digest).not.toBe(before.layers[1]!.digest);
    expect(after.layers[2]!.digest).not.toBe(before.layers[2]!.digest);
    const id = await podmanPull(`${registry.host}/${image}:latest`);
    expect(`sha256:${id}`).toBe(second.outputs.imageid);

    // Nothing changed: every layer is known by its key from latest, none is made or read.
    const third = await push(fixture.attrs.tarGz, image, { tags: 'sha-3' });
    expectSuccess(third);
    expect(third.outputs.digest).toBe(second.outputs.digest);
    expect(metadata(third).layers).toMatchObject({ total: 3, made: 0, uploaded: 0, reused: 3 });
  });
});

describe('a dockerTools image on a fresh runner with the store cache', () => {
  let server: CacheServer;
  beforeAll(async () => (server = await startCacheServer()));
  afterAll(async () => server?.stop());

  it('reuses the layers last pushed from the record in the store cache, with no tag to read, and never caches an archive', async () => {
    const flake = await makeDockerToolsFlake();
    const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
    const job = (tag: string) =>
      runAction({
        runtime: 'node24',
        // Only per-commit tags, and no reuse tag: nothing in the registry names the layers.
        inputs: { flake: flake.flake, attr: flake.attrs.tarGz, registry: registry.host, image: 'dt/record', tags: tag, 'reuse-tags': '', insecure: 'true' },
        env: { ...nixTestEnv(), ...server.env('v2'), HOME: home },
      });
    const builds = async () => (await readFile(join(flake.records, 'builds'), 'utf8')).split('\n').filter(Boolean);

    const first = await job('sha-1');
    expectSuccess(first);
    expect(first.post?.code, first.log).toBe(0);
    expect(metadata(first).layers).toMatchObject({ made: 3, uploaded: 3 });
    expect(await builds()).toEqual(['base', 'app']);
    const saved = server.entries.filter((e) => e.committed);
    expect(saved).toHaveLength(1);
    // The archive was never built, so it is in neither the store nor the cache entry.
    expect(existsSync(metadata(first)['store-path'])).toBe(false);

    // A fresh runner: none of the image's paths in the store, only the store cache to restore.
    await forgetOutputs(flake, ['conf', 'customisation', 'script', 'app', 'base']);
    const second = await job('sha-2');
    expectSuccess(second);
    expect(second.outputs['cache-hit']).toBe('true');
    expect(await builds()).toEqual(['base', 'app']); // substituted from the cache, nothing rebuilt
    expect(second.outputs.digest).toBe(first.outputs.digest);
    // Every layer known from the record, confirmed with HEAD: none made, none read.
    expect(metadata(second).layers).toMatchObject({ total: 3, made: 0, uploaded: 0, reused: 3 });
    expect(second.main.stdout).toMatch(/3 layer\(s\) of the store cache record in the registry/);
  });
});

describe('the registry as the image binary cache', () => {
  let server: CacheServer;
  beforeAll(async () => (server = await startCacheServer()));
  afterAll(async () => server?.stop());

  it('an unchanged image costs one evaluation: no cache restored, nothing built, the same digest under every tag', async () => {
    const flake = await makeDockerToolsFlake();
    const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
    const job = (tags: string, attr = flake.attrs.tarGz) =>
      runAction({
        runtime: 'node24',
        inputs: { flake: flake.flake, attr, registry: registry.host, image: 'dt/unchanged', tags, insecure: 'true' },
        env: { ...nixTestEnv(), ...server.env('v2'), HOME: home },
      });
    const builds = async () => (await readFile(join(flake.records, 'builds'), 'utf8')).split('\n').filter(Boolean);

    const first = await job('latest');
    expectSuccess(first);
    expect(first.main.stdout).toMatch(/image: building, no tag holds this image/);
    const raw = await inspectRaw(`docker://${registry.host}/dt/unchanged:latest`);
    expect(raw).toMatchObject({ annotations: { 'io.github.nix-image-action.derivation': expect.stringMatching(/-fixture-conf\.json\.drv$/) } });

    // A fresh runner: the image's paths are gone from the store; the registry has the image.
    await forgetOutputs(flake, ['conf', 'customisation', 'script', 'app', 'base']);
    const requests = server.requests.length;
    const second = await job('latest\nsha-2');
    expectSuccess(second);
    expect(second.main.stdout).toMatch(/image: already in the registry, nothing to build: the manifest under latest was made from the same derivation/);
    expect(server.requests.length).toBe(requests); // no cache restore, no save
    expect(await builds()).toEqual(['base', 'app']); // nothing built again
    expect(existsSync(metadata(first)['store-path'])).toBe(false);
    expect(second.outputs.digest).toBe(first.outputs.digest);
    expect(second.outputs.imageid).toBe(first.outputs.imageid);
    expect(second.outputs['store-path']).toBe(first.outputs['store-path']);
    expect(metadata(second)).toMatchObject({ format: 'already in the registry', layers: { total: 3, made: 0, uploaded: 0, reused: 3 } });
    expect(second.summary).toContain('nothing was built, no layer was sent');
    expect(JSON.parse(await skopeo(['inspect', `docker://${registry.host}/dt/unchanged:sha-2`])).Digest).toBe(first.outputs.digest);
    // The same image named through its stream script is the same image.
    const viaStream = await job('sha-3', flake.attrs.stream);
    expectSuccess(viaStream);
    expect(viaStream.main.stdout).toMatch(/image: already in the registry/);
    expect(viaStream.outputs.digest).toBe(first.outputs.digest);

    // One package changed: the derivation differs, the job builds.
    await flake.setVersion('2');
    const changed = await job('latest');
    expectSuccess(changed);
    expect(changed.main.stdout).toMatch(/image: building, no tag holds this image \(latest: made from something else\)/);
    expect(changed.outputs.digest).not.toBe(first.outputs.digest);
    expect(await builds()).toEqual(['base', 'app', 'app']);
  });

  it('an unchanged image whose plan was refused (its archive read) is found again in the registry, by its own derivation', async () => {
    const flake = await makeDockerToolsFlake({ unknownConfKey: true });
    const job = () => runAction({ runtime: 'node24', inputs: { flake: flake.flake, attr: flake.attrs.tarGz, registry: registry.host, image: 'dt/refused-plan', insecure: 'true', cache: 'false' }, env: nixTestEnv() });
    const first = await job();
    expectSuccess(first);
    expect(first.main.stdout).toMatch(/the conf has a shape this action does not know \(unknown: a_future_key\)/);
    const raw = await inspectRaw(`docker://${registry.host}/dt/refused-plan:latest`);
    expect(raw.annotations?.['io.github.nix-image-action.derivation']).toMatch(/\.drv$/); // the image's own derivation
    expect(raw.annotations?.['io.github.nix-image-action.derivation']).not.toMatch(/-conf\.json\.drv$/);
    const second = await job();
    expectSuccess(second);
    expect(second.main.stdout).toMatch(/image: already in the registry, nothing to build/);
    expect(second.outputs.digest).toBe(first.outputs.digest);
  });
});

describe('labels and annotations', () => {
  it('merges labels into the config and puts annotations on the manifest; a label change rebuilds only the config', async () => {
    const flake = await makeDockerToolsFlake();
    const job = (labels: string) =>
      runAction({
        runtime: 'node24',
        inputs: {
          ...base,
          flake: flake.flake,
          attr: flake.attrs.tarGz,
          registry: registry.host,
          image: 'dt/labels',
          // docker/metadata-action's labels output, as is.
          labels,
          annotations: 'org.opencontainers.image.revision=0123abcd\norg.example.empty=x\norg.example.empty=',
        },
        github: { repository: 'acme/widget' },
        env: nixTestEnv(),
      });
    const first = await job('org.opencontainers.image.title=widget\nalpha=override\norg.opencontainers.image.description=A = sign, kept');
    expectSuccess(first);
    const config = JSON.parse(await skopeo(['inspect', '--config', '--raw', `docker://${registry.host}/dt/labels:latest`])) as { config: { Labels: Record<string, string> } };
    // The fixture's own labels keep their place; alpha takes the new value; the new ones follow in order.
    expect(Object.entries(config.config.Labels)).toEqual([
      ['zeta', '1'],
      ['alpha', 'override'],
      ['org.opencontainers.image.title', 'widget'],
      ['org.opencontainers.image.description', 'A = sign, kept'],
    ]);
    const raw = await inspectRaw(`docker://${registry.host}/dt/labels:latest`);
    expect(raw).toMatchObject({
      annotations: {
        'org.opencontainers.image.source': 'https://github.com/acme/widget',
        'org.opencontainers.image.revision': '0123abcd',
        'io.github.nix-image-action.derivation': expect.stringMatching(/-fixture-conf\.json\.drv$/),
      },
    });
    expect(Object.keys(raw.annotations ?? {})).not.toContain('org.example.empty');
    expect(first.outputs.imageid).toBe(raw.config.digest);
    expect(`sha256:${await podmanPull(`${registry.host}/dt/labels:latest`)}`).toBe(first.outputs.imageid);

    // The same derivation with another label: not the image in the registry, so the job goes on, but only
    // the config changes: every layer is known by its key.
    const second = await job('org.opencontainers.image.title=widget-2');
    expectSuccess(second);
    expect(second.main.stdout).toMatch(/image: building, no tag holds this image \(latest: made from something else\)/);
    expect(second.outputs.imageid).not.toBe(first.outputs.imageid);
    expect(metadata(second).layers).toMatchObject({ total: 3, made: 0, reused: 3, uploaded: 0 });
  });
});

describe('a multi-platform image: matrix jobs push by digest, a merge job makes the index', () => {
  it('merges an amd64 and an arm64 image into one index that skopeo reads per platform, building nothing', async () => {
    const amd = await makeDockerToolsFlake({ architecture: 'amd64', salt: 'mp-amd64' });
    const arm = await makeDockerToolsFlake({ architecture: 'arm64', salt: 'mp-arm64' });
    const image = 'dt/multi';
    const byDigest = (flake: DockerToolsFlake) =>
      runAction({ runtime: 'node24', inputs: { ...base, flake: flake.flake, attr: flake.attrs.tarGz, registry: registry.host, image, 'push-by-digest': 'true' }, env: nixTestEnv() });
    const a = await byDigest(amd);
    const b = await byDigest(arm);
    expectSuccess(a);
    expectSuccess(b);
    expect(a.outputs.digest).not.toBe(b.outputs.digest);
    expect(a.outputs.tags).toBe('');
    // Pushed by digest only: no tag was set.
    await expect(skopeo(['inspect', '--raw', `docker://${registry.host}/${image}:latest`])).rejects.toThrow();
    expect((await inspectRaw(`docker://${registry.host}/${image}@${a.outputs.digest}`)).config.digest).toBe(a.outputs.imageid);

    // The merge job: no Nix on PATH and install-nix false — it must not need one.
    const noNix = await pathWithoutNix();
    const merge = await runAction({
      runtime: 'node24',
      // The same labels as every job of the workflow: ignored, said once.
      inputs: { ...base, registry: registry.host, image, tags: 'latest\nv1', merge: `${a.outputs.digest}\n${registry.host}/${image}@${b.outputs.digest}`, 'install-nix': 'false', labels: 'org.opencontainers.image.title=mp' },
      env: { ...nixTestEnv(), PATH: noNix },
    });
    expectSuccess(merge);
    expect(merge.main.warnings).toEqual(['labels: a merge puts them nowhere (an index has no image config); they belong to the jobs that build the images, and annotations go on the index']);
    const index = JSON.parse(await skopeo(['inspect', '--raw', `docker://${registry.host}/${image}:latest`])) as {
      mediaType: string;
      manifests: { digest: string; platform: { os: string; architecture: string } }[];
    };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => [m.digest, m.platform])).toEqual([
      [a.outputs.digest, { architecture: 'amd64', os: 'linux' }],
      [b.outputs.digest, { architecture: 'arm64', os: 'linux' }],
    ]);
    expect(merge.outputs.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(JSON.parse(await skopeo(['inspect', `docker://${registry.host}/${image}:v1`, '--raw'])).manifests).toHaveLength(2);
    // skopeo picks the arm64 image out of the index.
    const dir = await mkdtemp(join(tmpdir(), 'nia-arm-'));
    await skopeo(['copy', '--override-arch', 'arm64', `docker://${registry.host}/${image}:latest`, `oci:${dir}:arm`]);
    const ociIndex = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(ociIndex.manifests[0]!.digest).toBe(b.outputs.digest);

    // An image that is not in the repository: the error names it, nothing is tagged.
    const missing = `sha256:${'0'.repeat(64)}`;
    const bad = await runAction({
      runtime: 'node24',
      inputs: { ...base, registry: registry.host, image, tags: 'broken', merge: `${a.outputs.digest}\n${missing}`, 'install-nix': 'false' },
      env: { ...nixTestEnv(), PATH: noNix },
    });
    expect(bad.main.code).not.toBe(0);
    expect(bad.main.errors).toEqual([`merge: ${missing} is not in ${image}`]);
    await expect(skopeo(['inspect', '--raw', `docker://${registry.host}/${image}:broken`])).rejects.toThrow();
  });
});
