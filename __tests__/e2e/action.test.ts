// End-to-end: the committed dist/ run as the runner runs it, on flakes built by the real Nix, pushing to
// the real Distribution registry; skopeo, an independent client, checks every digest and pulls every blob.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, type ActionRun, type Runtime } from '../support/action.js';
import { makeFixtureFlake, type FixtureKind } from '../support/flakes.js';
import { nixTestEnv } from '../support/nix.js';
import { skopeo, startFaultProxy, startRegistry, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry;
beforeAll(async () => {
  registry = await startRegistry({});
});
afterAll(async () => {
  await registry?.stop();
});

const base = { cache: 'false', insecure: 'true' };

function expectSuccess(run: ActionRun): void {
  expect(run.main.errors, run.log).toEqual([]);
  expect(run.main.code, run.log).toBe(0);
  expect(run.post?.code).toBe(0);
}

async function inspect(ref: string): Promise<{ Digest: string; Layers: string[] }> {
  return JSON.parse(await skopeo(['inspect', `docker://${ref}`])) as { Digest: string; Layers: string[] };
}

/** skopeo pulls every blob of the image back; returns the blob files it wrote. */
async function pullAll(ref: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-pull-'));
  await skopeo(['copy', `docker://${ref}`, `oci:${dir}:pulled`]);
  return readdir(join(dir, 'blobs', 'sha256'));
}

const formats: { kind: FixtureKind; layout?: 'layered' | 'buildImage' }[] = [
  { kind: 'gzip', layout: 'layered' },
  { kind: 'gzip', layout: 'buildImage' },
  { kind: 'none', layout: 'layered' },
  { kind: 'zstd', layout: 'layered' },
  { kind: 'stream', layout: 'layered' },
];
const runtimesUnderTest: Runtime[] = ['node24', 'system'];
// Named as a reader needs it: which Node each run is on (the machine's may be 20, or 24 too).
const runtimeName = (runtime: Runtime) => (runtime === 'system' ? `the machine's Node ${process.versions.node}` : 'Node 24 (node24, as action.yml declares)');

describe.each(runtimesUnderTest.map((runtime) => [runtimeName(runtime), runtime] as const))('the bundled action on %s', (_name, runtime) => {
  it.each(formats)('builds and pushes a $kind archive ($layout)', async ({ kind, layout }) => {
    const fixture = await makeFixtureFlake({ kind, layout });
    const image = `e2e/${runtime}-${kind}-${(layout ?? 'layered').toLowerCase()}`;
    const run = await runAction({
      runtime,
      inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: registry.host, image, tags: 'latest\nv1, sha-abc' },
      env: nixTestEnv(),
    });
    expectSuccess(run);

    const digest = run.outputs.digest!;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(run.outputs.image).toBe(`${registry.host}/${image}@${digest}`);
    expect(run.outputs.imageid).toBe(fixture.expected!.configDigest);
    expect(run.outputs.tags!.split('\n')).toEqual(['latest', 'v1', 'sha-abc'].map((t) => `${registry.host}/${image}:${t}`));
    expect(existsSync(run.outputs['store-path']!)).toBe(true);
    expect(run.outputs['cache-hit']).toBe('false');
    const metadata = JSON.parse(run.outputs.metadata!);
    expect(metadata).toMatchObject({ digest, imageid: fixture.expected!.configDigest, pushed: true, layers: { total: fixture.expected!.diffIDs.length } });
    expect(run.summary).toContain(digest);

    // The independent client sees the same digest under every tag, and the config's diff ids are the archive's.
    for (const tag of ['latest', 'v1', 'sha-abc']) expect((await inspect(`${registry.host}/${image}:${tag}`)).Digest).toBe(digest);
    const config = JSON.parse(await skopeo(['inspect', '--config', '--raw', `docker://${registry.host}/${image}:latest`]));
    expect(config.rootfs.diff_ids).toEqual(fixture.expected!.diffIDs);
    const blobs = await pullAll(`${registry.host}/${image}:latest`);
    const manifest = JSON.parse(await skopeo(['inspect', '--raw', `docker://${registry.host}/${image}:latest`]));
    for (const l of [manifest.config, ...manifest.layers]) expect(blobs).toContain(l.digest.slice('sha256:'.length));
  });
});

