// Writes what the run produced: step outputs and the job summary (like docker/build-push-action's reporter.ts).
import * as core from '@actions/core';
import { formatBytes, type PushResult } from '../registry/push.js';
import type { SaveSummary } from '../nix/cache.js';
import type { UploadSummary } from '../nix/remote-cache.js';
import type { Attached } from '../registry/referrers.js';
import { documentsSummary, setDocumentOutputs, type ImageDocuments } from './documents.js';

export interface RunReport {
  registry: string;
  repository: string;
  tags: string[];
  storePath: string;
  format: string;
  nixVersion?: string;
  cacheHit: 'true' | 'partial' | 'false';
  cache?: { restored?: { paths: number; bytes: number; seconds: number; key?: string; entries?: number; missing?: number }; note?: string };
  /** The binary-cache input: what the build copied from it (what the post step uploads is in its log and the summary). */
  binaryCache?: { url: string; note: string; substituted: string[] };
  buildSeconds: number;
  push: PushResult;
  /** The other repositories the image went to (tags naming other registries or repositories). */
  others?: { registry: string; repository: string; tags: string[]; push: PushResult }[];
  /** Seconds of the phases before the build (main measures them). */
  phases?: { install?: number; evaluate?: number; restore?: number; push?: number };
  /** The image's SBOM and provenance (absent: none, the outputs are empty). */
  documents?: RunDocuments;
}

/** The SBOM and provenance of a run, and where they were attached. */
export interface RunDocuments {
  docs: ImageDocuments;
  attached?: Attached[];
  /** Read from what is attached to an unchanged image rather than written. */
  fetched?: boolean;
}

export interface Metadata {
  digest: string;
  image: string;
  imageid: string;
  tags: string[];
  'store-path': string;
  'cache-hit': string;
  pushed: boolean;
  format: string;
  'nix-version'?: string;
  /** The store cache restored: the newest entry's key, the entries of its chain restored (and missing), their paths and NAR bytes. */
  'store-cache'?: { key?: string; entries: number; missing?: number; paths: number; bytes: number };
  /** The binary-cache input: the store paths the build copied from it. */
  'binary-cache'?: { url: string; note: string; substituted: string[] };
  /** skipped: already in the registry; reused: of those, the ones known before reading (a tag's manifest, the
   *  store cache's record), never made nor compressed; made: layers read (or made from the store) and compressed. */
  layers: {
    total: number;
    uploaded: number;
    skipped: number;
    reused: number;
    made: number;
    /** Of the skipped: mounted from another repository of the registry. */
    mounted: number;
    /** Of the skipped: taken on another's word (another repository, tool or record), so downloaded and
     *  hashed here before being used. */
    verified: number;
    /** Layers compressed in this job, once whatever the number of repositories. */
    compressed: number;
    list: { digest: string; size: number; diffID: string; action: string; storePaths?: string[] }[];
  };
  bytes: { uploaded: number; skipped: number };
  /** Requests sent again (408, 429, 5xx, dropped or stalled connections), by cause. */
  retries: {
    total: number;
    causes: Record<string, number>;
    /** Bearer tokens fetched (the first included). */
    tokens: number;
    /** Upload sessions opened again because the registry lost one. */
    sessions: number;
  };
  /** One entry per repository the image went to, the first being the one above. */
  repositories: { image: string; tags: string[]; layers: { uploaded: number; mounted: number; skipped: number }; bytes: { uploaded: number } }[];
  seconds: { install?: number; evaluate?: number; restore?: number; build: number; push: number };
}

/** Requests sent again, over every repository the image went to. */
function retriesOf(pushes: PushResult[]): Metadata['retries'] {
  const total = { total: 0, causes: {} as Record<string, number>, tokens: 0, sessions: 0 };
  for (const s of pushes.map((x) => x.retries)) {
    if (!s) continue;
    total.total += s.retries;
    total.tokens += s.tokens;
    total.sessions += s.sessions;
    for (const [cause, n] of Object.entries(s.causes)) total.causes[cause] = (total.causes[cause] ?? 0) + n;
  }
  return total;
}

