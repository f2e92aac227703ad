// End to end, real Nix, the bundled action on Node 24 (whose node:zlib compresses zstd): `compression: zstd`
// pushes an image of zstd layers in an OCI manifest that podman pulls, each layer inflating to the diff id
// its config names, the config (and so every diff id) the gzip push's; a gzip and a zstd push to one
// repository never share a blob, and each gives the digest it gives alone; a push to two registries
// compresses each layer once. On the machine's Node (20 here: no zstd in node:zlib) the zstd command
// compresses and inflates instead, and without it the step fails in one line.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, runtimes, type ActionRun } from '../support/action.js';
import { podmanPull } from '../support/clients.js';
import { makeDockerToolsFlake, type DockerToolsFlake } from '../support/flakes.js';
import { nixTestEnv } from '../support/nix.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';

const exec = promisify(execFile);
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

let registry: TestRegistry;
let fixture: DockerToolsFlake;
beforeAll(async () => {
  registry = await startRegistry({});
  fixture = await makeDockerToolsFlake();
});
afterAll(async () => registry?.stop());

interface Metadata {
  digest: string;
  imageid: string;
  layers: { total: number; made: number; uploaded: number; reused: number; compressed: number; list: { digest: string; diffID: string; action: string }[] };
  repositories: { image: string; layers: { uploaded: number } }[];
}
const metadata = (r: ActionRun): Metadata => JSON.parse(r.outputs.metadata!) as Metadata;

function expectSuccess(r: ActionRun): void {
  expect(r.main.errors, r.log).toEqual([]);
  expect(r.main.code, r.log).toBe(0);
}

const push = (image: string, more: Record<string, string> = {}, opts: { runtime?: 'node24' | 'system'; env?: Record<string, string> } = {}) =>
  runAction({
    runtime: opts.runtime ?? 'node24',
    inputs: { cache: 'false', insecure: 'true', flake: fixture.flake, attr: fixture.attrs.tarGz, registry: registry.host, image, tags: 'latest', ...more },
    env: nixTestEnv(opts.env),
  });

