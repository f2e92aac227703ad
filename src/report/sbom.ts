// The image's SBOM from what Nix knows of its store paths (nix/sbom-data.ts): one component per store path
// whose files are in the image, with its name and version, store and derivation paths, NAR hash and purl
// `pkg:nix/<name>@<version>`; dependencies are the paths' references; the image itself (by digest) is the
// document's subject. CycloneDX 1.6 JSON or SPDX 2.3 JSON; pure functions, plus writing the file.
import { createHash, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StorePathFacts } from '../nix/sbom-data.js';
import { VERSION } from '../version.js';

export type SbomFormat = 'cyclonedx' | 'spdx';

export const SBOM_MEDIA_TYPES: Record<SbomFormat, string> = {
  cyclonedx: 'application/vnd.cyclonedx+json',
  spdx: 'application/spdx+json',
};

export const SBOM_FILE_NAMES: Record<SbomFormat, string> = {
  cyclonedx: 'sbom.cdx.json',
  spdx: 'sbom.spdx.json',
};

export const TOOL = { name: 'nix-image-action', version: VERSION } as const;

/** The image an SBOM describes: where it was pushed, and its manifest digest. */
export interface SbomSubject {
  registry: string;
  repository: string;
  /** sha256:<hex> of the image manifest (or of the index). */
  digest: string;
}

const hexOf = (digest: string): string => digest.replace(/^sha256:/, '');

/** purl of a store path: `pkg:nix/<name>@<version>` (no `@` without a version). */
export function nixPurl(name: string, version: string): string {
  return `pkg:nix/${encodeURIComponent(name)}${version ? `@${encodeURIComponent(version)}` : ''}`;
}

/** purl of the image (purl-spec's oci type: the last path segment, the digest, the repository URL). */
export function imagePurl(s: SbomSubject): string {
  const last = s.repository.split('/').pop() ?? s.repository;
  return `pkg:oci/${encodeURIComponent(last)}@${encodeURIComponent(s.digest)}?repository_url=${encodeURIComponent(`${s.registry}/${s.repository}`)}`;
}

