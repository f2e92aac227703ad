// The SBOM and provenance end to end: the bundled action with real Nix pushes a dockerTools image, writes
// its SBOM (one component per store path in the image) and provenance under RUNNER_TEMP, and, with
// sbom-attach, attaches both to the image in the registry (Distribution 2.8: the sha256-<hex> fallback
// tag). A later job of the unchanged image builds nothing and gets the same documents, byte for byte,
// from what is attached; one with nothing attached gets empty outputs. The post step is not run here, as
// it removes the files at the end of the job; the outputs are read as a later step would read them.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, type ActionRun } from '../support/action.js';
import { builtSoFar, makeDockerToolsFlake, type DockerToolsFlake } from '../support/flakes.js';
import { expectSucceeded } from '../support/expect-run.js';
import { nixTestEnv } from '../support/nix.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';
import { cyclonedxErrors, spdxErrors } from '../support/sbom-validate.js';

let registry: TestRegistry;
let flake: DockerToolsFlake;
beforeAll(async () => {
  registry = await startRegistry({});
  flake = await makeDockerToolsFlake({ salt: `documents-${Date.now()}` });
});
afterAll(async () => {
  await registry?.stop();
});

const job = (inputs: Record<string, string>): Promise<ActionRun> =>
  runAction({
    runtime: 'node24',
    inputs: { flake: flake.flake, attr: flake.attrs.tarGz, registry: registry.host, insecure: 'true', cache: 'false', ...inputs },
    env: nixTestEnv(),
    post: false,
  });

type Cdx = { metadata: { component: { type: string; version: string } }; components: { properties?: { name: string; value: string }[] }[] };
type Statement = { subject: { digest: { sha256: string } }[]; predicate: { buildDefinition: { externalParameters: Record<string, unknown> } } };

/** The referrers the fallback tag lists for an image, by artifact type. */
async function referrers(repository: string, digest: string): Promise<{ artifactType: string; digest: string }[]> {
  const raw = await skopeo(['inspect', '--raw', `docker://${registry.host}/${repository}:sha256-${digest.slice('sha256:'.length)}`]);
  return (JSON.parse(raw) as { manifests: { artifactType: string; digest: string }[] }).manifests;
}

/** The bytes of the one layer of a referrer manifest. */
async function referrerBytes(repository: string, manifestDigest: string): Promise<Buffer> {
  const manifest = JSON.parse(await skopeo(['inspect', '--raw', `docker://${registry.host}/${repository}@${manifestDigest}`])) as { layers: { digest: string }[] };
  const res = await fetch(`http://${registry.host}/v2/${repository}/blobs/${manifest.layers[0]!.digest}`);
  return Buffer.from(await res.arrayBuffer());
}

