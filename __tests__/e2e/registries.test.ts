// One step, several registries: tags as docker/metadata-action writes them (full references, mixed with
// bare tags). The image is built once and pushed to every repository with one digest: a second repository
// of the same registry mounts the layers, another registry gets them uploaded; credentials per registry
// (the inputs for the registry input's host, the Docker config for the others); a registry without
// credentials fails before the build, naming it, with nothing tagged anywhere.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction } from '../support/action.js';
import { makeDockerToolsFlake, type DockerToolsFlake } from '../support/flakes.js';
import { nixTestEnv } from '../support/nix.js';
import { skopeo, startFaultProxy, startRegistry, type TestRegistry } from '../support/registry.js';

let open: TestRegistry;
let locked: TestRegistry;
let other: TestRegistry;
let selfSigned: TestRegistry;
let flake: DockerToolsFlake;
beforeAll(async () => {
  open = await startRegistry({});
  selfSigned = await startRegistry({ tls: true });
  locked = await startRegistry({ auth: 'htpasswd', users: { hub: 'hub-Pa55-word' } });
  other = await startRegistry({ auth: 'htpasswd', users: { nobody: 'never-given' } });
  flake = await makeDockerToolsFlake();
});
afterAll(async () => {
  await Promise.all([open?.stop(), locked?.stop(), other?.stop(), selfSigned?.stop()]);
});

async function dockerConfigFor(host: string, user: string, password: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-docker-config-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
  return dir;
}

const digestOf = async (ref: string, creds?: string) => (JSON.parse(await skopeo(['inspect', `docker://${ref}`], creds ? { creds } : {})) as { Digest: string }).Digest;

describe('tags naming several registries and repositories', () => {
  it('builds once and pushes one digest to every reference: mounted within a registry, uploaded to another', async () => {
    // The other registry answers one blob upload with a 500: sent again, and counted in the metadata.
    const hub = await startFaultProxy(locked, [{ method: 'PUT', path: /\/blobs\/uploads\//, status: 500, times: 1, retryAfter: '0' }]);
    const dockerConfig = await dockerConfigFor(hub.host, 'hub', 'hub-Pa55-word');
    const tags = ['latest', `${open.host}/multi/app:v1`, `${open.host}/multi/other:v1`, `${hub.host}/mirror/app:v1`].join('\n');
    const run = await runAction({
      runtime: 'node24',
      inputs: { cache: 'false', insecure: 'true', 'insecure-registries': hub.host, flake: flake.flake, attr: flake.attrs.tarGz, registry: open.host, image: 'multi/app', tags },
      env: nixTestEnv({ DOCKER_CONFIG: dockerConfig }),
    }).finally(() => hub.stop());
    expect(run.main.errors, run.log).toEqual([]);
    expect(run.main.code).toBe(0);
    const digest = run.outputs.digest!;
    expect(run.outputs.image).toBe(`${open.host}/multi/app@${digest}`);
    expect(run.outputs.tags!.split('\n')).toEqual([`${open.host}/multi/app:latest`, `${open.host}/multi/app:v1`, `${open.host}/multi/other:v1`, `${hub.host}/mirror/app:v1`]);
    for (const ref of [`${open.host}/multi/app:latest`, `${open.host}/multi/app:v1`, `${open.host}/multi/other:v1`]) expect(await digestOf(ref)).toBe(digest);
    expect(await digestOf(`${locked.host}/mirror/app:v1`, 'hub:hub-Pa55-word')).toBe(digest);

    const m = JSON.parse(run.outputs.metadata!) as { repositories: { image: string; layers: { uploaded: number; mounted: number }; bytes: { uploaded: number } }[]; retries: { total: number; causes: Record<string, number> } };
    expect(m.repositories.map((r) => r.image)).toEqual([`${open.host}/multi/app@${digest}`, `${open.host}/multi/other@${digest}`, `${hub.host}/mirror/app@${digest}`]);
    // Requests sent again to any repository are counted, not only the first's.
    expect(m.retries).toMatchObject({ total: 1, causes: { '500': 1 } });
    // Within the first registry the second repository mounts every layer; the other registry gets them uploaded.
    expect(m.repositories[0]!.layers.uploaded).toBe(3);
    expect(m.repositories[1]!.layers).toMatchObject({ uploaded: 0, mounted: 3 });
    expect(m.repositories[2]!.layers.uploaded).toBe(3);
    expect(run.summary).toContain('The same image in 3 repositories');
  });

  it('fails before the build, naming the registry whose credentials are missing, with nothing tagged anywhere', async () => {
    const records = join(flake.records, 'builds');
    const before = await readFile(records, 'utf8');
    const run = await runAction({
      runtime: 'node24',
      inputs: { cache: 'false', insecure: 'true', 'insecure-registries': other.host, flake: flake.flake, attr: flake.attrs.tarGz, registry: open.host, image: 'multi/none', tags: `latest\n${other.host}/multi/none:v1` },
      env: nixTestEnv(),
    });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toHaveLength(1);
    expect(run.main.errors[0]).toBe(`registry ${other.host} requires a user name and password: log in to it before this step (docker/login-action with registry: ${other.host}): its Docker config entry is used`);
    expect(run.main.stdout).not.toMatch(/image: building/);
    expect(await readFile(records, 'utf8')).toBe(before);
    await expect(skopeo(['inspect', `docker://${open.host}/multi/none:latest`])).rejects.toThrow();
  });

  it('keeps TLS verification for every host but the registry input\'s: insecure does not reach a self-signed registry named only in tags', async () => {
    const records = join(flake.records, 'builds');
    const before = await readFile(records, 'utf8');
    const inputs = { cache: 'false', insecure: 'true', flake: flake.flake, attr: flake.attrs.tarGz, registry: open.host, image: 'tls/app', tags: `latest\n${selfSigned.host}/tls/app:v1` };
    const refused = await runAction({ runtime: 'node24', inputs, env: nixTestEnv() });
    expect(refused.main.code).not.toBe(0);
    expect(refused.main.errors).toHaveLength(1);
    expect(refused.main.errors[0]).toContain(selfSigned.host);
    expect(refused.main.errors[0]).toMatch(/certificate/i);
    expect(await readFile(records, 'utf8')).toBe(before); // nothing built
    await expect(skopeo(['inspect', `docker://${open.host}/tls/app:latest`])).rejects.toThrow();

    // Named in insecure-registries, the same host is reached, and the image goes to both.
    const allowed = await runAction({ runtime: 'node24', inputs: { ...inputs, 'insecure-registries': selfSigned.host }, env: nixTestEnv() });
    expect(allowed.main.errors, allowed.log).toEqual([]);
    expect(await digestOf(`${selfSigned.host}/tls/app:v1`)).toBe(allowed.outputs.digest);
    expect(await digestOf(`${open.host}/tls/app:latest`)).toBe(allowed.outputs.digest);
  });
});
