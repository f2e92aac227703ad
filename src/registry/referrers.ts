// Documents about an image (its SBOM, its provenance) as OCI 1.1 referrers of it: each an image manifest
// with an artifactType, the empty config, the document as its one layer, and `subject` the image's
// manifest. A registry serving the referrers API (GET /v2/<name>/referrers/<digest> answers 200 with an
// index) lists them by their subject; any other registry gets the spec's fallback: the `sha256-<hex>` tag
// holding an index of the referrers, read, added to and written back, then read again, and written again
// while another writer's update lost ours. The image is never touched: attaching leaves its digest as it is.
import type { RegistryClient } from './client.js';
import type { BuiltManifest } from './manifest.js';
import { sha256Digest } from '../hash.js';
import { MediaTypes, type Descriptor, type Logger } from './types.js';

/** The OCI 1.1 empty descriptor: the 2-byte `{}` config of an artifact. */
export const EMPTY_CONFIG = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
} as const;
const EMPTY_BYTES = Buffer.from('{}');

/** Writes of the fallback tag, at most, before giving up on other writers. */
const FALLBACK_TRIES = 5;

/** What referrers.ts needs of a registry client. `getReferrers` is the referrers API (absent: the
 *  fallback tag is always used): the index, or undefined when the registry does not serve the API. */
export type ReferrerStore = Pick<RegistryClient, 'registry' | 'repository' | 'getManifest' | 'putManifest' | 'hasBlob' | 'uploadBlobBytes' | 'getBlob'> & {
  getReferrers?(digest: string): Promise<{ bytes: Buffer; mediaType: string } | undefined>;
  /** Whether a manifest is there, by HEAD (absent: read with getManifest). */
  hasManifest?(ref: string): Promise<boolean>;
};

/** A document to attach: its artifact type (which is also its layer's media type) and bytes. */
export interface AttachDocument {
  artifactType: string;
  bytes: Buffer;
  /** The file name, recorded as the layer's org.opencontainers.image.title. */
  title: string;
}

export interface Attached {
  registry: string;
  repository: string;
  artifactType: string;
  /** The referrer manifest's digest. */
  digest: string;
  via: 'referrers API' | 'fallback tag';
}

/** An entry of a referrers index. */
export interface ReferrerDescriptor extends Descriptor {
  artifactType?: string;
}

/** The fallback tag of an image digest: `sha256-<hex>`. */
export function fallbackTag(digest: string): string {
  return digest.replace(':', '-');
}

/** The referrer manifest of a document: artifactType, the empty config, the document as its one layer. */
export function artifactManifest(subject: Descriptor, doc: { artifactType: string; digest: string; size: number; title: string }): BuiltManifest {
  const body = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    artifactType: doc.artifactType,
    config: EMPTY_CONFIG,
    layers: [{ mediaType: doc.artifactType, digest: doc.digest, size: doc.size, annotations: { 'org.opencontainers.image.title': doc.title } }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { mediaType: MediaTypes.ociManifest, bytes, digest: sha256Digest(bytes) };
}

function parseIndex(bytes: Buffer, where: string): { index: Record<string, unknown>; manifests: ReferrerDescriptor[] } {
  let index: Record<string, unknown>;
  try {
    index = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Error(`${where} is not JSON`);
  }
  if (!Array.isArray(index.manifests) || (index.mediaType !== undefined && index.mediaType !== MediaTypes.ociIndex)) {
    throw new Error(`${where} is not an OCI image index (it is ${String(index.mediaType ?? 'something else')}): not touching it`);
  }
  return { index, manifests: index.manifests as ReferrerDescriptor[] };
}

/** Whether the registry serves the referrers API for this repository (probed, not read from OCI-Subject). */
export async function servesReferrersApi(client: ReferrerStore, subject: Descriptor): Promise<boolean> {
  if (!client.getReferrers) return false;
  const got = await client.getReferrers(subject.digest);
  if (!got) return false;
  try {
    parseIndex(got.bytes, 'the referrers API answer');
    return true;
  } catch {
    return false;
  }
}

async function readFallback(client: ReferrerStore, tag: string): Promise<{ index: Record<string, unknown>; manifests: ReferrerDescriptor[] }> {
  const got = await client.getManifest(tag);
  if (!got) return { index: { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] }, manifests: [] };
  return parseIndex(got.bytes, `${client.registry}/${client.repository}:${tag}`);
}

/** How long a written fallback index is left before it is read back (plus up to as much again, at random). */
const SETTLE_MS = 150;

/**
 * Adds `entry` to the fallback tag's index: read, add, write, read again. An entry missing from what is read
 * back (another writer wrote an index made before our write) is written again with everything we had
 * written, so neither ours nor theirs is lost.
 */