describe('pushes only what changed', () => {
  it('skips every layer the second time and computes the same digest with push: false', async () => {
    const fixture = await makeFixtureFlake({ kind: 'gzip' });
    const inputs = { ...base, flake: fixture.flake, attr: fixture.attr, registry: registry.host, image: 'e2e/again' };
    const first = await runAction({ runtime: 'node24', inputs, env: nixTestEnv() });
    expectSuccess(first);
    const second = await runAction({ runtime: 'node24', inputs, env: nixTestEnv() });
    expectSuccess(second);
    expect(second.outputs.digest).toBe(first.outputs.digest);
    const m1 = JSON.parse(first.outputs.metadata!);
    const m2 = JSON.parse(second.outputs.metadata!);
    expect(m1.layers.uploaded).toBe(3);
    expect(m2.layers).toMatchObject({ total: 3, uploaded: 0, skipped: 3, reused: 3 });
    expect(m2.bytes.uploaded).toBe(0);

    // A per-commit tag that is new: the layers still come from latest (reuse-tags' default), uncompressed.
    const third = await runAction({ runtime: 'node24', inputs: { ...inputs, tags: 'sha-3' }, env: nixTestEnv() });
    expectSuccess(third);
    expect(third.outputs.digest).toBe(first.outputs.digest);
    expect(JSON.parse(third.outputs.metadata!).layers).toMatchObject({ total: 3, uploaded: 0, skipped: 3, reused: 3, made: 0 });
    expect(third.summary).toContain('3 (0 uploaded, 3 already there, 3 of them known before reading, neither made nor compressed)');
    expect((await inspect(`${registry.host}/e2e/again:sha-3`)).Digest).toBe(first.outputs.digest);

    // push: false with tags naming two repositories: one digest for both, nothing sent to either.
    const dry = await runAction({ runtime: 'node24', inputs: { ...inputs, image: 'e2e/never-pushed', tags: `latest\n${registry.host}/e2e/never-pushed-2:1`, push: 'false' }, env: nixTestEnv() });
    expectSuccess(dry);
    expect(dry.main.warnings).toEqual([]); // the SBOM of an image not pushed is written all the same
    expect(dry.outputs.digest).toBe(first.outputs.digest);
    const dryMeta = JSON.parse(dry.outputs.metadata!);
    expect(dryMeta.pushed).toBe(false);
    expect(dryMeta.tags).toEqual([`${registry.host}/e2e/never-pushed:latest`, `${registry.host}/e2e/never-pushed-2:1`]);
    expect(dryMeta.repositories.map((r: { image: string }) => r.image)).toEqual([`${registry.host}/e2e/never-pushed@${first.outputs.digest}`, `${registry.host}/e2e/never-pushed-2@${first.outputs.digest}`]);
    expect(dryMeta.layers.compressed).toBe(3);
    await expect(inspect(`${registry.host}/e2e/never-pushed:latest`)).rejects.toThrow();
    await expect(inspect(`${registry.host}/e2e/never-pushed-2:1`)).rejects.toThrow();
  });
});

describe('bad input fails with one line and tags nothing', () => {
  const cases: { name: string; kind?: FixtureKind; inputs: Record<string, string>; error: RegExp }[] = [
    { name: 'a build output that is not an image', kind: 'not-image', inputs: {}, error: /\/nix\/store\/\S+-not-an-image is not a container image/ },
    { name: 'a failing build', kind: 'failing', inputs: {}, error: /^nix build path:\S+#docker failed: builder for '\/nix\/store\/\w+-broken-image\.drv' failed with exit code 3; last log lines: compiling\.\.\. \| error: the build is broken on purpose$/ },
    { name: 'a missing attr', inputs: { attr: 'nope' }, error: /nope/ },
    { name: 'a malformed image', inputs: { image: 'Bad Name/App' }, error: /^input image|image/ },
    { name: 'a tag with invalid characters', inputs: { tags: 'latest,bad/tag' }, error: /bad\/tag/ },
    { name: 'a tag over 128 characters', inputs: { tags: 'a'.repeat(129) }, error: /128/ },
    { name: 'a registry with a scheme', inputs: { registry: 'https://ghcr.io' }, error: /registry/ },
    { name: 'a registry with a path', inputs: { registry: 'ghcr.io/owner' }, error: /registry/ },
    { name: 'an unreachable registry', inputs: { registry: '127.0.0.1:9' }, error: /127\.0\.0\.1:9/ },
  ];
  it.each(cases)('$name', async ({ kind, inputs, error }) => {
    const fixture = await makeFixtureFlake({ kind: kind ?? 'gzip' });
    const image = `e2e/bad-${Math.random().toString(36).slice(2, 8)}`;
    const run = await runAction({
      runtime: 'node24',
      inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: registry.host, image, ...inputs },
      env: nixTestEnv(),
    });
    expect(run.main.code, run.log).not.toBe(0);
    expect(run.main.errors).toHaveLength(1);
    expect(run.main.errors[0]).not.toContain('\n');
    expect(run.main.errors[0]).toMatch(error);
    await expect(inspect(`${registry.host}/${image}:latest`)).rejects.toThrow();
  });
});

