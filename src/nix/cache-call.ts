// One @actions/cache call (a restore or a save) run in a child process under a watchdog, so that a cache
// service that is down or stalls costs the job seconds.
//
// Why a child process: @actions/cache v6 cannot bound its own calls. restoreCache and saveCache build
// their Twirp client without options (5 attempts, backoff from 3 s: about 25 s per call when every
// request answers 500) and with no socket timeout (a service that takes the connection and never answers
// holds the call for ever); DownloadOptions.timeoutInMs and segmentTimeoutInMs (and
// SEGMENT_DOWNLOAD_TIMEOUT_MINS) only reach the Azure SDK download; UploadOptions has no timeout at all.
// A Promise.race around the call in this process would leave its retries, sleeps and sockets behind: they
// would keep logging (and warn "Failed to restore" later, in the middle of the build), could still
// extract an archive into the directory the build reads, and would keep Node alive after main is done.
// A child is killed whole, with the tar and zstd it started (its own process group), and leaves nothing.
//
// The child is the post step's own bundle (dist/post.js next to the running entry) started with
// NIA_CACHE_CALL set: post.ts then runs runCacheCall instead of the post step. It gets a RUNNER_TEMP of
// its own, where @actions/cache writes the archive, and hands its result back on fd 3.
//
// The watchdog reads what @actions/cache prints (it prints its ::debug:: lines whether or not debug
// logging is on; the runner hides them). Each service call starts with a line that names it:
//   v2 (github.com) `[Request] GetCacheEntryDownloadURL|CreateCacheEntry|FinalizeCacheEntryUpload <url>`;
//   v1 (GHES)       `Resource Url: …/_apis/artifactcache/cache?keys=…` (lookup), `…/caches` (reserve),
//                   `Commiting cache` (commit).
// A service call gets CALL_MS to succeed, @actions/cache's own retries included (one retry fits). A
// transfer or a local step (download, extract, archive, upload) gets STALL_MS without progress: bytes
// reported ("Received N of M", "Sent N of M"), a chunk started, or files growing in the child's
// RUNNER_TEMP (the archive being downloaded or written) or in the directories it extracts to.
// The child's ::warning:: and ::error:: lines are shown as plain lines: the caller raises one warning.
import * as cache from '@actions/cache';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorLine } from '../log.js';
import { stepTempDir } from '../state.js';

export const CACHE_CALL_ENV = 'NIA_CACHE_CALL';
/** Time for one service call (lookup, reserve, commit) to succeed, retries included. */
export const CALL_MS = 5_000;
/** Time a transfer or local step may go without progress. */
export const STALL_MS = 8_000;

export type CacheCallRequest =
  | {
      op: 'restore';
      paths: string[];
      key: string;
      restoreKeys: string[];
      /** A chain manifest's file name in paths[0]: after the first restore, the child restores the entries
       *  it lists (exact keys, in order), keeping the files named in `keep` as the first entry had them. */
      follow?: { manifest: string; keep: string[] };
    }
  | { op: 'save'; paths: string[]; key: string };

export interface RestoreValue {
  key: string | null;
  /** With follow: the listed entries restored, and those the service no longer holds (evicted, or not visible from this ref). */
  chain?: { restored: string[]; missing: string[] };
}
export interface SaveValue {
  id: number;
}

export interface CacheCallOutcome<T> {
  /** What restoreCache or saveCache returned, when the child got that far. */
  value?: T;
  /** The watchdog stopped the call: what it was doing, and for how long. */
  timedOut?: string;
  /** "Failed to restore: X" / "Failed to save: X" as @actions/cache printed it (X), at which level; or the child's own error. */
  failure?: { message: string; level: 'error' | 'warning' | 'info' };
  /** The warnings and errors @actions/cache printed (shown as plain lines). */
  messages: string[];
  seconds: number;
}

export interface CacheCallOptions {
  /** The script to run as the child (default: post.js next to the running entry). */
  script?: string;
  callMs?: number;
  stallMs?: number;
  /** Directories whose growth counts as progress, besides the child's RUNNER_TEMP. */
  watch?: string[];
  /** Where the child's output is relayed (default: this process's stdout). */
  write?: (text: string) => void;
}

/** `retried`: the marker is printed again for each retry of the call (v1's Resource Url), so a repeat is
 *  the same call; v2 prints its `[Request]` once per call, so a repeat is the next call (a chain's lookups). */
type Phase = { name: string; kind: 'call' | 'work'; retried?: true; marker?: string };

const RPC: Record<string, string> = {
  GetCacheEntryDownloadURL: 'lookup',
  CreateCacheEntry: 'reserve',
  FinalizeCacheEntryUpload: 'commit',
};

