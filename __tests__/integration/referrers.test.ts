// The SBOM and provenance as OCI 1.1 referrers, against the real Distribution 2.8 registry (no referrers
// API: GET /referrers answers 404, so the fallback tag is used): the tag's index, read with plain HTTP,
// lists manifests whose subject is the image and whose one layer is the output file byte for byte; a
// second attach (the image pushed under another tag) keeps the first; concurrent attaches keep both; the
// image's digest is the same with and without attaching (skopeo agrees); and an unchanged image's job
// fills its outputs from what is attached, without Nix.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';
import { cyclonedxErrors } from '../support/sbom-validate.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';
import { EMPTY_CONFIG, fallbackTag, servesReferrersApi, type ReferrerStore } from '../../src/registry/referrers.js';
import { MediaTypes, type Descriptor } from '../../src/registry/types.js';
import { attachImageDocuments, fetchAttachedDocuments, type ImageDocuments } from '../../src/report/documents.js';
import { provenanceStatement, writeProvenance } from '../../src/report/provenance.js';
import { sbomDocument, writeSbom } from '../../src/report/sbom.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
let registry: TestRegistry;
let work: string;
let archive: MadeArchive;

beforeAll(async () => {
  registry = await startRegistry({});
  work = await mkdtemp(join(tmpdir(), 'nia-referrers-'));
  archive = await makeImageArchive({ dir: work, name: 'img', compression: 'gzip', layers: [{ size: 20_000, seed: 'ref', compressible: true }] });
});
afterAll(async () => registry?.stop());

/** GET on the registry with plain HTTP, as an independent client. */
async function http(path: string, accept = `${MediaTypes.ociIndex}, ${MediaTypes.ociManifest}`): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`http://${registry.host}${path}`, { headers: { accept } });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

/** A client with the referrers API probe (GET /v2/<name>/referrers/<digest>: 404 → undefined), over plain HTTP. */
function client(repository: string): ReferrerStore & RegistryClient {
  const c = new RegistryClient({ registry: registry.host, repository, insecure: true, logger: quiet }) as ReferrerStore & RegistryClient;
  c.getReferrers = async (digest: string) => {
    const r = await http(`/v2/${repository}/referrers/${digest}`, MediaTypes.ociIndex);
    return r.status === 200 ? { bytes: r.body, mediaType: MediaTypes.ociIndex } : undefined;
  };
  return c;
}

async function push(c: RegistryClient, tags: string[]): Promise<PushResult> {
  return pushImage({ source: await detectSource(archive.path), client: c, tags, logger: quiet, tmpDir: work });
}

const subjectOf = (p: PushResult): Descriptor => ({ mediaType: p.manifest.mediaType, digest: p.digest, size: p.manifest.bytes.length });

/** Writes an SBOM (no store paths needed here) and a provenance for the image, as a job would. */
async function documents(repository: string, digest: string, runId: string): Promise<ImageDocuments> {
  const dir = await mkdtemp(join(work, 'docs-'));
  const subject = { registry: registry.host, repository, digest };
  const facts = [{ path: '/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-hello-2.12.1', name: 'hello', version: '2.12.1', nameFrom: 'store-path' as const, valid: true, narHash: `sha256-${Buffer.alloc(32, 3).toString('base64')}`, narSha256: '03'.repeat(32), narSize: 10, references: [] }];
  const sbom = await writeSbom(dir, 'cyclonedx', sbomDocument('cyclonedx', subject, facts));
  const provenance = await writeProvenance(dir, provenanceStatement({ subject, flake: '.', attr: 'docker', buildArgs: [], env: { GITHUB_REPOSITORY: 'acme/app', GITHUB_RUN_ID: runId } }));
  return { sbom: { path: sbom, format: 'cyclonedx', components: 1 }, provenance, notes: [] };
}

interface IndexEntry {
  digest: string;
  artifactType?: string;
  mediaType: string;
}

/** The fallback tag's index, read with plain HTTP. */
async function fallbackIndex(repository: string, digest: string): Promise<IndexEntry[]> {
  const r = await http(`/v2/${repository}/manifests/${fallbackTag(digest)}`);
  expect(r.status).toBe(200);
  const index = JSON.parse(r.body.toString()) as { mediaType: string; manifests: IndexEntry[] };
  expect(index.mediaType).toBe(MediaTypes.ociIndex);
  return index.manifests;
}

