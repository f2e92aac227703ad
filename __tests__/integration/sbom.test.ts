// The SBOM is exact, with real Nix 2.8: on a dockerTools-shaped flake it lists exactly the image's store
// paths (the plan's store layers and what the customisation layer links to, as the system's tar lists
// them), with the NAR hashes `nix path-info --json` reports and the references Nix records; the archive
// way (dockerTools' history comments, or no comments at all: the layers' top directories under
// /nix/store) gives the same. Every document validates (CycloneDX 1.6 strict, SPDX 2.3 schema), and the
// provenance carries the flake's lock as `nix flake metadata --json` reports it.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { fixtureStorePath, makeImageArchive } from '../support/archives.js';
import { makeClosureFlake, makeDockerToolsFlake, type DockerToolsFlake } from '../support/flakes.js';
import { nixTestEnv } from '../support/nix.js';
import { cyclonedxErrors, spdxErrors } from '../support/sbom-validate.js';
import { readLayers } from '../../src/image/archive.js';
import { detectSource } from '../../src/image/format.js';
import { archiveInput, historyStorePaths } from '../../src/image/input.js';
import { pushImage } from '../../src/registry/push.js';
import { archiveStorePaths, imageStorePaths } from '../../src/image/store-paths.js';
import { realisePlan, recogniseImage, type LayerPlan } from '../../src/nix/dockertools.js';
import { sha256Hex, storePathFacts } from '../../src/nix/sbom-data.js';
import { writeImageDocuments } from '../../src/report/documents.js';

const run = promisify(execFile);
const env = { ...process.env, ...nixTestEnv() };
const subject = { registry: '127.0.0.1:5000', repository: 'sbom/fixture', digest: `sha256:${'d'.repeat(64)}` };

async function nixJson<T>(args: string[]): Promise<T> {
  return JSON.parse((await run('nix', args, { env, maxBuffer: 64 * 1024 * 1024 })).stdout) as T;
}

async function build(installable: string): Promise<string> {
  return (await nixJson<{ outputs: { out: string } }[]>(['build', '--no-link', '--json', installable]))[0]!.outputs.out;
}

/** What `nix path-info --json` (Nix 2.8: an array) says of the paths: narHash and references, by path. */
async function pathInfo(paths: string[]): Promise<Map<string, { narHash: string; references: string[] }>> {
  const rows = await nixJson<{ path: string; narHash: string; references: string[] }[]>(['path-info', '--json', ...paths]);
  return new Map(rows.map((r) => [r.path, { narHash: r.narHash, references: r.references }]));
}

/** The store paths the symlinks of a layer.tar point into, as the system's tar lists them. */
async function linkTargets(layerTar: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tvf', layerTar]);
  return [...stdout.matchAll(/ -> (\/nix\/store\/[^/\s]+)/g)].map((m) => m[1]!);
}

/** A layer visitor that reads each layer to its end and keeps nothing. */
const drain = (_e: unknown, open: () => NodeJS.ReadableStream): Promise<void> =>
  new Promise((resolve, reject) => {
    const body = open();
    body.on('end', () => resolve());
    body.on('error', reject);
    body.resume();
  });

type Cdx = {
  metadata: { component: { type: string; version: string } };
  components: { 'bom-ref': string; name: string; version?: string; hashes?: { content: string }[]; properties: { name: string; value: string }[] }[];
  dependencies: { ref: string; dependsOn: string[] }[];
};

/** The SBOM against Nix: exactly `expected`, each with Nix's NAR hash and references. */
async function expectExact(doc: Cdx, expected: string[]): Promise<void> {
  expect(doc.components.map((c) => c['bom-ref']).sort()).toEqual([...expected].sort());
  const info = await pathInfo(expected);
  for (const c of doc.components) {
    const nix = info.get(c['bom-ref'])!;
    expect(c.hashes).toEqual([{ alg: 'SHA-256', content: sha256Hex(nix.narHash) }]);
    expect(c.properties).toContainEqual({ name: 'nix:nar_hash', value: nix.narHash });
    const deps = doc.dependencies.find((d) => d.ref === c['bom-ref'])!.dependsOn;
    expect(deps.sort()).toEqual(nix.references.filter((r) => r !== c['bom-ref']).sort());
  }
  expect(doc.metadata.component).toMatchObject({ type: 'container', version: subject.digest });
}