describe('registry auth through the inputs', () => {
  let secure: TestRegistry;
  beforeAll(async () => {
    secure = await startRegistry({ tls: true, auth: 'htpasswd', users: { pusher: 'pa55-word-xyz' } });
  });
  afterAll(async () => {
    await secure?.stop();
  });

  it('pushes over TLS with username and password, and never prints the password', async () => {
    const fixture = await makeFixtureFlake({ kind: 'gzip' });
    const run = await runAction({
      runtime: 'node24',
      inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: secure.host, image: 'auth/app', username: 'pusher', password: 'pa55-word-xyz' },
      env: nixTestEnv(),
    });
    expectSuccess(run);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${secure.host}/auth/app:latest`], { creds: 'pusher:pa55-word-xyz' })) as { Digest: string };
    expect(inspected.Digest).toBe(run.outputs.digest);
    // The only place the secret appears is the add-mask command that hides it.
    expect(run.rawLog.split('pa55-word-xyz').length - 1).toBe(run.rawLog.split('::add-mask::pa55-word-xyz').length - 1);
    expect(run.masks).toContain('pa55-word-xyz');
  });

  it('takes the credentials from the Docker config file that docker/login-action leaves', async () => {
    const fixture = await makeFixtureFlake({ kind: 'gzip' });
    const dockerConfig = await mkdtemp(join(tmpdir(), 'nia-docker-config-'));
    await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [secure.host]: { auth: Buffer.from('pusher:pa55-word-xyz').toString('base64') } } }));
    const run = await runAction({
      runtime: 'node24',
      inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: secure.host, image: 'auth/from-config' },
      env: nixTestEnv({ DOCKER_CONFIG: dockerConfig }),
    });
    expectSuccess(run);
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${secure.host}/auth/from-config:latest`], { creds: 'pusher:pa55-word-xyz' })) as { Digest: string };
    expect(inspected.Digest).toBe(run.outputs.digest);
  });

  it('fails in one line on a wrong password, before building, with nothing tagged', async () => {
    const fixture = await makeFixtureFlake({ kind: 'gzip' });
    const run = await runAction({
      runtime: 'node24',
      inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: secure.host, image: 'auth/wrong', username: 'pusher', password: 'not-the-password' },
      env: nixTestEnv(),
    });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([`registry ${secure.host} rejected the credentials of pusher (401)`]);
    expect(run.main.stdout).not.toContain('nix build');
    await expect(skopeo(['inspect', `docker://${secure.host}/auth/wrong:latest`], { creds: 'pusher:pa55-word-xyz' })).rejects.toThrow();
  });
});

describe('a registry that answers 500', () => {
  it('fails in one line naming the status and the blob, after retries, with nothing tagged', async () => {
    const fixture = await makeFixtureFlake({ kind: 'gzip' });
    const proxy = await startFaultProxy(registry, [{ method: 'PUT', path: /\/blobs\/uploads\//, status: 500, times: 1000, retryAfter: '0' }] /* Retry-After: 0: the registry asks for the retries at once, so the test does not wait out the backoff */);
    try {
      const run = await runAction({
        runtime: 'node24',
        inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: proxy.host, image: 'e2e/five-hundred' },
        env: nixTestEnv(),
      });
      expect(run.main.code).not.toBe(0);
      expect(run.main.errors).toHaveLength(1);
      expect(run.main.errors[0]).toMatch(
        new RegExp(`^registry ${proxy.host.replace(/\./g, '\\.')} answered 500 Internal Server Error to PUT blob sha256:[0-9a-f]{64}: UNKNOWN: injected fault 500 \\(after 8 tries\\)$`),
      );
      expect(proxy.log.some((l) => l.startsWith('PUT /v2/e2e/five-hundred/manifests/'))).toBe(false);
      await expect(inspect(`${registry.host}/e2e/five-hundred:latest`)).rejects.toThrow();
    } finally {
      await proxy.stop();
    }
  });
});

describe('a cancelled job', () => {
  it('stops mid-push on SIGINT: no compressed layer left in RUNNER_TEMP, nothing tagged, post still runs', async () => {
    const fixture = await makeFixtureFlake({ kind: 'gzip' });
    // Uploads that stop moving: the compressed layers wait in the push's spool when the runner cancels.
    const proxy = await startFaultProxy(registry, [{ method: 'PATCH', path: /\/blobs\/uploads\//, stall: 'read', times: 1000 }, { method: 'PUT', path: /\/blobs\/uploads\//, stall: 'read', times: 1000 }]);
    const spooled = async (temp: string): Promise<boolean> => {
      const entries = await readdir(temp, { recursive: true, withFileTypes: true });
      return entries.some((e) => e.isFile() && /nix-image-push-/.test(join(e.parentPath, e.name)));
    };
    try {
      const run = await runAction({
        runtime: 'node24',
        inputs: { ...base, flake: fixture.flake, attr: fixture.attr, registry: proxy.host, image: 'e2e/cancelled' },
        env: nixTestEnv(),
        cancel: { when: spooled },
      });
      expect(run.main.code).not.toBe(0);
      expect(run.main.errors).toEqual(['the step was cancelled (SIGINT): it stopped where it was, and nothing more was pushed or tagged']);
      expect(run.tempAfterMain.filter((p) => p.includes('nix-image-push-'))).toEqual([]);
      expect(run.post?.code).toBe(0);
      expect(proxy.log.some((l) => /^PUT \/v2\/e2e\/cancelled\/manifests\//.test(l))).toBe(false);
      await expect(inspect(`${registry.host}/e2e/cancelled:latest`)).rejects.toThrow();
    } finally {
      await proxy.stop();
    }
  });
});
