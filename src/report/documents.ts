// The image's supply-chain documents as one phase each: written after a push (the SBOM from Nix's facts of
// the image's store paths, the provenance from the flake's lock and the runner's environment), attached to
// the image in every repository it went to, or, for an image the registry already had, fetched from what
// is attached to it. Plus the step outputs and the job summary's line.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as core from '@actions/core';
import { flakeMetadata, storePathFacts, type FlakeMetadata } from '../nix/sbom-data.js';
import { attachDocuments, fetchReferrerDocuments, type AttachDocument, type Attached, type ReferrerStore } from '../registry/referrers.js';
import type { Descriptor, Logger } from '../registry/types.js';
import { PREDICATE_FILE, PROVENANCE_FILE, PROVENANCE_MEDIA_TYPE, provenanceStatement, writeProvenance } from './provenance.js';
import { SBOM_FILE_NAMES, SBOM_MEDIA_TYPES, sbomComponents, sbomDocument, writeSbom, type SbomFormat, type SbomSubject } from './sbom.js';

export interface ImageDocuments {
  sbom?: { path: string; format: SbomFormat; components: number };
  provenance?: { statement: string; predicate: string };
  /** One line each: what was left out and why (no SBOM asked for, store paths unknown, no lock read). */
  notes: string[];
}

export interface WriteDocumentsOptions {
  nix: string;
  /** The environment Nix runs in. */
  env: NodeJS.ProcessEnv;
  flake: string;
  attr: string;
  buildArgs: string[];
  /** The store paths whose files are in the image (image/store-paths.ts); undefined: not known. */
  storePaths: string[] | undefined;
  /** Where the image went first, and its digest. */
  subject: SbomSubject;
  drvPath?: string;
  outPath?: string;
  nixVersion?: string;
  /** false: no SBOM (the provenance is still written). */
  format: SbomFormat | false;
  tmpDir: string;
  /** GITHUB_* of the runner (default process.env). */
  runnerEnv?: NodeJS.ProcessEnv;
  startedOn?: Date;
}

/** Writes the SBOM (unless format is false) and the provenance under tmpDir. */
export async function writeImageDocuments(o: WriteDocumentsOptions): Promise<ImageDocuments> {
  await mkdir(o.tmpDir, { recursive: true });
  const notes: string[] = [];
  let sbom: ImageDocuments['sbom'];
  if (o.format === false) notes.push('no SBOM: the sbom input is false');
  else if (!o.storePaths) notes.push('no SBOM: the store paths of the image are not known (an archive without store paths in its layers)');
  else {
    const facts = await storePathFacts(o.nix, o.storePaths, o.env, o.nixVersion);
    const missing = facts.filter((f) => !f.valid).length;
    if (missing > 0) notes.push(`${missing} store path(s) of the image are not in this store: the SBOM names them without hashes or references`);
    const path = await writeSbom(o.tmpDir, o.format, sbomDocument(o.format, o.subject, facts));
    sbom = { path, format: o.format, components: facts.length };
  }
  let metadata: FlakeMetadata | undefined;
  try {
    metadata = await flakeMetadata(o.nix, o.flake, o.buildArgs, o.env);
  } catch (error) {
    notes.push(`the provenance has no locked inputs: ${error instanceof Error ? error.message : String(error)}`);
  }
  const statement = provenanceStatement({
    subject: o.subject,
    flake: o.flake,
    attr: o.attr,
    buildArgs: o.buildArgs,
    ...(metadata ? { metadata } : {}),
    ...(o.drvPath ? { drvPath: o.drvPath } : {}),
    ...(o.outPath ? { outPath: o.outPath } : {}),
    ...(o.nixVersion ? { nixVersion: o.nixVersion } : {}),
    env: o.runnerEnv ?? process.env,
    ...(o.startedOn ? { startedOn: o.startedOn } : {}),
    finishedOn: new Date(),
  });
  const provenance = await writeProvenance(o.tmpDir, statement);
  return { ...(sbom ? { sbom } : {}), provenance, notes };
}

/** The documents as referrers: the SBOM (typed by its format) and the provenance statement. */
export async function documentsToAttach(docs: ImageDocuments): Promise<AttachDocument[]> {
  const out: AttachDocument[] = [];
  if (docs.sbom) out.push({ artifactType: SBOM_MEDIA_TYPES[docs.sbom.format], bytes: await readFile(docs.sbom.path), title: basename(docs.sbom.path) });
  if (docs.provenance) out.push({ artifactType: PROVENANCE_MEDIA_TYPE, bytes: await readFile(docs.provenance.statement), title: basename(docs.provenance.statement) });
  return out;
}