/** A version-5-shaped UUID from a hash: the same inputs, the same serial number. */
function uuidFrom(seed: string): string {
  const b = createHash('sha256').update(seed).digest();
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const imageName = (s: SbomSubject): string => `${s.registry}/${s.repository}`;

/** References to paths the document lists (a closure lists them all; an archive read may not). */
function listedReferences(facts: StorePathFacts[]): Map<string, string[]> {
  const listed = new Set(facts.map((f) => f.path));
  return new Map(facts.map((f) => [f.path, f.references.filter((r) => listed.has(r))]));
}

// --- CycloneDX 1.6 ---------------------------------------------------------------------------------

export interface CycloneDxProperty {
  name: string;
  value: string;
}

function cdxProperties(f: StorePathFacts): CycloneDxProperty[] {
  return [
    { name: 'nix:store_path', value: f.path },
    ...(f.deriver ? [{ name: 'nix:drv_path', value: f.deriver }] : []),
    ...(f.output ? [{ name: 'nix:output', value: f.output }] : []),
    ...(f.narHash ? [{ name: 'nix:nar_hash', value: f.narHash }] : []),
    ...(f.narSize !== undefined ? [{ name: 'nix:nar_size', value: String(f.narSize) }] : []),
    { name: 'nix:name_from', value: f.nameFrom },
    ...(f.valid ? [] : [{ name: 'nix:in_store', value: 'false' }]),
  ];
}

/** CycloneDX 1.6: metadata.component is the image (type container); one component per store path. */
export function cyclonedxSbom(subject: SbomSubject, facts: StorePathFacts[]): Record<string, unknown> {
  const imageRef = `${imageName(subject)}@${subject.digest}`;
  const refs = listedReferences(facts);
  const components = facts.map((f) => ({
    type: 'library',
    'bom-ref': f.path,
    name: f.name,
    ...(f.version ? { version: f.version } : {}),
    ...(f.narSha256 ? { hashes: [{ alg: 'SHA-256', content: f.narSha256 }] } : {}),
    purl: nixPurl(f.name, f.version),
    properties: cdxProperties(f),
  }));
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${uuidFrom(JSON.stringify([imageRef, components]))}`,
    version: 1,
    metadata: {
      tools: { components: [{ type: 'application', name: TOOL.name, version: TOOL.version }] },
      component: {
        type: 'container',
        'bom-ref': imageRef,
        name: imageName(subject),
        version: subject.digest,
        hashes: [{ alg: 'SHA-256', content: hexOf(subject.digest) }],
        purl: imagePurl(subject),
      },
    },
    components,
    dependencies: [
      { ref: imageRef, dependsOn: facts.map((f) => f.path) },
      ...facts.map((f) => ({ ref: f.path, dependsOn: refs.get(f.path) ?? [] })),
    ],
  };
}

// --- SPDX 2.3 --------------------------------------------------------------------------------------

const IMAGE_ID = 'SPDXRef-Image';

/** An SPDX id for a store path: its hash part, which is unique in the store. */
export function spdxId(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const hash = /^([0-9a-z]{32})-/.exec(base)?.[1];
  return `SPDXRef-Package-nix-${hash ?? base.replace(/[^A-Za-z0-9.-]/g, '-')}`;
}

/** SPDX 2.3: the image is the package the document DESCRIBES; it CONTAINS one package per store path,
 *  and each store path DEPENDS_ON what it references. Store and derivation paths are external refs. */
export function spdxSbom(subject: SbomSubject, facts: StorePathFacts[], opts: { created: Date; namespaceId?: string }): Record<string, unknown> {
  const refs = listedReferences(facts);
  const created = opts.created.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const other = (type: string, locator: string) => ({ referenceCategory: 'OTHER', referenceType: type, referenceLocator: locator });
  const packages = facts.map((f) => ({
    SPDXID: spdxId(f.path),
    name: f.name,
    ...(f.version ? { versionInfo: f.version } : {}),
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    ...(f.narSha256 ? { checksums: [{ algorithm: 'SHA256', checksumValue: f.narSha256 }] } : {}),
    externalRefs: [
      { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: nixPurl(f.name, f.version) },
      other('nix-store-path', f.path),
      ...(f.deriver ? [other('nix-drv-path', f.deriver)] : []),
      ...(f.narHash ? [other('nix-nar-hash', f.narHash)] : []),
    ],
    ...(f.narSha256 ? { comment: 'The SHA256 checksum is that of the store path\'s NAR serialisation, as Nix records it.' } : {}),
  }));
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${imageName(subject)}@${subject.digest}`,
    documentNamespace: `https://github.com/nix-image-action/nix-image-action/spdx/${imageName(subject)}/${hexOf(subject.digest)}/${opts.namespaceId ?? randomUUID()}`,
    creationInfo: { created, creators: [`Tool: ${TOOL.name}-${TOOL.version}`] },
    packages: [
      {
        SPDXID: IMAGE_ID,
        name: imageName(subject),
        versionInfo: subject.digest,
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        primaryPackagePurpose: 'CONTAINER',
        checksums: [{ algorithm: 'SHA256', checksumValue: hexOf(subject.digest) }],
        externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: imagePurl(subject) }],
      },
      ...packages,
    ],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: IMAGE_ID },
      ...facts.map((f) => ({ spdxElementId: IMAGE_ID, relationshipType: 'CONTAINS', relatedSpdxElement: spdxId(f.path) })),
      ...facts.flatMap((f) => (refs.get(f.path) ?? []).map((r) => ({ spdxElementId: spdxId(f.path), relationshipType: 'DEPENDS_ON', relatedSpdxElement: spdxId(r) }))),
    ],
  };
}

/** The document in the format asked for. */
export function sbomDocument(format: SbomFormat, subject: SbomSubject, facts: StorePathFacts[], now = new Date()): Record<string, unknown> {
  return format === 'spdx' ? spdxSbom(subject, facts, { created: now }) : cyclonedxSbom(subject, facts);
}

/** How many store paths an SBOM lists (either format; the image itself not counted). */
export function sbomComponents(doc: unknown): number {
  const d = doc as { components?: unknown[]; packages?: { SPDXID?: string }[] };
  if (Array.isArray(d.components)) return d.components.length;
  if (Array.isArray(d.packages)) return d.packages.filter((p) => p.SPDXID !== IMAGE_ID).length;
  return 0;
}

/** Writes the document as `sbom.cdx.json` / `sbom.spdx.json` in `dir`; returns its path. */
export async function writeSbom(dir: string, format: SbomFormat, doc: Record<string, unknown>): Promise<string> {
  const file = join(dir, SBOM_FILE_NAMES[format]);
  await writeFile(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}