export function metadataOf(r: RunReport): Metadata {
  const p = r.push;
  const count = (...actions: string[]) => p.layers.filter((l) => actions.includes(l.action)).length;
  return {
    digest: p.digest,
    image: `${r.registry}/${r.repository}@${p.digest}`,
    imageid: p.config.digest,
    tags: [r, ...(r.others ?? [])].flatMap((o) => o.tags.map((t) => `${o.registry}/${o.repository}:${t}`)),
    'store-path': r.storePath,
    'cache-hit': r.cacheHit,
    pushed: p.pushed,
    format: r.format,
    ...(r.nixVersion ? { 'nix-version': r.nixVersion } : {}),
    ...(r.cache?.restored
      ? { 'store-cache': { ...(r.cache.restored.key ? { key: r.cache.restored.key } : {}), entries: r.cache.restored.entries ?? 1, ...(r.cache.restored.missing ? { missing: r.cache.restored.missing } : {}), paths: r.cache.restored.paths, bytes: r.cache.restored.bytes } }
      : {}),
    ...(r.binaryCache ? { 'binary-cache': { url: r.binaryCache.url, note: r.binaryCache.note, substituted: r.binaryCache.substituted } } : {}),
    layers: {
      total: p.layers.length,
      uploaded: count('uploaded'),
      skipped: count('reused', 'present', 'mounted'),
      reused: count('reused'),
      made: count('uploaded', 'present', 'computed'),
      mounted: count('mounted'),
      verified: p.layers.filter((l) => l.verified).length,
      compressed: [p, ...(r.others ?? []).map((o) => o.push)].reduce((n, x) => n + (x.layersMade ?? 0), 0),
      list: p.layers.map((l) => ({ digest: l.digest, size: l.size, diffID: l.diffID, action: l.action, ...(l.storePaths ? { storePaths: l.storePaths } : {}) })),
    },
    bytes: { uploaded: p.bytesUploaded, skipped: p.bytesSkipped },
    retries: retriesOf([p, ...(r.others ?? []).map((o) => o.push)]),
    repositories: [{ registry: r.registry, repository: r.repository, tags: r.tags, push: p }, ...(r.others ?? [])].map((o) => ({
      image: `${o.registry}/${o.repository}@${o.push.digest}`,
      tags: o.tags.map((t) => `${o.registry}/${o.repository}:${t}`),
      layers: {
        uploaded: o.push.layers.filter((l) => l.action === 'uploaded').length,
        mounted: o.push.layers.filter((l) => l.action === 'mounted').length,
        skipped: o.push.layers.filter((l) => ['reused', 'present', 'mounted'].includes(l.action)).length,
      },
      bytes: { uploaded: o.push.bytesUploaded },
    })),
    seconds: {
      ...(r.phases?.install !== undefined ? { install: round(r.phases.install) } : {}),
      ...(r.phases?.evaluate !== undefined ? { evaluate: round(r.phases.evaluate) } : {}),
      ...(r.phases?.restore !== undefined ? { restore: round(r.phases.restore) } : {}),
      build: round(r.buildSeconds),
      push: round(r.phases?.push ?? p.seconds),
    },
  };
}

function round(s: number): number {
  return Math.round(s * 100) / 100;
}

export function setOutputs(m: Metadata): void {
  core.setOutput('digest', m.digest);
  core.setOutput('image', m.image);
  core.setOutput('imageid', m.imageid);
  core.setOutput('tags', m.tags.join('\n'));
  core.setOutput('store-path', m['store-path']);
  core.setOutput('cache-hit', m['cache-hit']);
  core.setOutput('metadata', JSON.stringify(m));
}

const ACTION_WORDS: Record<string, string> = {
  uploaded: 'uploaded',
  present: 'made, already in the registry',
  reused: 'reused without being read',
  mounted: 'mounted from another repository',
  computed: 'made (not pushed)',
};