describe('a dockerTools image', () => {
  let flake: DockerToolsFlake;
  let plan: LayerPlan;
  let storePaths: string[];

  beforeAll(async () => {
    flake = await makeDockerToolsFlake();
    const drvPath = (await nixJson<Record<string, unknown>>(['show-derivation', `${flake.flake}#${flake.attrs.stream}`])) as Record<string, unknown>;
    const recognised = await recogniseImage(Object.keys(drvPath)[0]!);
    const realised = await realisePlan(recognised.image!, 'nix', env);
    plan = realised.plan!;
    // The push's layers: the plan's store layers, then the customisation layer.
    storePaths = (await imageStorePaths({ layers: [...plan.storeLayers, [plan.customisationLayer]] }))!;
  });

  it('lists exactly the store layers\' paths and what the customisation layer links to', async () => {
    const links = await linkTargets(join(plan.customisationLayer, 'layer.tar'));
    expect(links.length).toBeGreaterThan(0);
    expect(storePaths).toEqual([...new Set([...plan.storeLayers.flat(), ...links])].sort());
    expect(storePaths).not.toContain(plan.customisationLayer);
    const base = await build(`${flake.flake}#base`);
    const app = await build(`${flake.flake}#app`);
    expect(storePaths).toEqual([base, app].sort());
  });

  it('CycloneDX: each store path with the NAR hash and references Nix records, names parsed as Nix parses them; valid 1.6', async () => {
    const tmpDir = await mkdtemp(join(tmpdir(), 'nia-sbom-'));
    const docs = await writeImageDocuments({ nix: 'nix', env, flake: flake.flake, attr: flake.attrs.stream, buildArgs: [], storePaths, subject, format: 'cyclonedx', tmpDir, nixVersion: '2.8.0' });
    expect(docs.sbom).toMatchObject({ path: join(tmpDir, 'sbom.cdx.json'), format: 'cyclonedx', components: 2 });
    const text = await readFile(docs.sbom!.path, 'utf8');
    expect(await cyclonedxErrors(text)).toBeNull();
    const doc = JSON.parse(text) as Cdx;
    await expectExact(doc, storePaths);
    // fixture-base has no version; fixture-app-1 has version 1 (builtins.parseDrvName); their .drv have no pname.
    expect(doc.components.map((c) => [c.name, c.version ?? ''])).toEqual(expect.arrayContaining([['fixture-base', ''], ['fixture-app', '1']]));
    const app = doc.components.find((c) => c.name === 'fixture-app')!;
    const drv = (await nixJson<{ deriver: string }[]>(['path-info', '--json', app['bom-ref']]))[0]!.deriver;
    expect(app.properties).toContainEqual({ name: 'nix:drv_path', value: drv });
    expect(app.properties).toContainEqual({ name: 'nix:store_path', value: app['bom-ref'] });
  });

  it('SPDX: the same paths and hashes; valid against the SPDX 2.3 schema', async () => {
    const tmpDir = await mkdtemp(join(tmpdir(), 'nia-sbom-'));
    const docs = await writeImageDocuments({ nix: 'nix', env, flake: flake.flake, attr: flake.attrs.stream, buildArgs: [], storePaths, subject, format: 'spdx', tmpDir });
    const text = await readFile(docs.sbom!.path, 'utf8');
    expect(await spdxErrors(text)).toBeNull();
    const doc = JSON.parse(text) as { packages: { SPDXID: string; checksums?: { checksumValue: string }[]; externalRefs: { referenceType: string; referenceLocator: string }[] }[] };
    const info = await pathInfo(storePaths);
    const listed = doc.packages.filter((p) => p.SPDXID !== 'SPDXRef-Image');
    expect(listed.map((p) => p.externalRefs.find((r) => r.referenceType === 'nix-store-path')!.referenceLocator).sort()).toEqual(storePaths);
    for (const p of listed) {
      const path = p.externalRefs.find((r) => r.referenceType === 'nix-store-path')!.referenceLocator;
      expect(p.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: sha256Hex(info.get(path)!.narHash) }]);
    }
  });

  it('the provenance: the flake\'s locked reference and narHash as nix flake metadata reports them, the attr, the derivation', async () => {
    const tmpDir = await mkdtemp(join(tmpdir(), 'nia-sbom-'));
    const docs = await writeImageDocuments({
      nix: 'nix', env, flake: flake.flake, attr: flake.attrs.stream, buildArgs: ['-L'], storePaths, subject, format: false, tmpDir,
      drvPath: '/nix/store/xxx-stream-fixture.drv',
      runnerEnv: { GITHUB_REPOSITORY: 'acme/app', GITHUB_SHA: 'a'.repeat(40), GITHUB_RUN_ID: '7', GITHUB_RUN_ATTEMPT: '1', GITHUB_SERVER_URL: 'https://github.com', GITHUB_WORKFLOW_REF: 'acme/app/.github/workflows/image.yml@refs/heads/main' },
    });
    expect(docs.sbom).toBeUndefined();
    expect(docs.notes).toEqual(['no SBOM: the sbom input is false']);
    const statement = JSON.parse(await readFile(docs.provenance!.statement, 'utf8')) as { subject: unknown; predicate: { buildDefinition: { externalParameters: Record<string, unknown>; resolvedDependencies: { name: string; uri: string; digest?: Record<string, string> }[] } } };
    expect(JSON.parse(await readFile(docs.provenance!.predicate, 'utf8'))).toEqual(statement.predicate);
    expect(statement.subject).toEqual([{ name: `${subject.registry}/${subject.repository}`, digest: { sha256: 'd'.repeat(64) } }]);
    expect(statement.predicate.buildDefinition.externalParameters).toMatchObject({ flake: flake.flake, attr: flake.attrs.stream, buildArgs: ['-L'] });
    const meta = await nixJson<{ url: string; locked: { narHash: string } }>(['flake', 'metadata', '--json', flake.flake]);
    const dep = statement.predicate.buildDefinition.resolvedDependencies.find((d) => d.name === 'flake')!;
    expect(dep.uri).toBe(meta.url);
    expect(dep.digest).toEqual({ sha256: sha256Hex(meta.locked.narHash) });
    expect(statement.predicate.buildDefinition.resolvedDependencies.find((d) => d.name === 'source')).toEqual({ name: 'source', uri: 'git+https://github.com/acme/app', digest: { gitCommit: 'a'.repeat(40) } });
  });

  it('the archive way gives the same paths: from the history comments, and from the layers themselves', async () => {
    const source = await detectSource(await build(`${flake.flake}#${flake.attrs.tarGz}`));
    const meta = await readLayers(source, drain);
    const fromHistory = await imageStorePaths({ layers: historyStorePaths(meta.config.bytes) });
    expect(fromHistory).toEqual(storePaths);
    expect(await archiveStorePaths(source)).toEqual(storePaths);
  });
});