/** Attaches the written documents to the image in every repository it went to. */
export async function attachImageDocuments(targets: { client: ReferrerStore }[], subject: Descriptor, docs: ImageDocuments, logger?: Logger): Promise<Attached[]> {
  const attach = await documentsToAttach(docs);
  return attach.length ? attachDocuments(targets, subject, attach, logger) : [];
}

/**
 * For an image the registry already had: its attached SBOM (the newest in `format`, else in the other
 * format) and provenance, written to tmpDir as a build writes them. Nothing attached: none, and a note.
 */
export async function fetchAttachedDocuments(client: ReferrerStore, subject: Descriptor, tmpDir: string, opts: { format?: SbomFormat | false } = {}): Promise<ImageDocuments> {
  const formats: SbomFormat[] = opts.format === 'spdx' ? ['spdx', 'cyclonedx'] : ['cyclonedx', 'spdx'];
  const types = opts.format === false ? [PROVENANCE_MEDIA_TYPE] : [...formats.map((f) => SBOM_MEDIA_TYPES[f]), PROVENANCE_MEDIA_TYPE];
  const { documents, referrers } = await fetchReferrerDocuments(client, subject, types);
  await mkdir(tmpDir, { recursive: true });
  const where = `${client.registry}/${client.repository}@${subject.digest}`;
  const out: ImageDocuments = { notes: [] };
  const sbomDoc = formats.map((f) => ({ f, d: documents.find((d) => d.artifactType === SBOM_MEDIA_TYPES[f]) })).find((x) => x.d);
  if (sbomDoc?.d && opts.format !== false) {
    const path = join(tmpDir, SBOM_FILE_NAMES[sbomDoc.f]);
    await writeFile(path, sbomDoc.d.bytes);
    let components = 0;
    try {
      components = sbomComponents(JSON.parse(sbomDoc.d.bytes.toString('utf8')));
    } catch {
      out.notes.push(`the SBOM attached to ${where} is not JSON`);
    }
    out.sbom = { path, format: sbomDoc.f, components };
  }
  const prov = documents.find((d) => d.artifactType === PROVENANCE_MEDIA_TYPE);
  if (prov) {
    const statement = join(tmpDir, PROVENANCE_FILE);
    const predicate = join(tmpDir, PREDICATE_FILE);
    await writeFile(statement, prov.bytes);
    let pred: unknown = null;
    try {
      pred = (JSON.parse(prov.bytes.toString('utf8')) as { predicate?: unknown }).predicate ?? null;
    } catch {
      out.notes.push(`the provenance attached to ${where} is not JSON`);
    }
    await writeFile(predicate, `${JSON.stringify(pred, null, 2)}\n`);
    out.provenance = { statement, predicate };
  }
  if (!out.sbom && !out.provenance) {
    out.notes.push(
      `no SBOM or provenance is attached to ${where} (${referrers} referrer(s) of other types): an unchanged image is not built to write them; sbom-attach: true attaches them when an image is pushed`,
    );
  }
  return out;
}

/** The step outputs `sbom` and `provenance` (empty when there is none). */
export function setDocumentOutputs(docs: ImageDocuments): void {
  core.setOutput('sbom', docs.sbom?.path ?? '');
  core.setOutput('provenance', docs.provenance?.statement ?? '');
}

const FORMAT_NAMES: Record<SbomFormat, string> = { cyclonedx: 'CycloneDX 1.6', spdx: 'SPDX 2.3' };

/** The job summary's paragraph: how many components the SBOM lists, where it and the provenance went. */
export function documentsSummary(docs: ImageDocuments, r: { attached?: Attached[]; fetched?: boolean } = {}): string {
  const parts: string[] = [];
  if (docs.sbom) {
    parts.push(`SBOM (${FORMAT_NAMES[docs.sbom.format]}) of ${docs.sbom.components} component(s)${r.fetched ? ', as attached to the image' : ', one per store path in the image'}: <code>${docs.sbom.path}</code>`);
  }
  if (docs.provenance) parts.push(`provenance (SLSA v1 in-toto statement): <code>${docs.provenance.statement}</code>`);
  const attached = r.attached ?? [];
  if (attached.length > 0) {
    const repos = [...new Set(attached.map((a) => `${a.registry}/${a.repository}`))];
    const via = [...new Set(attached.map((a) => a.via))].join(', ');
    parts.push(`attached as ${attached.length} OCI referrer(s) in ${repos.map((x) => `<code>${x}</code>`).join(', ')} (${via})`);
  }
  const text = [...parts, ...docs.notes].join('; ');
  return text ? `<p>${text.charAt(0).toUpperCase()}${text.slice(1)}.</p>` : '';
}
