// The record of layers last pushed, kept in the store cache entry beside the binary cache: for each
// registry repository, which blob holds which diff id (and which layer key). A repository with no tag to
// read (only per-commit tags, say) still gets its unchanged layers reused without making them: the push
// confirms each recorded blob with HEAD before trusting it. Like skopeo's blob-info cache, kept per job.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RecordedLayer {
  diffID: string;
  digest: string;
  size: number;
  key?: string;
}

type Record = { version: 1; repositories: { [target: string]: RecordedLayer[] } };

const FILE = 'nix-image-action-layers.json';
/** Entries kept per repository: the newest first; enough for several images' worth of layers. */
const KEEP = 1000;

export function layerRecordFile(dir: string): string {
  return join(dir, FILE);
}

async function load(dir: string): Promise<Record> {
  try {
    const parsed = JSON.parse(await readFile(layerRecordFile(dir), 'utf8')) as Record;
    if (parsed?.version === 1 && parsed.repositories && typeof parsed.repositories === 'object') return parsed;
  } catch {
    // absent or unreadable: an empty record (it only saves work)
  }
  return { version: 1, repositories: {} };
}

const valid = (l: RecordedLayer): boolean =>
  /^sha256:[0-9a-f]{64}$/.test(l.diffID) && /^sha256:[0-9a-f]{64}$/.test(l.digest) && Number.isInteger(l.size) && l.size >= 0;

/** The layers recorded for `target` (registry/repository). */
export async function readLayerRecord(dir: string, target: string): Promise<RecordedLayer[]> {
  const layers = (await load(dir)).repositories[target];
  return Array.isArray(layers) ? layers.filter(valid) : [];
}

/** Adds `layers` (just pushed or confirmed) to the record of `target`, newest first. */
export async function recordLayers(dir: string, target: string, layers: RecordedLayer[]): Promise<void> {
  const record = await load(dir);
  const seen = new Set<string>();
  const merged: RecordedLayer[] = [];
  for (const l of [...layers, ...(record.repositories[target] ?? [])]) {
    const id = `${l.key ?? ''} ${l.diffID} ${l.digest}`;
    if (seen.has(id) || !valid(l)) continue;
    seen.add(id);
    merged.push({ diffID: l.diffID, digest: l.digest, size: l.size, ...(l.key ? { key: l.key } : {}) });
  }
  record.repositories[target] = merged.slice(0, KEEP);
  await writeFile(layerRecordFile(dir), `${JSON.stringify(record)}\n`);
}
