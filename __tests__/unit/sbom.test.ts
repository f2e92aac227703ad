// The SBOM, the provenance and the referrer documents as data: names and versions as Nix parses them, NAR
// hashes in every form Nix writes, CycloneDX 1.6 (the CycloneDX library's strict validator) and SPDX 2.3
// (the vendored schema) documents that validate, the in-toto statement's fields, the sbom inputs, and the
// referrers' read-modify-write of the fallback tag against a store whose other writer loses our update.
import { describe, expect, it } from 'vitest';
import { parseDerivation } from '../../src/nix/derivation.js';
import { lockedUrl, lockArgs, parseDrvName, parseFlakeMetadata, pathIdentity, sha256Hex, storePathName, type StorePathFacts } from '../../src/nix/sbom-data.js';
import { cyclonedxSbom, imagePurl, nixPurl, sbomComponents, spdxSbom, TOOL } from '../../src/report/sbom.js';
import { provenanceStatement, SLSA_PROVENANCE_V1, STATEMENT_TYPE } from '../../src/report/provenance.js';
import { documentsSummary } from '../../src/report/documents.js';
import { addToFallbackIndex, artifactManifest, attachToRepository, EMPTY_CONFIG, fallbackTag, fetchReferrerDocuments, type ReferrerStore } from '../../src/registry/referrers.js';
import { sha256Digest } from '../../src/hash.js';
import { MediaTypes } from '../../src/registry/types.js';
import { InputError, parseInputs } from '../../src/inputs/index.js';
import { cyclonedxErrors, spdxErrors } from '../support/sbom-validate.js';
import pkg from '../../package.json' with { type: 'json' };

describe('names and versions', () => {
  // What `nix eval --expr 'map builtins.parseDrvName [ … ]'` answers (Nix 2.8).
  it.each([
    ['hello-2.12.1', 'hello', '2.12.1'],
    ['fixture-base', 'fixture-base', ''],
    ['fixture-app-1', 'fixture-app', '1'],
    ['openssl-3.0.13-dev', 'openssl', '3.0.13-dev'],
    ['python3.11-requests-2.31.0', 'python3.11-requests', '2.31.0'],
    ['glibc-locales-2.39-52', 'glibc-locales', '2.39-52'],
    ['foo-bar-baz', 'foo-bar-baz', ''],
    ['x-1-2', 'x', '1-2'],
    ['nix-2.8.0pre-dirty', 'nix', '2.8.0pre-dirty'],
    ['a-', 'a-', ''],
    ['-1', '', '1'],
  ])('parseDrvName(%s) is %s / %s, as builtins.parseDrvName', (s, name, version) => {
    expect(parseDrvName(s)).toEqual({ name, version });
  });

  it('takes pname/version from the derivation, the output name when not out, and parses the name otherwise', () => {
    const out = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-openssl-3.0.13';
    const dev = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-openssl-3.0.13-dev';
    const drv = parseDerivation(
      `Derive([("dev","${dev}","",""),("out","${out}","","")],[],[],"x86_64-linux","/bin/sh",[],[("name","openssl-3.0.13"),("pname","openssl"),("version","3.0.13")])`,
      '/nix/store/cccccccccccccccccccccccccccccccc-openssl-3.0.13.drv',
    );
    expect(pathIdentity(out, drv)).toEqual({ name: 'openssl', version: '3.0.13', nameFrom: 'derivation' });
    expect(pathIdentity(dev, drv)).toEqual({ name: 'openssl', version: '3.0.13', nameFrom: 'derivation', output: 'dev' });
    // No .drv (a substituted path), or one without pname: the store path's name, parsed.
    expect(pathIdentity(dev)).toEqual({ name: 'openssl', version: '3.0.13-dev', nameFrom: 'store-path' });
    const plain = parseDerivation(`Derive([("out","${out}","","")],[],[],"x86_64-linux","/bin/sh",[],[("name","openssl-3.0.13")])`, '/nix/store/x.drv');
    expect(pathIdentity(out, plain)).toEqual({ name: 'openssl', version: '3.0.13', nameFrom: 'store-path' });
    expect(storePathName(out)).toBe('openssl-3.0.13');
  });

  it('reads a NAR hash in every form Nix writes as the same hex digest', () => {
    // `nix hash to-base16` / `to-base32` of one hash (Nix 2.8).
    const hex = '21595938349cb5232f19242a87d2863b75369b7d974bfa079b2f06e4fc3a11d1';
    expect(sha256Hex('sha256-IVlZODSctSMvGSQqh9KGO3U2m32XS/oHmy8G5Pw6EdE=')).toBe(hex);
    expect(sha256Hex('sha256:1l8i7byf81igkc3zljwpgndkcx9vhv98fai434pj7dcw6hw5jn91')).toBe(hex);
    expect(sha256Hex(`sha256:${hex}`)).toBe(hex);
    expect(sha256Hex('md5:abc')).toBeUndefined();
  });

  it('makes purls pkg:nix/<name>@<version>, the version left out when there is none', () => {
    expect(nixPurl('hello', '2.12.1')).toBe('pkg:nix/hello@2.12.1');
    expect(nixPurl('fixture-base', '')).toBe('pkg:nix/fixture-base');
    expect(nixPurl('python3.11-requests', '2.31.0+git')).toBe('pkg:nix/python3.11-requests@2.31.0%2Bgit');
    expect(imagePurl({ registry: 'ghcr.io', repository: 'acme/app', digest: `sha256:${'a'.repeat(64)}` })).toBe(`pkg:oci/app@sha256%3A${'a'.repeat(64)}?repository_url=ghcr.io%2Facme%2Fapp`);
  });
});

