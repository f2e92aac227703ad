// The record of layers last pushed, kept in the store cache entry beside the binary cache: for each
// registry repository, which blob holds which diff id (and which layer key). A repository with no tag to
// read (only per-commit tags, say) still gets its unchanged layers reused without making them: the push
// confirms each recorded blob with HEAD before trusting it. Like skopeo's blob-info cache, kept per job.
// With binary-cache-key the post step signs the record as it signs the narinfos; a job that trusts keys
// takes a record unread only with a valid signature by one of them (any other is checked blob by blob).
import { createPublicKey, verify } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Digest } from '../hash.js';
import { signFingerprint, type SecretKey } from './signing.js';

export interface RecordedLayer {
  diffID: string;
  digest: string;
  size: number;
  key?: string;
  /** The blob's media type when it is not OCI gzip (a zstd layer); absent: gzip. */
  mediaType?: string;
}

/** Version 2 entries may carry a media type. A reader of version 1 only (an older action restoring this
 *  cache) leaves a version 2 record out whole rather than take a zstd blob for a gzip one. */
type Record = { version: 1 | 2; repositories: { [target: string]: RecordedLayer[] } };

const FILE = 'nix-image-action-layers.json';
/** Entries kept per repository: the newest first; enough for several images' worth of layers. */
const KEEP = 1000;

export function layerRecordFile(dir: string): string {
  return join(dir, FILE);
}

/** The record in `bytes`; anything unreadable is an empty record (it only saves work). */
function parse(bytes: Buffer): Record {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as Record;
    if ((parsed?.version === 1 || parsed?.version === 2) && parsed.repositories && typeof parsed.repositories === 'object') return parsed;
  } catch {
    // unreadable: empty
  }
  return { version: 2, repositories: {} };
}

/** The record on disk; with `pin` (see readLayerRecord), an empty one unless the file is those bytes. */
async function load(dir: string, pin?: string | null): Promise<Record> {
  // Read once: the bytes checked against the pin are the bytes parsed.
  const bytes = await readFile(layerRecordFile(dir)).catch(() => undefined);
  if (pin !== undefined && (bytes ? sha256Digest(bytes) : null) !== pin) return { version: 2, repositories: {} };
  return bytes ? parse(bytes) : { version: 2, repositories: {} };
}

const valid = (l: RecordedLayer): boolean =>
  /^sha256:[0-9a-f]{64}$/.test(l.diffID) && /^sha256:[0-9a-f]{64}$/.test(l.digest) && Number.isInteger(l.size) && l.size >= 0 && (l.mediaType === undefined || typeof l.mediaType === 'string');


/** The SHA-256 of the record's bytes (null: there is none). */
export async function recordDigest(dir: string): Promise<string | null> {
  const bytes = await readFile(layerRecordFile(dir)).catch(() => undefined);
  return bytes ? sha256Digest(bytes) : null;
}

/**
 * The layers recorded for `target` (registry/repository). `pin`, where keys are trusted: the digest of the
 * record this job verified or wrote itself (null: none), so a record changed since (by a build or a stream
 * script of the same user) gives nothing.
 */
export async function readLayerRecord(dir: string, target: string, pin?: string | null): Promise<RecordedLayer[]> {
  const layers = (await load(dir, pin)).repositories[target];
  return Array.isArray(layers) ? layers.filter(valid) : [];
}

/** Adds `layers` (just pushed or confirmed) to the record of `target`, newest first; returns the digest of
 *  the record written. With `pin`, what the file holds is kept only when it is the pinned record: entries
 *  added since (by a build or a stream script of the same user) are dropped, never merged into a record
 *  the post step then signs. */
export async function recordLayers(dir: string, target: string, layers: RecordedLayer[], pin?: string | null): Promise<string> {
  const record = await load(dir, pin);
  const seen = new Set<string>();
  const merged: RecordedLayer[] = [];
  for (const l of [...layers, ...(record.repositories[target] ?? [])]) {
    const id = `${l.key ?? ''} ${l.diffID} ${l.digest}`;
    if (seen.has(id) || !valid(l)) continue;
    seen.add(id);
    merged.push({ diffID: l.diffID, digest: l.digest, size: l.size, ...(l.key ? { key: l.key } : {}), ...(l.mediaType ? { mediaType: l.mediaType } : {}) });
  }
  record.version = 2;
  record.repositories[target] = merged.slice(0, KEEP);
  const bytes = Buffer.from(`${JSON.stringify(record)}\n`);
  await writeFile(layerRecordFile(dir), bytes);
  return sha256Digest(bytes);
}

const SIG_FILE = `${FILE}.sig`;

/** What the record's signature signs: its name and the SHA-256 of its bytes. */
const recordFingerprint = (bytes: Buffer): string => `nix-image-action-layers;1;${sha256Digest(bytes)}`;

/**
 * Signs the record as it is now (post step, before the cache is saved); no record: nothing to sign. With
 * `pin` (the digest this job verified or wrote), a record that is not those bytes is removed, not signed;
 * the signature is over the bytes read once, so a file swapped after the check fails verification later.
 */
export async function signLayerRecord(dir: string, key: SecretKey, pin?: string | null): Promise<boolean> {
  const bytes = await readFile(layerRecordFile(dir)).catch(() => undefined);
  if (!bytes) return true;
  if (pin !== undefined && sha256Digest(bytes) !== pin) {
    await rm(layerRecordFile(dir), { force: true });
    return false;
  }
  await writeFile(join(dir, SIG_FILE), `${signFingerprint(key, recordFingerprint(bytes))}\n`);
  return true;
}

/**
 * Whether the record may be taken on its word: always when no key is trusted (the whole restored cache is
 * then trusted as it is), else only with a signature over its exact bytes by one of `trustedKeys`. A
 * record that fails is removed from the directory, so a later write does not inherit it.
 */
export async function layerRecordTrusted(dir: string, trustedKeys: string[]): Promise<boolean> {
  if (trustedKeys.length === 0) return true;
  const bytes = await readFile(layerRecordFile(dir)).catch(() => undefined);
  if (!bytes) return true; // nothing recorded: nothing to trust
  const sig = (await readFile(join(dir, SIG_FILE), 'utf8').catch(() => '')).trim();
  const colon = sig.indexOf(':');
  const name = sig.slice(0, colon);
  const signature = Buffer.from(sig.slice(colon + 1), 'base64');
  const ok = colon > 0 && trustedKeys.some((k) => {
    if (!k.startsWith(`${name}:`)) return false;
    try {
      const x = Buffer.from(k.slice(name.length + 1), 'base64').toString('base64url');
      return verify(null, Buffer.from(recordFingerprint(bytes)), createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }), signature);
    } catch {
      return false;
    }
  });
  if (!ok) await rm(layerRecordFile(dir), { force: true });
  return ok;
}
