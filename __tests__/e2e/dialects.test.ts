// The bundled action against a registry that creates no repository on push (ECR's dialect, played by the
// fault proxy in front of the real registry): the step fails before anything is built, in one line
// saying how to create the repository, and the request log shows the one upload session it tried.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction } from '../support/action.js';
import { makeDockerToolsFlake, type DockerToolsFlake } from '../support/flakes.js';
import { nixTestEnv } from '../support/nix.js';
import { dialect, startFaultProxy, startRegistry, type FaultProxy, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry;
let proxy: FaultProxy;
let flake: DockerToolsFlake;
beforeAll(async () => {
  registry = await startRegistry({});
  proxy = await startFaultProxy(registry, dialect(registry, 'ecr-missing-repo', { repository: 'team/missing' }));
  flake = await makeDockerToolsFlake();
});
afterAll(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('a repository the registry does not create on push', () => {
  it('fails the step before the build, saying how to create it', async () => {
    const records = join(flake.records, 'builds');
    const before = await readFile(records, 'utf8');
    const run = await runAction({
      runtime: 'node24',
      inputs: { cache: 'false', insecure: 'true', flake: flake.flake, attr: flake.attrs.tarGz, registry: proxy.host, image: 'team/missing', tags: 'latest' },
      env: nixTestEnv(),
    });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([
      `registry ${proxy.host} has no repository team/missing (ECR creates none on push: create it first, e.g. aws ecr create-repository --repository-name team/missing; ` +
        `404: NAME_UNKNOWN: The repository with name 'team/missing' does not exist in the registry with id '123456789012')`,
    ]);
    expect(run.main.stdout).not.toMatch(/image: building/);
    expect(await readFile(records, 'utf8')).toBe(before);
    expect(proxy.log).toEqual(['GET /v2/ → 200', 'POST /v2/team/missing/blobs/uploads/ → 404']);
  });
});