const base = '/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-fixture-base';
const app = '/nix/store/1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-fixture-app-1';
const gone = '/nix/store/2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-hello-2.12.1';
const facts: StorePathFacts[] = [
  { path: base, name: 'fixture-base', version: '', nameFrom: 'store-path', deriver: `${base}.drv`, valid: true, narHash: `sha256-${Buffer.alloc(32, 1).toString('base64')}`, narSha256: '01'.repeat(32), narSize: 1000, references: [] },
  { path: app, name: 'fixture-app', version: '1', nameFrom: 'derivation', output: 'bin', deriver: `${app}.drv`, valid: true, narHash: `sha256-${Buffer.alloc(32, 2).toString('base64')}`, narSha256: '02'.repeat(32), narSize: 2000, references: [base, '/nix/store/3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d-not-listed'] },
  { path: gone, name: 'hello', version: '2.12.1', nameFrom: 'store-path', valid: false, references: [] },
];
const subject = { registry: 'ghcr.io', repository: 'acme/app', digest: `sha256:${'e'.repeat(64)}` };

describe('CycloneDX 1.6', () => {
  const doc = cyclonedxSbom(subject, facts) as {
    metadata: { component: Record<string, unknown>; tools: unknown };
    components: { 'bom-ref': string; name: string; version?: string; purl: string; hashes?: { alg: string; content: string }[]; properties: { name: string; value: string }[] }[];
    dependencies: { ref: string; dependsOn: string[] }[];
    serialNumber: string;
  };

  it('passes the CycloneDX library\'s strict 1.6 validator', async () => {
    expect(await cyclonedxErrors(doc)).toBeNull();
  });

  it('has the image as its subject, one component per store path, and the references as dependencies', () => {
    expect(doc.metadata.component).toMatchObject({ type: 'container', name: 'ghcr.io/acme/app', version: subject.digest, hashes: [{ alg: 'SHA-256', content: 'e'.repeat(64) }] });
    expect(doc.metadata.tools).toEqual({ components: [{ type: 'application', name: 'nix-image-action', version: pkg.version }] });
    expect(doc.components.map((c) => c['bom-ref'])).toEqual([base, app, gone]);
    const a = doc.components[1]!;
    expect(a).toMatchObject({ name: 'fixture-app', version: '1', purl: 'pkg:nix/fixture-app@1', hashes: [{ alg: 'SHA-256', content: '02'.repeat(32) }] });
    expect(Object.fromEntries(a.properties.map((p) => [p.name, p.value]))).toEqual({
      'nix:store_path': app,
      'nix:drv_path': `${app}.drv`,
      'nix:output': 'bin',
      'nix:nar_hash': facts[1]!.narHash,
      'nix:nar_size': '2000',
      'nix:name_from': 'derivation',
    });
    expect(doc.components[0]).not.toHaveProperty('version');
    expect(doc.components[2]).not.toHaveProperty('hashes');
    // Only references to listed components; the image depends on every component.
    expect(doc.dependencies).toEqual([
      { ref: `ghcr.io/acme/app@${subject.digest}`, dependsOn: [base, app, gone] },
      { ref: base, dependsOn: [] },
      { ref: app, dependsOn: [base] },
      { ref: gone, dependsOn: [] },
    ]);
    expect(sbomComponents(doc)).toBe(3);
  });

  it('is the same document for the same image and store paths (no timestamp; serial number from the content)', () => {
    expect(JSON.stringify(cyclonedxSbom(subject, facts))).toBe(JSON.stringify(doc));
    expect(doc.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((cyclonedxSbom({ ...subject, digest: `sha256:${'f'.repeat(64)}` }, facts) as { serialNumber: string }).serialNumber).not.toBe(doc.serialNumber);
  });
});

describe('SPDX 2.3', () => {
  const doc = spdxSbom(subject, facts, { created: new Date('2025-01-02T03:04:05.678Z'), namespaceId: 'n1' }) as {
    creationInfo: { created: string };
    packages: { SPDXID: string; name: string; versionInfo?: string; checksums?: unknown; externalRefs: { referenceType: string; referenceLocator: string }[]; primaryPackagePurpose?: string }[];
    relationships: { spdxElementId: string; relationshipType: string; relatedSpdxElement: string }[];
  };

  it('passes the SPDX 2.3 JSON schema', async () => {
    expect(await spdxErrors(doc)).toBeNull();
  });

  it('describes the image, which contains one package per store path; each depends on what it references', () => {
    expect(doc.creationInfo.created).toBe('2025-01-02T03:04:05Z');
    expect(doc.packages[0]).toMatchObject({ SPDXID: 'SPDXRef-Image', name: 'ghcr.io/acme/app', versionInfo: subject.digest, primaryPackagePurpose: 'CONTAINER' });
    const a = doc.packages.find((p) => p.name === 'fixture-app')!;
    expect(a.SPDXID).toBe('SPDXRef-Package-nix-1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b');
    expect(a.checksums).toEqual([{ algorithm: 'SHA256', checksumValue: '02'.repeat(32) }]);
    expect(Object.fromEntries(a.externalRefs.map((r) => [r.referenceType, r.referenceLocator]))).toEqual({ purl: 'pkg:nix/fixture-app@1', 'nix-store-path': app, 'nix-drv-path': `${app}.drv`, 'nix-nar-hash': facts[1]!.narHash });
    expect(doc.relationships).toEqual([
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-Image' },
      ...[base, app, gone].map((p) => ({ spdxElementId: 'SPDXRef-Image', relationshipType: 'CONTAINS', relatedSpdxElement: `SPDXRef-Package-nix-${p.split('/')[3]!.slice(0, 32)}` })),
      { spdxElementId: 'SPDXRef-Package-nix-1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b', relationshipType: 'DEPENDS_ON', relatedSpdxElement: 'SPDXRef-Package-nix-0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a' },
    ]);
    expect(sbomComponents(doc)).toBe(3);
  });

  it('a document with a broken field fails the schema (the check is not vacuous)', async () => {
    expect(await spdxErrors({ ...doc, relationships: [{ spdxElementId: 'x', relationshipType: 'LIKES', relatedSpdxElement: 'y' }] })).not.toBeNull();
    expect(await cyclonedxErrors({ ...cyclonedxSbom(subject, facts), specVersion: '1.6', metadata: { component: { type: 'box', name: 'x' } } })).not.toBeNull();
  });
});

const flakeJson = JSON.stringify({
  url: 'git+file:///src?rev=0123456789abcdef0123456789abcdef01234567',
  resolvedUrl: 'git+file:///src',
  revision: '0123456789abcdef0123456789abcdef01234567',
  lastModified: 1700000000,
  locked: { narHash: 'sha256-IVlZODSctSMvGSQqh9KGO3U2m32XS/oHmy8G5Pw6EdE=', type: 'git' },
  locks: {
    root: 'root',
    version: 7,
    nodes: {
      root: { inputs: { nixpkgs: 'nixpkgs', utils: 'utils' } },
      nixpkgs: { locked: { lastModified: 1, narHash: 'sha256-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=', owner: 'NixOS', repo: 'nixpkgs', rev: 'f'.repeat(40), type: 'github' }, original: { owner: 'NixOS', repo: 'nixpkgs', type: 'github' } },
      utils: { locked: { narHash: 'sha256-AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=', rev: 'a'.repeat(40), type: 'git', url: 'https://example.org/utils.git', ref: 'main' } },
    },
  },
});

describe('provenance', () => {
  const env = {
    GITHUB_SERVER_URL: 'https://github.com',
    GITHUB_REPOSITORY: 'acme/app',
    GITHUB_SHA: 'c'.repeat(40),
    GITHUB_REF: 'refs/heads/main',
    GITHUB_WORKFLOW_REF: 'acme/app/.github/workflows/image.yml@refs/heads/main',
    GITHUB_RUN_ID: '42',
    GITHUB_RUN_ATTEMPT: '2',
    GITHUB_EVENT_NAME: 'push',
  };

  it('reads the flake\'s locked reference and every locked input', () => {
    const m = parseFlakeMetadata(flakeJson);
    expect(m.url).toBe('git+file:///src?rev=0123456789abcdef0123456789abcdef01234567');
    expect(m.inputs.map((i) => [i.name, i.url, i.rev])).toEqual([
      ['nixpkgs', `github:NixOS/nixpkgs/${'f'.repeat(40)}?narHash=sha256-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE%3D`, 'f'.repeat(40)],
      ['utils', `git+https://example.org/utils.git?ref=main&rev=${'a'.repeat(40)}&narHash=sha256-AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI%3D`, 'a'.repeat(40)],
    ]);
    expect(lockedUrl({ type: 'path', path: '/x' })).toBe('path:/x');
    expect(lockArgs(['-L', '--override-input', 'nixpkgs', 'github:NixOS/nixpkgs/abc', '--impure'])).toEqual(['--override-input', 'nixpkgs', 'github:NixOS/nixpkgs/abc']);
  });

  it('is an in-toto statement about the image with an SLSA v1 predicate: flake, attr, build-args, lock, commit, derivation, builder, run', () => {
    const s = provenanceStatement({
      subject,
      flake: '.',
      attr: 'docker',
      buildArgs: ['--option', 'x', 'y'],
      metadata: parseFlakeMetadata(flakeJson),
      drvPath: '/nix/store/dddddddddddddddddddddddddddddddd-image.drv',
      outPath: '/nix/store/oooooooooooooooooooooooooooooooo-image.tar.gz',
      nixVersion: '2.8.0',
      env,
      startedOn: new Date('2025-01-01T00:00:00Z'),
      finishedOn: new Date('2025-01-01T00:01:00Z'),
    });
    expect(s._type).toBe(STATEMENT_TYPE);
    expect(s.predicateType).toBe(SLSA_PROVENANCE_V1);
    expect(s.subject).toEqual([{ name: 'ghcr.io/acme/app', digest: { sha256: 'e'.repeat(64) } }]);
    const p = s.predicate as { buildDefinition: { externalParameters: Record<string, unknown>; resolvedDependencies: { name: string; uri: string; digest?: Record<string, string> }[] }; runDetails: { builder: Record<string, unknown>; metadata: Record<string, unknown>; byproducts: unknown[] } };
    expect(p.buildDefinition.externalParameters).toEqual({
      flake: '.',
      attr: 'docker',
      installable: '.#docker',
      buildArgs: ['--option', 'x', 'y'],
      workflow: { ref: 'refs/heads/main', repository: 'https://github.com/acme/app', path: '.github/workflows/image.yml' },
    });
    const deps = Object.fromEntries(p.buildDefinition.resolvedDependencies.map((d) => [d.name, d]));
    expect(deps.source).toEqual({ name: 'source', uri: 'git+https://github.com/acme/app@refs/heads/main', digest: { gitCommit: 'c'.repeat(40) } });
    expect(deps.flake!.digest).toEqual({ sha256: '21595938349cb5232f19242a87d2863b75369b7d974bfa079b2f06e4fc3a11d1', gitCommit: '0123456789abcdef0123456789abcdef01234567' });
    expect(deps['flake-input:nixpkgs']!.digest).toEqual({ sha256: '01'.repeat(32), gitCommit: 'f'.repeat(40) });
    expect(deps['flake-input:utils']!.digest).toEqual({ sha256: '02'.repeat(32), gitCommit: 'a'.repeat(40) });
    expect(p.runDetails.builder).toEqual({ id: `https://github.com/nix-image-action/nix-image-action@v${pkg.version}`, version: { 'nix-image-action': pkg.version, nix: '2.8.0' } });
    expect(TOOL.version).toBe(pkg.version);
    expect(p.runDetails.metadata).toEqual({ invocationId: 'https://github.com/acme/app/actions/runs/42/attempts/2', startedOn: '2025-01-01T00:00:00Z', finishedOn: '2025-01-01T00:01:00Z' });
    expect(p.runDetails.byproducts).toEqual([
      { name: 'derivation', uri: '/nix/store/dddddddddddddddddddddddddddddddd-image.drv' },
      { name: 'store-path', uri: '/nix/store/oooooooooooooooooooooooooooooooo-image.tar.gz' },
    ]);
  });

  it('publishes no credential a flake reference, a locked input or a build-arg carried', () => {
    const token = 'ghs_provenanceSecret0123456789';
    const s = provenanceStatement({
      subject,
      flake: `git+https://x-access-token:${token}@github.com/acme/app?ref=main`,
      attr: 'docker',
      buildArgs: ['--option', 'access-tokens', `github.com=${token}`, '--override-input', 'utils', `git+https://bot:${token}@example.org/utils.git`, '--access-tokens', `github.com=${token}`],
      metadata: { ...parseFlakeMetadata(flakeJson), url: `git+https://bot:${token}@example.org/app.git?rev=${'1'.repeat(40)}&access_token=${token}` },
      env,
    });
    const text = JSON.stringify(s);
    expect(text).not.toContain(token);
    const p = s.predicate as { buildDefinition: { externalParameters: Record<string, unknown> } };
    expect(p.buildDefinition.externalParameters.flake).toBe('git+https://github.com/acme/app?ref=main');
    expect(p.buildDefinition.externalParameters.buildArgs).toEqual(['--option', 'access-tokens', '<redacted>', '--override-input', 'utils', 'git+https://example.org/utils.git', '--access-tokens', '<redacted>']);
  });
});

describe('inputs sbom and sbom-attach', () => {
  const inputs = (v: Record<string, string>) => parseInputs((n) => v[n] ?? '', { GITHUB_REPOSITORY: 'acme/app' });

  it('defaults to a CycloneDX SBOM, not attached; takes spdx and false', () => {
    expect(inputs({ attr: 'docker' })).toMatchObject({ sbom: 'cyclonedx', sbomAttach: false });
    expect(inputs({ attr: 'docker', sbom: 'spdx', 'sbom-attach': 'true' })).toMatchObject({ sbom: 'spdx', sbomAttach: true });
    expect(inputs({ attr: 'docker', sbom: 'false' })).toMatchObject({ sbom: false });
  });

  it('refuses another format, and attaching without a push, in one line', () => {
    expect(() => inputs({ attr: 'docker', sbom: 'syft' })).toThrow(new InputError('sbom', 'expected cyclonedx, spdx or false, got "syft"'));
    expect(() => inputs({ attr: 'docker', 'sbom-attach': 'true', push: 'false' })).toThrow(/^input sbom-attach: needs push: true/);
    expect(() => inputs({ attr: 'docker', 'sbom-attach': 'yes' })).toThrow(/^input sbom-attach: expected true or false/);
  });
});

/** A repository in memory: manifests by tag and digest, blobs; `beforeTagWrite` plays another writer. */
function memoryStore(opts: { api?: boolean; beforeTagWrite?: (store: Map<string, Buffer>, tag: string) => void } = {}) {
  const manifests = new Map<string, Buffer>();
  const blobs = new Map<string, Buffer>();
  const puts: string[] = [];
  const store: ReferrerStore = {
    registry: 'mem',
    repository: 'acme/app',
    getManifest: async (ref) => {
      const bytes = manifests.get(ref);
      return bytes ? { mediaType: (JSON.parse(bytes.toString()) as { mediaType: string }).mediaType, digest: sha256Digest(bytes), bytes } : undefined;
    },
    putManifest: async (ref, bytes) => {
      puts.push(ref);
      if (!ref.startsWith('sha256:')) opts.beforeTagWrite?.(manifests, ref);
      manifests.set(ref, bytes);
      manifests.set(sha256Digest(bytes), bytes);
      return sha256Digest(bytes);
    },
    hasBlob: async (d) => blobs.has(d),
    uploadBlobBytes: async (b) => {
      blobs.set(sha256Digest(b), b);
      return sha256Digest(b);
    },
    getBlob: async (d) => blobs.get(d)!,
    ...(opts.api
      ? {
          getReferrers: async (digest: string) => {
            const list = [...manifests.entries()]
              .filter(([k]) => k.startsWith('sha256:'))
              .map(([k, b]) => ({ k, m: JSON.parse(b.toString()) as { subject?: { digest: string }; artifactType?: string } }))
              .filter(({ m }) => m.subject?.digest === digest)
              .map(({ k, m }) => ({ mediaType: MediaTypes.ociManifest, digest: k, size: manifests.get(k)!.length, artifactType: m.artifactType }));
            return { mediaType: MediaTypes.ociIndex, bytes: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: list })) };
          },
        }
      : {}),
  };
  const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: {}, layers: [] }));
  manifests.set(sha256Digest(image), image);
  const subjectDesc = { mediaType: MediaTypes.ociManifest, digest: sha256Digest(image), size: image.length };
  return { store, manifests, blobs, puts, subject: subjectDesc };
}