/** The phase a line of @actions/cache's output starts, if it starts one. */
export function phaseOf(line: string, op: CacheCallRequest['op']): Phase | undefined {
  let m = /^::debug::\[Request\] (\w+) /.exec(line);
  if (m) return { name: RPC[m[1]!] ?? m[1]!, kind: 'call' };
  m = /^::debug::Resource Url: \S*\/_apis\/artifactcache\/(cache\?|caches$)/.exec(line);
  if (m) return { name: m[1] === 'caches' ? 'reserve' : 'lookup', kind: 'call', retried: true, marker: line };
  if (/^::debug::Commiting cache/.test(line)) return { name: 'commit', kind: 'call' };
  if (/^::debug::Starting download of archive to: /.test(line)) return { name: 'download', kind: 'work' };
  // v1 restore logs it before the download; both saves before making the archive.
  if (/^::debug::Archive Path: /.test(line)) return { name: op === 'restore' ? 'download' : 'archive', kind: 'work' };
  if (op === 'restore' && /^Cache Size: ~/.test(line)) return { name: 'extract', kind: 'work' };
  if (/^::debug::(Attempting to upload cache located at: |Upload cache$)/.test(line)) return { name: 'upload', kind: 'work' };
  return undefined;
}

/** Total bytes of the files under these directories (missing ones count 0). */
async function treeBytes(dirs: string[]): Promise<number> {
  let total = 0;
  for (const dir of dirs) {
    const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
    for (const name of names) {
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s?.isFile()) total += s.size;
    }
  }
  return total;
}

const decode = (s: string): string => s.replace(/%0D/g, '').replace(/%0A/g, ' — ').replace(/%25/g, '%');

/** post.js next to the entry running now (dist/index.js in main, dist/post.js in post). */
function defaultScript(): string {
  return join(dirname(process.argv[1] ?? '.'), 'post.js');
}