const escapeHtml = (t: string): string => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A store path as a person reads it: its name, without the hash (the full path in the title). */
function storeName(path: string): string {
  const base = path.split('/').pop() ?? path;
  const name = /^[0-9a-z]{32}-(.+)$/.exec(base)?.[1] ?? base;
  return `<code title="${escapeHtml(path)}">${escapeHtml(name)}</code>`;
}

/** The store paths of a layer, the first few named and the rest counted. */
function layerPaths(paths: string[] | undefined): string {
  if (!paths || paths.length === 0) return '—';
  const shown = paths.slice(0, 4).map(storeName).join(', ');
  return paths.length > 4 ? `${shown} and ${paths.length - 4} more` : shown;
}

export async function writeSummary(r: RunReport, m: Metadata): Promise<void> {
  const verb = m.format === 'already in the registry' ? 'Tagged' : m.pushed ? 'Pushed' : 'Built (not pushed)';
  const s = core.summary.addHeading(`${verb} ${r.registry}/${r.repository}`, 3).addTable([
    [
      { data: 'Digest', header: true },
      { data: 'Tags', header: true },
      { data: 'Layers', header: true },
      { data: 'Uploaded', header: true },
      { data: 'Skipped', header: true },
    ],
    [
      `<code>${m.digest}</code>`,
      (m.tags.length > 0 ? m.tags : [`${r.registry}/${r.repository}@${m.digest}`]).map((t) => `<code>${t}</code>`).join(' '),
      `${m.layers.total} (${m.layers.uploaded} uploaded, ${m.layers.skipped} already there` +
        (m.layers.reused > 0 ? `, ${m.layers.reused} of them known before reading, neither made nor compressed` : '') +
        (m.layers.verified > 0 ? `; ${m.layers.verified} taken from another repository or tool, downloaded and hashed first)` : ')'),
      formatBytes(m.bytes.uploaded),
      formatBytes(m.bytes.skipped),
    ],
  ]);
  const built =
    m.format === 'already in the registry'
      ? `the image was already in the registry (${r.push.input.replace(/^already in the registry /, '')}), made from the same derivation with the same settings: nothing was built, no layer was sent, only the tags were set (${m.seconds.push} s)`
      : `${m.format === 'layers from the store' ? 'its conf built' : 'built'} in ${m.seconds.build} s; push ${m.seconds.push} s`;
  s.addRaw(
    `<p>Store path <code>${m['store-path']}</code> (${m.format}): ${built}.` +
      (m['nix-version'] ? ` Nix ${m['nix-version']}.` : '') +
      ` Store cache: ${m['cache-hit']}${r.cache?.restored ? `, restored ${r.cache.restored.paths} paths (${formatBytes(r.cache.restored.bytes)}) from ${r.cache.restored.entries ?? 1} entr${(r.cache.restored.entries ?? 1) === 1 ? 'y' : 'ies'}${r.cache.restored.missing ? ` (${r.cache.restored.missing} no longer held)` : ''} in ${round(r.cache.restored.seconds)} s` : ''}${r.cache?.note ? ` (${r.cache.note})` : ''}.` +
      (r.binaryCache ? ` Binary cache <code>${escapeHtml(r.binaryCache.url)}</code>: ${binaryCacheWords(r.binaryCache)}.` : '') +
      '</p>',
    true,
  );
  if (m.repositories.length > 1) {
    s.addRaw(
      `<p>The same image in ${m.repositories.length} repositories: ${m.repositories
        .map((o) => `<code>${o.image.split('@')[0]}</code> (${o.layers.uploaded} uploaded, ${o.layers.mounted} mounted, ${formatBytes(o.bytes.uploaded)})`)
        .join(', ')}.</p>`,
      true,
    );
  }
  // One row per layer: which store paths it holds, what it weighs, and what became of it — the changed
  // package is the row that says "uploaded".
  s.addTable([
    [
      { data: '#', header: true },
      { data: 'Store paths', header: true },
      { data: 'Compressed', header: true },
      { data: 'What happened', header: true },
    ],
    ...r.push.layers.map((l, i) => [String(i + 1), layerPaths(l.storePaths), formatBytes(l.size), ACTION_WORDS[l.action] ?? l.action]),
  ]);
  const phases: [string, number | undefined][] = [
    ['Nix install', m.seconds.install],
    ['evaluation', m.seconds.evaluate],
    ['cache restore', m.seconds.restore],
    ['build', m.format === 'already in the registry' ? undefined : m.seconds.build],
    ['push', m.seconds.push],
  ];
  s.addRaw(
    `<p>Time: ${phases
      .filter(([, t]) => t !== undefined)
      .map(([what, t]) => `${what} ${t} s`)
      .join(', ')}${r.cache?.restored ? ` (${formatBytes(r.cache.restored.bytes)} restored)` : ''}; ${formatBytes(m.bytes.uploaded)} uploaded` +
      (m.retries.total > 0 ? `; ${m.retries.total} request(s) sent again (${Object.entries(m.retries.causes).map(([c, n]) => `${n} × ${c}`).join(', ')})` : '') +
      '.</p>',
    true,
  );
  if (r.documents) {
    const line = documentsSummary(r.documents.docs, { ...(r.documents.attached ? { attached: r.documents.attached } : {}), ...(r.documents.fetched ? { fetched: true } : {}) });
    if (line) s.addRaw(line, true);
  }
  await s.write();
}