export async function addToFallbackIndex(client: ReferrerStore, subjectDigest: string, entry: ReferrerDescriptor): Promise<void> {
  const tag = fallbackTag(subjectDigest);
  const ours = new Map<string, ReferrerDescriptor>([[entry.digest, entry]]);
  for (let attempt = 1; attempt <= FALLBACK_TRIES; attempt++) {
    const { index, manifests } = await readFallback(client, tag);
    const have = new Set(manifests.map((m) => m.digest));
    const missing = [...ours.values()].filter((m) => !have.has(m.digest));
    if (missing.length === 0) return;
    const next = [...manifests, ...missing];
    for (const m of next) ours.set(m.digest, m);
    await client.putManifest(tag, Buffer.from(JSON.stringify({ ...index, schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: next })), MediaTypes.ociIndex);
    // A tag has no compare-and-swap: another writer that read before our write overwrites it within its
    // own read-to-write window. Reading back only after that window has passed sees such an overwrite.
    await new Promise((r) => setTimeout(r, SETTLE_MS + Math.floor(Math.random() * SETTLE_MS)));
    const after = new Set((await readFallback(client, tag)).manifests.map((m) => m.digest));
    if (next.every((m) => after.has(m.digest))) return;
  }
  throw new Error(`${client.registry}/${client.repository}:${tag}: other writers replaced the referrers index ${FALLBACK_TRIES} times in a row; the referrer is pushed, but not listed`);
}

async function ensureBlob(client: ReferrerStore, bytes: Buffer): Promise<string> {
  const digest = sha256Digest(bytes);
  if (!(await client.hasBlob(digest))) await client.uploadBlobBytes(bytes);
  return digest;
}

/** Attaches each document to the image in one repository (the image must be there: it is pushed first). */
export async function attachToRepository(client: ReferrerStore, subject: Descriptor, docs: AttachDocument[], logger?: Logger): Promise<Attached[]> {
  const where = `${client.registry}/${client.repository}`;
  const holds = client.hasManifest ? await client.hasManifest(subject.digest) : (await client.getManifest(subject.digest)) !== undefined;
  if (!holds) throw new Error(`${where} does not hold ${subject.digest}: the image is pushed before its referrers`);
  const api = await servesReferrersApi(client, subject);
  await ensureBlob(client, EMPTY_BYTES);
  const attached: Attached[] = [];
  for (const doc of docs) {
    const digest = await ensureBlob(client, doc.bytes);
    const manifest = artifactManifest(subject, { artifactType: doc.artifactType, digest, size: doc.bytes.length, title: doc.title });
    await client.putManifest(manifest.digest, manifest.bytes, manifest.mediaType);
    if (!api) await addToFallbackIndex(client, subject.digest, { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length, artifactType: doc.artifactType });
    attached.push({ registry: client.registry, repository: client.repository, artifactType: doc.artifactType, digest: manifest.digest, via: api ? 'referrers API' : 'fallback tag' });
    logger?.info(`attached ${doc.title} to ${where}@${subject.digest} as ${manifest.digest} (${api ? 'referrers API' : `fallback tag ${fallbackTag(subject.digest)}`})`);
  }
  return attached;
}

/** Attaches the documents in every repository the image went to, in order. */
export async function attachDocuments(targets: { client: ReferrerStore }[], subject: Descriptor, docs: AttachDocument[], logger?: Logger): Promise<Attached[]> {
  const out: Attached[] = [];
  for (const t of targets) out.push(...(await attachToRepository(t.client, subject, docs, logger)));
  return out;
}

/** The image's referrers: from the referrers API where served, else from the fallback tag (none: empty). */
export async function listReferrers(client: ReferrerStore, subject: Descriptor): Promise<ReferrerDescriptor[]> {
  const api = client.getReferrers ? await client.getReferrers(subject.digest) : undefined;
  if (api) {
    try {
      return parseIndex(api.bytes, 'the referrers API answer').manifests;
    } catch {
      // Not an index after all: the fallback tag is what there is.
    }
  }
  return (await readFallback(client, fallbackTag(subject.digest))).manifests;
}

interface ReferrerManifest {
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  subject?: Descriptor;
}

/** A referrer's manifest and its one document, checked to be about `subject`. */
async function readReferrer(client: ReferrerStore, subject: Descriptor, entry: ReferrerDescriptor): Promise<{ artifactType: string; bytes: Buffer } | undefined> {
  const got = await client.getManifest(entry.digest);
  if (!got) return undefined;
  let m: ReferrerManifest;
  try {
    m = JSON.parse(got.bytes.toString('utf8')) as ReferrerManifest;
  } catch {
    return undefined;
  }
  const layer = m.layers?.[0];
  if (m.subject?.digest !== subject.digest || !layer || m.layers!.length !== 1) return undefined;
  return { artifactType: m.artifactType ?? m.config?.mediaType ?? entry.artifactType ?? '', bytes: await client.getBlob(layer.digest) };
}

/** A document found attached to the image. */
export interface ReferrerDocument {
  artifactType: string;
  /** The referrer manifest's digest. */
  digest: string;
  bytes: Buffer;
}

/**
 * The newest attached document of each of `artifactTypes` (the last listed: the fallback index lists in
 * the order they were added), each checked to have `subject` as its subject.
 */
export async function fetchReferrerDocuments(client: ReferrerStore, subject: Descriptor, artifactTypes: string[]): Promise<{ documents: ReferrerDocument[]; referrers: number }> {
  const entries = await listReferrers(client, subject);
  const documents: ReferrerDocument[] = [];
  for (const type of artifactTypes) {
    for (const entry of [...entries].reverse()) {
      // An index entry without artifactType (an older writer) is typed by its manifest.
      if (entry.artifactType !== undefined && entry.artifactType !== type) continue;
      const doc = await readReferrer(client, subject, entry);
      if (doc?.artifactType === type) {
        documents.push({ artifactType: type, digest: entry.digest, bytes: doc.bytes });
        break;
      }
    }
  }
  return { documents, referrers: entries.length };
}