describe('the SBOM and provenance', () => {
  let first: ActionRun;
  let sbom: Buffer;
  let provenance: Buffer;

  it('a push with sbom-attach: both written under RUNNER_TEMP, the SBOM valid and naming every store path of the image, both attached', async () => {
    first = await job({ image: 'docs/app', 'sbom-attach': 'true' });
    expectSucceeded(first);
    const digest = first.outputs.digest!;
    expect(first.outputs.sbom!.startsWith(first.runnerTemp)).toBe(true);
    expect(first.outputs.provenance!.startsWith(first.runnerTemp)).toBe(true);
    sbom = await readFile(first.outputs.sbom!);
    provenance = await readFile(first.outputs.provenance!);

    const doc = JSON.parse(sbom.toString('utf8')) as Cdx;
    expect(await cyclonedxErrors(doc)).toBeNull();
    expect(doc.metadata.component.type).toBe('container');
    expect(doc.metadata.component.version).toBe(digest);
    const listed = new Set(doc.components.flatMap((c) => (c.properties ?? []).filter((p) => p.name === 'nix:store_path').map((p) => p.value)));
    // Every store path of the store layers (the last layer is the customisation layer: its links count).
    const layers = (JSON.parse(first.outputs.metadata!) as { layers: { list: { storePaths?: string[] }[] } }).layers.list;
    const storeLayerPaths = layers.slice(0, -1).flatMap((l) => l.storePaths ?? []);
    expect(storeLayerPaths.length).toBeGreaterThan(0);
    for (const path of storeLayerPaths) expect(listed, `${path} missing from the SBOM`).toContain(path);

    const statement = JSON.parse(provenance.toString('utf8')) as Statement;
    expect(statement.subject[0]!.digest.sha256).toBe(digest.slice('sha256:'.length));
    expect(JSON.stringify(statement.predicate.buildDefinition.externalParameters)).toContain(flake.attrs.tarGz);

    // Attached: the fallback tag lists the SBOM and the statement, each holding exactly the file's bytes.
    const listedReferrers = await referrers('docs/app', digest);
    const byType = new Map(listedReferrers.map((r) => [r.artifactType, r.digest]));
    expect([...byType.keys()].sort()).toEqual(['application/vnd.cyclonedx+json', 'application/vnd.in-toto+json']);
    expect((await referrerBytes('docs/app', byType.get('application/vnd.cyclonedx+json')!)).equals(sbom)).toBe(true);
    expect((await referrerBytes('docs/app', byType.get('application/vnd.in-toto+json')!)).equals(provenance)).toBe(true);
    expect(first.summary).toMatch(/SBOM \(CycloneDX 1\.6\) of \d+ component\(s\)/);
    expect(first.summary).toMatch(/attached as 2 OCI referrer\(s\)/);
  });

  it('an unchanged image: nothing built, the same documents byte for byte, from what is attached', async () => {
    const before = await builtSoFar(flake);
    const again = await job({ image: 'docs/app', 'sbom-attach': 'true' });
    expectSucceeded(again);
    expect(again.outputs.digest).toBe(first.outputs.digest);
    expect(JSON.parse(again.outputs.metadata!).format).toBe('already in the registry');
    expect(await builtSoFar(flake)).toEqual(before);
    expect((await readFile(again.outputs.sbom!)).equals(sbom)).toBe(true);
    expect((await readFile(again.outputs.provenance!)).equals(provenance)).toBe(true);
    // Nothing attached twice.
    expect(await referrers('docs/app', first.outputs.digest!)).toHaveLength(2);
  });

  it('spdx without attaching: a valid SPDX 2.3 file, nothing in the registry; the unchanged image then has empty outputs', async () => {
    const spdx = await job({ image: 'docs/spdx', sbom: 'spdx' });
    expectSucceeded(spdx);
    // Attaching never changes the image: the same digest with and without sbom-attach.
    expect(spdx.outputs.digest).toBe(first.outputs.digest);
    const doc = JSON.parse(await readFile(spdx.outputs.sbom!, 'utf8')) as { spdxVersion: string };
    expect(doc.spdxVersion).toBe('SPDX-2.3');
    expect(await spdxErrors(doc)).toBeNull();
    expect(existsSync(spdx.outputs.provenance!)).toBe(true);
    await expect(referrers('docs/spdx', spdx.outputs.digest!)).rejects.toThrow();

    const unchanged = await job({ image: 'docs/spdx', sbom: 'spdx' });
    expectSucceeded(unchanged);
    expect(JSON.parse(unchanged.outputs.metadata!).format).toBe('already in the registry');
    expect(unchanged.outputs.sbom).toBe('');
    expect(unchanged.outputs.provenance).toBe('');
    expect(unchanged.summary).toMatch(/no SBOM or provenance is attached to/i);
  });

  it('sbom-attach on an image pushed without them: nothing is built just to write them; the outputs are empty and the summary says why', async () => {
    const plain = await job({ image: 'docs/late' });
    expectSucceeded(plain);
    const before = await builtSoFar(flake);
    const late = await job({ image: 'docs/late', 'sbom-attach': 'true' });
    expectSucceeded(late);
    expect(JSON.parse(late.outputs.metadata!).format).toBe('already in the registry');
    expect(await builtSoFar(flake)).toEqual(before);
    expect(late.outputs.digest).toBe(plain.outputs.digest);
    expect(late.outputs.sbom).toBe('');
    expect(late.outputs.provenance).toBe('');
    expect(late.summary).toMatch(/no SBOM or provenance is attached to .*sbom-attach: true attaches them when an image is pushed/i);
    expect(late.main.warnings).toEqual([expect.stringMatching(/^sbom-attach: the image is unchanged and already in the registry, with no SBOM or provenance attached/)]);
    await expect(referrers('docs/late', late.outputs.digest!)).rejects.toThrow();
  });

  it('sbom: false writes no SBOM, the provenance all the same', async () => {
    const none = await job({ image: 'docs/none', sbom: 'false' });
    expectSucceeded(none);
    expect(none.outputs.sbom).toBe('');
    expect(JSON.parse(await readFile(none.outputs.provenance!, 'utf8')).predicateType).toBe('https://slsa.dev/provenance/v1');
  });
});