export async function report(r: RunReport): Promise<Metadata> {
  const m = metadataOf(r);
  setOutputs(m);
  setDocumentOutputs(r.documents?.docs ?? { notes: [] });
  // The summary is a courtesy: a runner without GITHUB_STEP_SUMMARY, or one that cannot write it, must not
  // fail a push that succeeded.
  if (process.env.GITHUB_STEP_SUMMARY) {
    await writeSummary(r, m).catch((error: unknown) => core.warning(`job summary not written: ${error instanceof Error ? error.message : String(error)}`));
  }
  return m;
}

/** What the build took from the binary cache, the first few paths named. */
function binaryCacheWords(b: NonNullable<RunReport['binaryCache']>): string {
  if (b.note !== 'substituter') return escapeHtml(b.note);
  if (b.substituted.length === 0) return 'nothing copied from it';
  const named = b.substituted.slice(0, 4).map(storeName).join(', ');
  return `${b.substituted.length} path(s) copied from it (${named}${b.substituted.length > 4 ? ` and ${b.substituted.length - 4} more` : ''})`;
}

/** The post step's line in the job summary: what it uploaded to the binary cache. */
export async function reportBinaryCacheUpload(u: UploadSummary): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  const named = u.uploaded.slice(0, 4).map(storeName).join(', ') + (u.uploaded.length > 4 ? ` and ${u.uploaded.length - 4} more` : '');
  const sent =
    u.uploaded.length > 0
      ? `uploaded ${u.uploaded.length} of ${u.paths} paths (${named}; ${formatBytes(u.narBytes)} of NARs${u.sentBytes > 0 ? `, ${formatBytes(u.sentBytes)} sent` : ''})${u.present > 0 ? `, ${u.present} there already` : ''}`
      : '';
  const what = u.skipped ? `${sent ? `${sent}, then stopped` : 'nothing uploaded'}: ${escapeHtml(u.skipped)}` : sent || `nothing to upload: it holds all ${u.paths} paths already`;
  await core.summary
    .addRaw(`<p>Binary cache <code>${escapeHtml(u.url)}</code>: ${what}, in ${round(u.seconds)} s (post step).</p>`, true)
    .write()
    .catch((error: unknown) => core.warning(`job summary not written: ${error instanceof Error ? error.message : String(error)}`));
}