describe('the store paths of archives of every layout, as the push reads them', () => {
  const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
  // Large enough that a plain .tar's layers are still compressing when the archive walk returns.
  const layers = [0, 1, 2].map((i) => ({ size: 12 * 1024 * 1024, seed: `scan-${i}`, compressible: true }));

  it.each([
    ['layered', 'none'],
    ['layered', 'gzip'],
    ['buildImage', 'none'],
  ] as const)('%s layout, %s: every layer read lists its paths, and a layer not read is found again even when its directory is not its diff id', async (layout, compression) => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-scan-'));
    const made = await makeImageArchive({ dir, name: 'scan', compression, layout, layers, noHistoryPaths: true });
    const source = await detectSource(made.path);
    const pushed = await pushImage({ input: archiveInput(source, { scanStorePaths: true }), tags: ['latest'], logger: quiet, tmpDir: dir });
    // Each layer holds one store path, <hash>-<seed> (support/archives.ts).
    expect(pushed.layers.map((l) => l.storePaths)).toEqual(layers.map((l) => [fixtureStorePath(l.seed)]));
    const expected = pushed.layers.flatMap((l) => l.storePaths!).sort();
    expect(await archiveStorePaths(source)).toEqual(expected);
    expect(await imageStorePaths({ layers: pushed.layers.map((l) => l.storePaths) })).toEqual(expected);
    // The middle layer unknown (the registry held it): read again from the archive, whatever its directory's name.
    const partial = pushed.layers.map((l, i) => (i === 1 ? undefined : l.storePaths));
    expect(await imageStorePaths({ layers: partial, diffIDs: pushed.layers.map((l) => l.diffID), archive: source })).toEqual(expected);
    expect(await imageStorePaths({ layers: pushed.layers.map(() => undefined), diffIDs: pushed.layers.map((l) => l.diffID), archive: source })).toEqual(expected);
  });
});