describe('referrers', () => {
  it('an artifact manifest: artifactType, the 2-byte empty config, the document as its one layer, the image as subject', () => {
    expect(sha256Digest(Buffer.from('{}'))).toBe(EMPTY_CONFIG.digest);
    const subj = { mediaType: MediaTypes.ociManifest, digest: `sha256:${'1'.repeat(64)}`, size: 10 };
    const m = JSON.parse(artifactManifest(subj, { artifactType: 'application/vnd.cyclonedx+json', digest: `sha256:${'2'.repeat(64)}`, size: 5, title: 'sbom.cdx.json' }).bytes.toString());
    expect(m).toEqual({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: 'application/vnd.cyclonedx+json',
      config: EMPTY_CONFIG,
      layers: [{ mediaType: 'application/vnd.cyclonedx+json', digest: `sha256:${'2'.repeat(64)}`, size: 5, annotations: { 'org.opencontainers.image.title': 'sbom.cdx.json' } }],
      subject: subj,
    });
    expect(fallbackTag(subj.digest)).toBe(`sha256-${'1'.repeat(64)}`);
  });

  it('a registry serving the referrers API gets no fallback tag, and lists what was attached', async () => {
    const mem = memoryStore({ api: true });
    const attached = await attachToRepository(mem.store, mem.subject, [{ artifactType: 'application/vnd.cyclonedx+json', bytes: Buffer.from('{"a":1}'), title: 'sbom.cdx.json' }]);
    expect(attached.map((a) => a.via)).toEqual(['referrers API']);
    expect(mem.manifests.has(fallbackTag(mem.subject.digest))).toBe(false);
    const { documents } = await fetchReferrerDocuments(mem.store, mem.subject, ['application/vnd.cyclonedx+json']);
    expect(documents.map((d) => d.bytes.toString())).toEqual(['{"a":1}']);
  });

  it('refuses to attach to an image the repository does not hold', async () => {
    const mem = memoryStore();
    await expect(attachToRepository(mem.store, { ...mem.subject, digest: `sha256:${'9'.repeat(64)}` }, [])).rejects.toThrow(/does not hold sha256:9+: the image is pushed before its referrers/);
  });

  it('the fallback tag keeps both entries when another writer replaced the index between our read and our write', async () => {
    let raced = false;
    const other = { mediaType: MediaTypes.ociManifest, digest: `sha256:${'7'.repeat(64)}`, size: 1, artifactType: 'application/vnd.in-toto+json' };
    // The other writer read the index before we wrote, and writes its own entry over ours right after.
    const mem = memoryStore({
      beforeTagWrite: (m, tag) => {
        if (raced) return;
        raced = true;
        queueMicrotask(() => m.set(tag, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [other] }))));
      },
    });
    const ours = { mediaType: MediaTypes.ociManifest, digest: `sha256:${'8'.repeat(64)}`, size: 2, artifactType: 'application/vnd.cyclonedx+json' };
    await addToFallbackIndex(mem.store, mem.subject.digest, ours);
    const index = JSON.parse(mem.manifests.get(fallbackTag(mem.subject.digest))!.toString()) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([other.digest, ours.digest].sort());
    expect(mem.puts.filter((p) => p === fallbackTag(mem.subject.digest))).toHaveLength(2);
  });

  it('a fallback tag holding something other than an index is left alone, with one line', async () => {
    const mem = memoryStore();
    mem.manifests.set(fallbackTag(mem.subject.digest), Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, layers: [] })));
    await expect(addToFallbackIndex(mem.store, mem.subject.digest, { mediaType: MediaTypes.ociManifest, digest: `sha256:${'8'.repeat(64)}`, size: 2 })).rejects.toThrow(/is not an OCI image index .*not touching it$/);
  });
});