/** The post step's line in the job summary: what the store cache saved. */
export async function reportCacheSave(s: SaveSummary): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  const what = s.skipped
    ? `not saved: ${s.skipped}${s.key ? ` (<code>${s.key}</code>)` : ''}`
    : s.kind === 'delta'
      ? `saved <code>${s.key}</code>: a delta of ${s.newPaths ?? 0} new paths, ${formatBytes(s.bytes)} of NARs (the chain holds ${s.paths} paths)`
      : `saved <code>${s.key}</code>: ${s.paths} paths, ${formatBytes(s.bytes)} of NARs${s.kind === 'base' ? ' (a new base)' : ''}`;
  const purged = s.purge
    ? s.purge.problem
      ? ` Superseded entries not deleted: ${escapeHtml(s.purge.problem)}${s.purge.deleted.length ? ` (${s.purge.deleted.length} deleted before)` : ''}.`
      : ` Deleted ${s.purge.deleted.length} superseded entr${s.purge.deleted.length === 1 ? 'y' : 'ies'} (${formatBytes(s.purge.bytes)}).`
    : '';
  await core.summary
    .addRaw(`<p>Store cache ${what}, in ${round(s.seconds)} s (post step: cache save).${purged}</p>`, true)
    .write()
    .catch((error: unknown) => core.warning(`job summary not written: ${error instanceof Error ? error.message : String(error)}`));
}

/** One repository a merge put the index in, with its tags. */
export interface MergedTo {
  registry: string;
  repository: string;
  tags: string[];
  /** How each image of the index got there. */
  placed?: { digest: string; action: 'present' | 'mounted' | 'copied' }[];
}

export interface MergeReport extends MergedTo {
  /** The other repositories `tags` names, each with the same index. */
  others?: MergedTo[];
  index: { digest: string; size: number };
  images: { ref: string; digest: string; platform: { os: string; architecture: string; variant?: string } }[];
  seconds: number;
}

/** Outputs and summary of a merge: the index digest, and one row per platform. */
export async function reportMerge(r: MergeReport): Promise<void> {
  const platform = (p: MergeReport['images'][number]['platform']) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
  const m = {
    digest: r.index.digest,
    image: `${r.registry}/${r.repository}@${r.index.digest}`,
    imageid: '',
    tags: [r, ...(r.others ?? [])].flatMap((o) => o.tags.map((t) => `${o.registry}/${o.repository}:${t}`)),
    repositories: [r, ...(r.others ?? [])].map((o) => ({
      image: `${o.registry}/${o.repository}@${r.index.digest}`,
      tags: o.tags.map((t) => `${o.registry}/${o.repository}:${t}`),
      images: Object.fromEntries((o.placed ?? []).map((i) => [i.digest, i.action])),
    })),
    'store-path': '',
    'cache-hit': 'false',
    pushed: true,
    format: 'image index',
    platforms: r.images.map((i) => ({ platform: platform(i.platform), digest: i.digest, ref: i.ref })),
    seconds: { merge: round(r.seconds) },
  };
  core.setOutput('digest', m.digest);
  core.setOutput('image', m.image);
  core.setOutput('imageid', '');
  core.setOutput('tags', m.tags.join('\n'));
  core.setOutput('store-path', '');
  core.setOutput('cache-hit', 'false');
  core.setOutput('metadata', JSON.stringify(m));
  setDocumentOutputs({ notes: [] }); // an index has no SBOM of its own: its images carry theirs
  if (!process.env.GITHUB_STEP_SUMMARY) return;
  await core.summary
    .addHeading(`Merged ${r.registry}/${r.repository}`, 3)
    .addRaw(`<p>Index <code>${m.digest}</code> under ${r.tags.map((t) => `<code>${t}</code>`).join(' ') || 'its digest'}; nothing was built.</p>`, true)
    .addRaw(r.others?.length ? `<p>The same index in ${r.others.map((o) => `<code>${o.registry}/${o.repository}</code> (${o.tags.map((t) => `<code>${t}</code>`).join(' ') || 'its digest'})`).join(', ')}.</p>` : '', true)
    .addTable([
      [
        { data: 'Platform', header: true },
        { data: 'Image', header: true },
      ],
      ...r.images.map((i) => [platform(i.platform), `<code>${i.digest}</code>`]),
    ])
    .write()
    .catch((error: unknown) => core.warning(`job summary not written: ${error instanceof Error ? error.message : String(error)}`));
}