describe('referrers on Distribution 2.8 (the fallback tag)', () => {
  it('probes the referrers API and finds it absent (404)', async () => {
    const c = client('ref/probe');
    const pushed = await push(c, ['v1']);
    expect((await http(`/v2/ref/probe/referrers/${pushed.digest}`)).status).toBe(404);
    expect(await servesReferrersApi(c, subjectOf(pushed))).toBe(false);
  });

  it('attaches the SBOM and the provenance: the index lists them, their subject is the image, their layer is the file; the digest does not change', async () => {
    const c = client('ref/app');
    const pushed = await push(c, ['v1']);
    const before = await http(`/v2/ref/app/manifests/v1`, MediaTypes.ociManifest);
    const docs = await documents('ref/app', pushed.digest, '1');
    const attached = await attachImageDocuments([{ client: c }], subjectOf(pushed), docs, quiet);
    expect(attached.map((a) => [a.artifactType, a.via])).toEqual([
      ['application/vnd.cyclonedx+json', 'fallback tag'],
      ['application/vnd.in-toto+json', 'fallback tag'],
    ]);

    const entries = await fallbackIndex('ref/app', pushed.digest);
    expect(entries.map((e) => [e.mediaType, e.artifactType, e.digest])).toEqual(attached.map((a) => [MediaTypes.ociManifest, a.artifactType, a.digest]));
    const files = [docs.sbom!.path, docs.provenance!.statement];
    for (const [i, e] of entries.entries()) {
      const m = JSON.parse((await http(`/v2/ref/app/manifests/${e.digest}`, MediaTypes.ociManifest)).body.toString()) as { artifactType: string; config: Descriptor; layers: Descriptor[]; subject: Descriptor };
      expect(m.subject).toEqual(subjectOf(pushed));
      expect(m.config).toEqual(EMPTY_CONFIG);
      expect((await http(`/v2/ref/app/blobs/${m.config.digest}`)).body.toString()).toBe('{}');
      expect(m.layers).toHaveLength(1);
      expect(m.layers[0]!.mediaType).toBe(m.artifactType);
      expect((await http(`/v2/ref/app/blobs/${m.layers[0]!.digest}`)).body).toEqual(await readFile(files[i]!));
    }
    expect(await cyclonedxErrors(await readFile(docs.sbom!.path, 'utf8'))).toBeNull();

    // The image: the same bytes under its tag, the same digest to an independent client.
    expect((await http(`/v2/ref/app/manifests/v1`, MediaTypes.ociManifest)).body).toEqual(before.body);
    const inspected = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${registry.host}/ref/app:v1`])) as { Digest: string };
    expect(inspected.Digest).toBe(pushed.digest);
  });

  it('a second attach (the same image pushed under another tag) keeps the first referrers', async () => {
    const c = client('ref/again');
    const first = await push(c, ['v1']);
    const one = await attachImageDocuments([{ client: c }], subjectOf(first), await documents('ref/again', first.digest, '1'));
    const second = await push(client('ref/again'), ['v2']);
    expect(second.digest).toBe(first.digest);
    const two = await attachImageDocuments([{ client: client('ref/again') }], subjectOf(second), await documents('ref/again', second.digest, '2'));
    const digests = (await fallbackIndex('ref/again', first.digest)).map((e) => e.digest);
    // The SBOM is the same document both times (one entry); the provenance of each run is its own.
    expect(one[0]!.digest).toBe(two[0]!.digest);
    expect(digests.sort()).toEqual([...new Set([...one, ...two].map((a) => a.digest))].sort());
    expect(digests).toHaveLength(3);
  });

  it('concurrent attaches to one image both end up listed (read, add, write, read again)', async () => {
    const c = client('ref/race');
    const pushed = await push(c, ['v1']);
    const runs = await Promise.all(['1', '2', '3'].map(async (run) => attachImageDocuments([{ client: client('ref/race') }], subjectOf(pushed), { ...(await documents('ref/race', pushed.digest, run)), sbom: undefined })));
    const digests = (await fallbackIndex('ref/race', pushed.digest)).map((e) => e.digest).sort();
    expect(digests).toEqual(runs.flat().map((a) => a.digest).sort());
    expect(digests).toHaveLength(3);
  });

  it('attaches in every repository the image went to', async () => {
    const a = client('ref/one');
    const b = client('ref/two');
    const pa = await push(a, ['v1']);
    const pb = await push(b, ['v1']);
    expect(pb.digest).toBe(pa.digest);
    const attached = await attachImageDocuments([{ client: a }, { client: b }], subjectOf(pa), await documents('ref/one', pa.digest, '1'));
    expect(attached.map((x) => x.repository)).toEqual(['ref/one', 'ref/one', 'ref/two', 'ref/two']);
    expect(await fallbackIndex('ref/one', pa.digest)).toHaveLength(2);
    expect(await fallbackIndex('ref/two', pa.digest)).toHaveLength(2);
  });

  it('refuses to attach before the image is pushed', async () => {
    const c = client('ref/none');
    const subject = { mediaType: MediaTypes.ociManifest, digest: `sha256:${'5'.repeat(64)}`, size: 10 };
    await expect(attachImageDocuments([{ client: c }], subject, await documents('ref/none', subject.digest, '1'))).rejects.toThrow(/ref\/none does not hold sha256:5+: the image is pushed before its referrers/);
  });
});

describe('an unchanged image', () => {
  it('gets its outputs from the attached referrers, byte for byte, without Nix (PATH without nix)', async () => {
    const c = client('ref/unchanged');
    const pushed = await push(c, ['v1']);
    const docs = await documents('ref/unchanged', pushed.digest, '9');
    await attachImageDocuments([{ client: c }], subjectOf(pushed), docs);

    // The next job: the registry has the image; a fresh client, nothing built.
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    let fetched: ImageDocuments;
    try {
      fetched = await fetchAttachedDocuments(client('ref/unchanged'), subjectOf(pushed), await mkdtemp(join(work, 'next-')), { format: 'cyclonedx' });
    } finally {
      process.env.PATH = path;
    }
    expect(fetched.sbom).toMatchObject({ format: 'cyclonedx', components: 1 });
    expect(await readFile(fetched.sbom!.path)).toEqual(await readFile(docs.sbom!.path));
    expect(await readFile(fetched.provenance!.statement)).toEqual(await readFile(docs.provenance!.statement));
    expect(JSON.parse(await readFile(fetched.provenance!.predicate, 'utf8'))).toEqual(JSON.parse(await readFile(docs.provenance!.predicate, 'utf8')));
    expect(fetched.notes).toEqual([]);
  });

  it('with nothing attached: no outputs, and one line says why', async () => {
    const c = client('ref/bare');
    const pushed = await push(c, ['v1']);
    const fetched = await fetchAttachedDocuments(c, subjectOf(pushed), await mkdtemp(join(work, 'bare-')));
    expect(fetched.sbom).toBeUndefined();
    expect(fetched.provenance).toBeUndefined();
    expect(fetched.notes).toEqual([expect.stringMatching(/^no SBOM or provenance is attached to .*ref\/bare@sha256:[0-9a-f]{64} \(0 referrer\(s\) of other types\): an unchanged image is not built to write them; sbom-attach: true attaches them when an image is pushed$/)]);
  });

  it('picks the newest SBOM in the asked format, else the other one', async () => {
    const c = client('ref/formats');
    const pushed = await push(c, ['v1']);
    const docs = await documents('ref/formats', pushed.digest, '1');
    await attachImageDocuments([{ client: c }], subjectOf(pushed), docs);
    const fetched = await fetchAttachedDocuments(c, subjectOf(pushed), await mkdtemp(join(work, 'f-')), { format: 'spdx' });
    expect(fetched.sbom?.format).toBe('cyclonedx');
    const spdxFile = join(await mkdtemp(join(work, 's-')), 'sbom.spdx.json');
    await writeFile(spdxFile, JSON.stringify({ spdxVersion: 'SPDX-2.3', packages: [{ SPDXID: 'SPDXRef-Image' }, { SPDXID: 'SPDXRef-a' }] }));
    await attachImageDocuments([{ client: c }], subjectOf(pushed), { sbom: { path: spdxFile, format: 'spdx', components: 1 }, notes: [] });
    const again = await fetchAttachedDocuments(c, subjectOf(pushed), await mkdtemp(join(work, 'g-')), { format: 'spdx' });
    expect(again.sbom).toMatchObject({ format: 'spdx', components: 1 });
  });
});