describe('summary', () => {
  it('says how many components the SBOM lists and where it and the provenance went', () => {
    const html = documentsSummary(
      { sbom: { path: '/tmp/r/sbom.cdx.json', format: 'cyclonedx', components: 12 }, provenance: { statement: '/tmp/r/provenance.intoto.json', predicate: '/tmp/r/provenance.predicate.json' }, notes: [] },
      { attached: [{ registry: 'ghcr.io', repository: 'acme/app', artifactType: 'application/vnd.cyclonedx+json', digest: 'sha256:1', via: 'fallback tag' }, { registry: 'ghcr.io', repository: 'acme/app', artifactType: 'application/vnd.in-toto+json', digest: 'sha256:2', via: 'fallback tag' }] },
    );
    expect(html).toBe(
      '<p>SBOM (CycloneDX 1.6) of 12 component(s), one per store path in the image: <code>/tmp/r/sbom.cdx.json</code>; provenance (SLSA v1 in-toto statement): <code>/tmp/r/provenance.intoto.json</code>; attached as 2 OCI referrer(s) in <code>ghcr.io/acme/app</code> (fallback tag).</p>',
    );
    expect(documentsSummary({ notes: ['no SBOM: the sbom input is false'] })).toBe('<p>No SBOM: the sbom input is false.</p>');
  });
});