describe('an archive without store paths in its history', () => {
  it('lists the top directories under /nix/store in its layers, with Nix\'s hashes and references', async () => {
    const flake = await makeClosureFlake('1', 0);
    const source = await detectSource(await build(`${flake.flake}#docker`));
    const meta = await readLayers(source, drain);
    expect(historyStorePaths(meta.config.bytes)).toEqual([]);
    const paths = await imageStorePaths({ layers: meta.manifest.layers.map(() => undefined), archive: source });
    const base = await build(`${flake.flake}#base`);
    const app = await build(`${flake.flake}#app`);
    expect(paths).toEqual([base, app].sort());
    const tmpDir = await mkdtemp(join(tmpdir(), 'nia-sbom-'));
    const docs = await writeImageDocuments({ nix: 'nix', env, flake: flake.flake, attr: 'docker', buildArgs: [], storePaths: paths, subject, format: 'cyclonedx', tmpDir });
    const text = await readFile(docs.sbom!.path, 'utf8');
    expect(await cyclonedxErrors(text)).toBeNull();
    const doc = JSON.parse(text) as Cdx;
    await expectExact(doc, [base, app]);
    // app's script names base: Nix records the reference, and the SBOM has it as a dependency.
    expect(doc.dependencies.find((d) => d.ref === app)!.dependsOn).toEqual([base]);
    expect(doc.components.map((c) => [c.name, c.version ?? ''])).toEqual(expect.arrayContaining([['cache-base', ''], ['cache-app', '']]));
  });

  it('the push lists each layer\'s store paths as it reads it: the same paths, without reading the archive again', async () => {
    const flake = await makeClosureFlake('2', 0);
    const source = await detectSource(await build(`${flake.flake}#docker`));
    const pushed = await pushImage({ input: archiveInput(source, { scanStorePaths: true }), tags: ['latest'], logger: { debug: () => {}, info: () => {}, warning: () => {} } });
    expect(pushed.layers.every((l) => l.storePaths !== undefined)).toBe(true);
    // No archive given: the listing alone is the image's paths, and they are those a second read finds.
    const paths = await imageStorePaths({ layers: pushed.layers.map((l) => l.storePaths) });
    expect(paths).toEqual([await build(`${flake.flake}#base`), await build(`${flake.flake}#app`)].sort());
    expect(await archiveStorePaths(source)).toEqual(paths);
    // A layer the push did not read (the registry held it) is read alone from the archive: the others,
    // known by their diff ids, are skipped.
    expect(pushed.layers.length).toBeGreaterThanOrEqual(2);
    for (const [k, layer] of pushed.layers.entries()) {
      const others = new Set(pushed.layers.filter((_, i) => i !== k).map((l) => l.diffID));
      expect(await archiveStorePaths(source, undefined, others)).toEqual(layer.storePaths);
      const layers = pushed.layers.map((l, i) => (i === k ? undefined : l.storePaths));
      expect(await imageStorePaths({ layers, diffIDs: pushed.layers.map((l) => l.diffID), archive: source })).toEqual(paths);
      expect(await imageStorePaths({ layers })).toBeUndefined(); // no archive to read it from
    }
    // Without scanStorePaths the listing stays unknown (the action's sbom: false reads nothing for it).
    const plain = await pushImage({ input: archiveInput(source), tags: ['latest'], logger: { debug: () => {}, info: () => {}, warning: () => {} } });
    expect(plain.layers.map((l) => l.storePaths)).toEqual(plain.layers.map(() => undefined));
  });

  it('a path the store does not hold is named, without hash or references', async () => {
    const gone = '/nix/store/00000000000000000000000000000000-gone-1.0';
    const facts = await storePathFacts('nix', [gone], env);
    expect(facts).toEqual([{ path: gone, name: 'gone', version: '1.0', nameFrom: 'store-path', valid: false, references: [] }]);
  });
});