const raw = async (ref: string) => JSON.parse(await skopeo(['inspect', '--raw', `docker://${ref}`])) as { mediaType: string; config: { digest: string }; layers: { mediaType: string; digest: string }[] };
const diffIDs = async (ref: string) => (JSON.parse(await skopeo(['inspect', '--config', '--raw', `docker://${ref}`])) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;

/** Every layer blob of `ref`, copied out by skopeo as it is, inflated by zstd or gzip (not this action's
 *  code) and hashed. */
async function inflatedDiffIDs(ref: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-zstd-oci-'));
  await skopeo(['copy', `docker://${ref}`, `oci:${dir}:image`]);
  const manifest = await raw(ref);
  const out: string[] = [];
  for (const l of manifest.layers) {
    const file = join(dir, 'blobs', 'sha256', l.digest.slice('sha256:'.length));
    const bytes = l.mediaType === ZSTD ? (await exec('zstd', ['-d', '-c', '-q', file], { encoding: 'buffer', maxBuffer: 256 << 20 })).stdout : gunzipSync(await readFile(file));
    out.push(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  }
  return out;
}

describe('compression: zstd', () => {
  it('pushes zstd layers podman pulls, holding the diff ids of the gzip push of the same image', async () => {
    const gz = await push('zs/gzip');
    const zs = await push('zs/zstd', { compression: 'zstd' });
    expectSuccess(gz);
    expectSuccess(zs);
    const ref = `${registry.host}/zs/zstd:latest`;
    const manifest = await raw(ref);
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([ZSTD, ZSTD, ZSTD]);
    expect((await raw(`${registry.host}/zs/gzip:latest`)).layers.map((l) => l.mediaType)).toEqual([GZIP, GZIP, GZIP]);
    // One config: the same diff ids, every one of them what its zstd blob inflates to.
    expect(zs.outputs.imageid).toBe(gz.outputs.imageid);
    expect(zs.outputs.digest).not.toBe(gz.outputs.digest);
    const ids = await diffIDs(ref);
    expect(ids).toEqual(await diffIDs(`${registry.host}/zs/gzip:latest`));
    expect(await inflatedDiffIDs(ref)).toEqual(ids);
    expect(metadata(zs).layers.list.map((l) => l.diffID)).toEqual(ids);
    expect(metadata(zs).layers.list.map((l) => l.digest)).toEqual(manifest.layers.map((l) => l.digest));
    // podman checks each layer against its diff id as it unpacks it.
    expect(`sha256:${await podmanPull(ref)}`).toBe(zs.outputs.imageid);
  });

  it('gzip then zstd to one repository: two images whose layers do not mix, each with the digest it has alone', async () => {
    const image = 'zs/mix';
    const gz = await push(image, { tags: 'gzip' });
    const zs = await push(image, { tags: 'zstd', 'reuse-tags': 'gzip', compression: 'zstd' });
    // And again, each reading the other's tag first.
    const gzAgain = await push(image, { tags: 'gzip-again', 'reuse-tags': 'zstd' });
    const zsAgain = await push(image, { tags: 'zstd-again', 'reuse-tags': 'gzip', compression: 'zstd:3' });
    for (const r of [gz, zs, gzAgain, zsAgain]) expectSuccess(r);
    // Each job made every layer: neither the other's image (the same derivation, other settings) nor its
    // layers were its own to take.
    for (const r of [zs, gzAgain, zsAgain]) expect(metadata(r).layers).toMatchObject({ total: 3, made: 3, reused: 0 });
    expect(gzAgain.outputs.digest).toBe(gz.outputs.digest);
    expect(zsAgain.outputs.digest).toBe(zs.outputs.digest);
    // Its own image it finds: the zstd job with the zstd tag to read builds nothing and only tags.
    const again = await push(image, { tags: 'zstd-3', 'reuse-tags': 'zstd', compression: 'zstd' });
    expectSuccess(again);
    expect(again.log).toMatch(/image: already in the registry, nothing to build/);
    expect(again.outputs.digest).toBe(zs.outputs.digest);
    const gzip = await Promise.all(['gzip', 'gzip-again'].map((t) => raw(`${registry.host}/${image}:${t}`)));
    const zstd = await Promise.all(['zstd', 'zstd-again'].map((t) => raw(`${registry.host}/${image}:${t}`)));
    for (const m of gzip) expect(m.layers.map((l) => l.mediaType)).toEqual([GZIP, GZIP, GZIP]);
    for (const m of zstd) expect(m.layers.map((l) => l.mediaType)).toEqual([ZSTD, ZSTD, ZSTD]);
    const gzipBlobs = new Set(gzip.flatMap((m) => m.layers.map((l) => l.digest)));
    expect(zstd.flatMap((m) => m.layers.map((l) => l.digest)).filter((d) => gzipBlobs.has(d))).toEqual([]);
    expect(await inflatedDiffIDs(`${registry.host}/${image}:zstd-again`)).toEqual(await diffIDs(`${registry.host}/${image}:gzip`));
  });

  it('to two registries: each layer compressed once, the same digest in both', async () => {
    const second = await startRegistry({});
    try {
      const tags = ['latest', `${second.host}/zs/copy:v1`].join('\n');
      const r = await push('zs/two', { tags, 'insecure-registries': second.host, compression: 'zstd' });
      expectSuccess(r);
      const m = metadata(r);
      expect(m.layers).toMatchObject({ total: 3, made: 3, compressed: 3 });
      expect(m.repositories.map((x) => x.image)).toEqual([`${registry.host}/zs/two@${m.digest}`, `${second.host}/zs/copy@${m.digest}`]);
      expect(m.repositories.map((x) => x.layers.uploaded)).toEqual([3, 3]);
      const copy = `${second.host}/zs/copy:v1`;
      expect((await raw(copy)).layers.map((l) => l.mediaType)).toEqual([ZSTD, ZSTD, ZSTD]);
      expect(`sha256:${await podmanPull(copy)}`).toBe(r.outputs.imageid);
    } finally {
      await second.stop();
    }
  });

  it("on a Node without zstd in node:zlib, compresses and checks with the zstd command, or fails in one line without it", async () => {
    const native = (await exec(runtimes.system, ['-p', "typeof require('node:zlib').zstdCompress"])).stdout.trim() === 'function';
    // Another tool's zstd image of the same layers, in another repository: a claim, inflated and hashed before it is mounted.
    const tar = JSON.parse((await exec('nix', ['build', '--no-link', '--json', `${fixture.flake}#${fixture.attrs.tar}`], { env: { ...process.env, ...nixTestEnv() } })).stdout) as { outputs: { out: string } }[];
    await skopeo(['copy', '--dest-compress-format', 'zstd', `docker-archive:${tar[0]!.outputs.out}`, `docker://${registry.host}/zs/theirs:latest`]);
    const r = await push('zs/system', { compression: 'zstd', 'reuse-tags': 'zs/theirs:latest' }, { runtime: 'system' });
    expectSuccess(r);
    expect(r.log).toContain(native ? "by Node's own libzstd" : 'by the zstd command');
    // The customisation layer's diff id is known before it is made (its checksum): skopeo's blob for it is
    // inflated and hashed, then mounted. The store layers are known only by their keys, which skopeo's
    // manifest does not carry: they are made.
    expect(metadata(r).layers, r.log).toMatchObject({ total: 3, mounted: 1, verified: 1, made: 2 });
    const ref = `${registry.host}/zs/system:latest`;
    expect((await raw(ref)).layers.map((l) => l.mediaType)).toEqual([ZSTD, ZSTD, ZSTD]);
    expect(await inflatedDiffIDs(ref)).toEqual(await diffIDs(ref));
    // With nothing to reuse, it makes every layer.
    const made = await push('zs/system-made', { compression: 'zstd' }, { runtime: 'system' });
    expectSuccess(made);
    expect(metadata(made).layers).toMatchObject({ total: 3, made: 3 });
    expect(await inflatedDiffIDs(`${registry.host}/zs/system-made:latest`)).toEqual(await diffIDs(ref));
    expect(`sha256:${await podmanPull(`${registry.host}/zs/system-made:latest`)}`).toBe(made.outputs.imageid);

    // The same PATH without the zstd command (every other command still there).
    const bin = await mkdtemp(join(tmpdir(), 'nia-no-zstd-'));
    await mkdir(join(bin, 'usr-bin'));
    for (const name of await readdir('/usr/bin')) if (name !== 'zstd') await symlink(join('/usr/bin', name), join(bin, 'usr-bin', name));
    const path = (process.env.PATH ?? '').split(':').filter((d) => !['/usr/bin', '/bin'].includes(d)).concat(join(bin, 'usr-bin')).join(':');
    const without = await push('zs/no-zstd', { compression: 'zstd' }, { runtime: 'system', env: { PATH: path } });
    if (native) {
      expectSuccess(without);
    } else {
      expect(without.main.code).toBe(1);
      expect(without.main.errors).toEqual([expect.stringMatching(/^compression zstd: Node v[\d.]+ has no zstd in node:zlib and no zstd command on PATH; run on Node 24 \(as the action does\) or install zstd$/)]);
      // Never gzip instead: nothing was pushed.
      await expect(raw(`${registry.host}/zs/no-zstd:latest`)).rejects.toThrow();
    }
  });
});