/** Runs one restore or save in a child under the watchdog; never throws. */
export async function cacheCall<T>(request: CacheCallRequest, opts: CacheCallOptions = {}): Promise<CacheCallOutcome<T>> {
  const started = Date.now();
  const callMs = opts.callMs ?? CALL_MS;
  const stallMs = opts.stallMs ?? STALL_MS;
  const write = opts.write ?? ((text: string) => void process.stdout.write(text));
  const script = opts.script ?? defaultScript();
  const messages: string[] = [];
  const outcome = (o: Partial<CacheCallOutcome<T>>): CacheCallOutcome<T> => ({ ...o, messages, seconds: (Date.now() - started) / 1000 });
  if (!existsSync(script)) return outcome({ failure: { message: `cannot run the cache call: ${script} not found`, level: 'error' } });

  // Recorded for the post step: a step cancelled mid-call leaves its partial archive to be removed there.
  const temp = stepTempDir('nia-cache-call-');
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, [CACHE_CALL_ENV]: JSON.stringify(request), RUNNER_TEMP: temp },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    detached: true, // a process group of its own: killed with its tar and zstd
  });
  const killGroup = (): void => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killGroup);

  let phase: Phase = { name: 'start', kind: 'work' };
  let lastError: string | undefined;
  let failure: CacheCallOutcome<T>['failure'];
  let timedOut: string | undefined;
  let reported = -1;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    const ms = phase.kind === 'call' ? callMs : stallMs;
    timer = setTimeout(() => {
      const s = `${+(ms / 1000).toFixed(1)} s`;
      if (phase.kind === 'call') timedOut = lastError ? `the ${phase.name} kept failing for ${s}: ${lastError}` : `the ${phase.name} got no answer in ${s}`;
      else timedOut = `the ${phase.name} made no progress for ${s}${lastError ? ` (last error: ${lastError})` : ''}`;
      killGroup();
    }, ms);
  };
  const enter = (next: Phase): void => {
    // A call's retries repeat its marker (v1): they do not buy it more time. v2's markers are one per call.
    // A v1 lookup of other keys (the next entry of a chain) is another call.
    if (next.kind === 'call' && next.retried && phase.kind === 'call' && next.name === phase.name && next.marker === phase.marker) return;
    phase = next;
    lastError = undefined;
    arm();
  };
  const progress = (): void => {
    if (phase.kind === 'work' && !timedOut) arm();
  };
  arm();

  const watched = [temp, ...(opts.watch ?? [])];
  let bytes = await treeBytes(watched);
  let polling = false;
  const poll = setInterval(() => {
    if (polling) return;
    polling = true;
    void treeBytes(watched)
      .then((now) => {
        if (now !== bytes) progress();
        bytes = now;
      })
      .finally(() => (polling = false));
  }, 1000);

  const onLine = (line: string): void => {
    const annotation = /^::(warning|error)(?: [^:]*)?::(.*)$/.exec(line);
    const text = annotation ? decode(annotation[2]!) : line;
    const failed = /^Failed to (?:restore|save): (.*)$/.exec(text);
    if (failed) failure = { message: failed[1]!, level: (annotation?.[1] as 'warning' | 'error' | undefined) ?? 'info' };
    const attempt = /Attempt \d+ of \d+ failed with error: (.*?)(?:\. Retrying request in \d+ ms\.\.\.)?$/.exec(text);
    if (attempt) lastError = attempt[1];
    if (annotation) {
      messages.push(text);
      write(`@actions/cache: ${text}\n`);
      return;
    }
    const next = phaseOf(line, request.op);
    if (next) enter(next);
    const sent = /^(?:Received|Sent) (\d+) of \d+/.exec(line);
    if (sent && Number(sent[1]) > reported) {
      reported = Number(sent[1]);
      progress();
    }
    if (/^::debug::(Uploading chunk|Downloading segment) /.test(line)) progress();
    write(`${line}\n`);
  };
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    lines.forEach(onLine);
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2000);
    process.stderr.write(chunk);
  });
  let result = '';
  const resultPipe = child.stdio[3] as NodeJS.ReadableStream;
  resultPipe.setEncoding('utf8');
  resultPipe.on('data', (chunk: string) => (result += chunk));

  const exit = await new Promise<string>((resolve) => {
    child.on('error', (error) => resolve(errorLine(error)));
    child.on('close', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`));
  });
  if (partial) onLine(partial);
  clearTimeout(timer);
  clearInterval(poll);
  process.off('exit', killGroup);
  killGroup(); // anything the child left running in its group
  await rm(temp, { recursive: true, force: true }).catch(() => undefined);

  if (timedOut) return outcome({ timedOut });
  let parsed: { value?: T; error?: string } | undefined;
  try {
    parsed = result.trim() ? (JSON.parse(result) as { value?: T; error?: string }) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed?.error !== undefined) return outcome({ failure: { message: parsed.error, level: 'error' } });
  if (!parsed || !('value' in parsed)) {
    const last = stderr.trim().split('\n').pop();
    return outcome({ failure: { message: `the cache call ended (${exit}) without a result${last ? `: ${last}` : ''}`, level: 'error' } });
  }
  return outcome({ value: parsed.value as T, ...(failure ? { failure } : {}) });
}

/** Whether this process is a cache call's child (post.ts then runs runCacheCall, not the post step). */
export function isCacheCall(): boolean {
  return Boolean(process.env[CACHE_CALL_ENV]);
}

/**
 * Restores the entries a restored chain manifest lists besides `matched`, each by its exact key (one
 * lookup each: a service that matched another key by prefix counts as missing), and puts back the files
 * in `keep` as the newest entry had them (older entries carry older copies).
 */
async function followChain(paths: string[], matched: string, follow: { manifest: string; keep: string[] }): Promise<{ restored: string[]; missing: string[] }> {
  const dir = paths[0]!;
  let listed: string[] = [];
  try {
    const m = JSON.parse(readFileSync(join(dir, follow.manifest), 'utf8')) as { key?: unknown; base?: unknown; deltas?: unknown };
    // A manifest copied into another entry names that one's chain, not this one's: the entry stands alone.
    if (m.key !== matched) return { restored: [], missing: [] };
    listed = [m.base, ...(Array.isArray(m.deltas) ? m.deltas : [])].filter((k): k is string => typeof k === 'string' && k !== matched);
  } catch {
    return { restored: [], missing: [] }; // no manifest: an entry that stands alone
  }
  const kept = new Map<string, Buffer | undefined>(follow.keep.map((name) => [name, existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : undefined]));
  const restored: string[] = [];
  const missing: string[] = [];
  for (const key of listed) {
    const got = await cache.restoreCache(paths, key, []);
    (got === key ? restored : missing).push(key);
  }
  for (const [name, bytes] of kept) {
    if (bytes) writeFileSync(join(dir, name), bytes);
    else rmSync(join(dir, name), { force: true });
  }
  return { restored, missing };
}

/** The child's side: one restoreCache or saveCache, its result on fd 3, then exit. */
export async function runCacheCall(): Promise<void> {
  // A parent that died (the runner cancelled the step) leaves nobody to wait for the answer.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 1000).unref();
  let out: { value?: RestoreValue | SaveValue; error?: string };
  try {
    const request = JSON.parse(process.env[CACHE_CALL_ENV] ?? '') as CacheCallRequest;
    if (request.op === 'restore') {
      const key = (await cache.restoreCache(request.paths, request.key, request.restoreKeys)) ?? null;
      out = { value: { key, ...(key && request.follow ? { chain: await followChain(request.paths, key, request.follow) } : {}) } };
    } else {
      // v1 (GHES) uploads in chunks of this size, each a progress mark for the watchdog (v2 sets its own).
      out = { value: { id: await cache.saveCache(request.paths, request.key, { uploadChunkSize: 4 * 1024 * 1024 }) } };
    }
  } catch (error) {
    out = { error: errorLine(error) };
  }
  writeSync(3, `${JSON.stringify(out)}\n`);
  process.exit(0);
}
