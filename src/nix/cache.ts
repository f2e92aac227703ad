// The Nix store cache: one GitHub Actions cache entry per job holding a Nix binary cache directory.
// Restore (main step, before the build) fetches the newest matching entry and hands the directory to
// Nix as a substituter, so the build fetches only the paths it needs. Save (post step, also after a
// failed push or build) writes the build's closure as realised here, minus what an upstream cache
// serves and minus the image itself, and saves it under a key naming that path set — nothing when it
// is unchanged.
//
// Keys: nix-image-<os>-<arch>-<attr>-<flake.lock hash>-<path set hash>; restored by the prefix up to the
// flake.lock hash (cache-hit true), else up to <attr>- or <arch>- (cache-hit partial). cache-key
// replaces everything before the path set hash.
//
// A cache service that is down or stalls costs seconds: each restore and save runs in a child under a
// watchdog (cache-call.ts) that gives each service call CALL_MS and each transfer STALL_MS without
// progress. A restore that failed or timed out is recorded in the state carried to post, and post then
// does not try the service again. Either way the job goes on without the cache, with one warning.
import * as cache from '@actions/cache';
import * as core from '@actions/core';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { describeBinaryCache, STORE_CACHE_PRIORITY, writeBinaryCache } from './binary-cache.js';
import { cacheCall, type CacheCallOutcome, type RestoreValue, type SaveValue } from './cache-call.js';
import { closure, pathInfo, type PathInfo } from './store.js';

export interface RestoreOptions {
  enabled: boolean;
  keyPrefix?: string;
  attr: string;
  flake: string;
  maxSize: number;
  nix: string;
  /** Environment of this action's Nix invocations (NIX_CONFIG from setup). */
  env: Record<string, string>;
}

export interface CacheState {
  dir: string;
  /** The key up to the path set hash, ending in "-". */
  keyBase: string;
  restoredKey?: string;
  nix: string;
  maxSize: number;
  /** Why the restore failed or timed out (unreachable: the service failed or did not answer in time):
   *  the post step then does not try to save. */
  restoreFailed?: { reason: string; unreachable: boolean };
}

export interface RestoreResult {
  hit: 'true' | 'partial' | 'false';
  restored?: { paths: number; bytes: number; seconds: number; key?: string };
  note?: string;
  /** Environment for the build: NIX_CONFIG with the restored directory as a substituter. */
  env: Record<string, string>;
  state?: CacheState;
}

/** Where the binary cache lives: the same path in every job, as @actions/cache versions entries by path. */
export function cacheDir(home = homedir()): string {
  return join(home, '.cache', 'nix-image-action', 'binary-cache');
}

/** A warning when Nix ignored the restored store cache because the user running it is not trusted. */
export function untrustedCacheWarning(ignored: string[], dir = cacheDir(), user = userInfo().username): string | undefined {
  const url = `file://${dir}`;
  if (!ignored.some((u) => u === url || u.startsWith(`${url}?`))) return undefined;
  return (
    `store cache: Nix ignored ${url} because ${user} is not a trusted user, so the build could not use it; ` +
    `add "trusted-users = root ${user}" to nix.conf, or let this action install Nix (README, Store cache)`
  );
}

/** The directory of a local flake reference, or undefined for a remote one. */
export function localFlakeDir(flake: string, cwd = process.env.GITHUB_WORKSPACE || process.cwd()): string | undefined {
  let ref = flake;
  if (ref.startsWith('path:')) ref = ref.slice('path:'.length);
  else if (ref.startsWith('git+file://')) ref = ref.slice('git+file://'.length);
  else if (/^[a-z+]+:/.test(ref)) return undefined;
  ref = ref.split('?')[0]!;
  return isAbsolute(ref) ? ref : resolve(cwd, ref);
}

/** 16 hex digits naming the flake's inputs: its flake.lock, or the reference itself for a remote flake. */
export function lockHash(flake: string): string {
  const dir = localFlakeDir(flake);
  const lock = dir ? join(dir, 'flake.lock') : undefined;
  const source = lock && existsSync(lock) ? readFileSync(lock) : Buffer.from(`no-lock:${flake}`);
  return createHash('sha256').update(source).digest('hex').slice(0, 16);
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_');

export function cacheKeys(opts: { keyPrefix?: string; attr: string; flake: string; platform?: string; arch?: string }): { keyBase: string; restoreKeys: string[] } {
  if (opts.keyPrefix) {
    const keyBase = `${safe(opts.keyPrefix)}-`;
    return { keyBase, restoreKeys: [keyBase] };
  }
  const system = `nix-image-${opts.platform ?? process.platform}-${opts.arch ?? process.arch}-`;
  const withAttr = `${system}${safe(opts.attr)}-`;
  const keyBase = `${withAttr}${lockHash(opts.flake)}-`;
  return { keyBase, restoreKeys: [keyBase, withAttr, system] };
}

/**
 * The nix.conf line that hands the restored directory to the build. trusted=1: its paths need no
 * signature (it is this job's own cache entry, written by a workflow of this repository; Nix honours the
 * setting for root and trusted users, see README "Store cache"). priority: consulted after
 * cache.nixos.org and every other substituter, so it never stands in for a path upstream signs.
 */
export function substituterLine(dir: string): string {
  return `extra-substituters = file://${dir}?trusted=1&priority=${STORE_CACHE_PRIORITY}`;
}

function withSubstituter(env: Record<string, string>, dir: string): Record<string, string> {
  return { NIX_CONFIG: [env.NIX_CONFIG, substituterLine(dir)].filter(Boolean).join('\n') };
}

export async function restoreStoreCache(opts: RestoreOptions): Promise<RestoreResult> {
  if (!opts.enabled) return { hit: 'false', note: 'off (cache: false)', env: {} };
  if (!cache.isFeatureAvailable()) {
    core.warning('store cache: the GitHub Actions cache service is not available to this job; building without it');
    return { hit: 'false', note: 'cache service not available', env: {} };
  }
  const started = Date.now();
  const dir = cacheDir();
  const { keyBase, restoreKeys } = cacheKeys(opts);
  const state: CacheState = { dir, keyBase, nix: opts.nix, maxSize: opts.maxSize };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const call = await cacheCall<RestoreValue>({ op: 'restore', paths: [dir], key: keyBase, restoreKeys }, { watch: [dir] });
  const problem = cacheProblem(call);
  if (problem) {
    core.warning(
      problem.unreachable
        ? `store cache: the cache service was unreachable (${problem.reason}); the job went on without the store cache`
        : `store cache not restored (${problem.reason}); the job went on without it`,
    );
    // Whatever a stopped extraction left there is not handed to the build.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    state.restoreFailed = problem;
    return { hit: 'false', note: problem.unreachable ? 'cache service unreachable' : 'not restored', env: {}, state };
  }
  const matched = call.value?.key ?? undefined;
  if (!matched) {
    core.info(`store cache: no entry for ${restoreKeys.join(' or ')}`);
    return { hit: 'false', note: 'no entry yet', env: {}, state };
  }
  state.restoredKey = matched;
  const found = await describeBinaryCache(dir);
  const seconds = (Date.now() - started) / 1000;
  const hit = matched.startsWith(keyBase) ? 'true' : 'partial';
  core.info(`store cache: restored ${matched} (${found.paths} paths, ${found.bytes} bytes) in ${seconds.toFixed(1)} s`);
  return {
    hit,
    restored: { ...found, seconds, key: matched },
    env: withSubstituter(opts.env, dir),
    state,
  };
}

export interface SaveSummary {
  key?: string;
  paths: number;
  bytes: number;
  seconds: number;
  skipped?: string;
}

/** What a build leaves: its derivation, and its output unless the build failed. */
export interface Built {
  drvPath: string;
  storePath?: string;
}

/** What to keep: the output's runtime closure, then the build-time paths present here; no signed paths, not the image. */
export async function pathsToSave(nix: string, built: Built, maxSize: number, env: NodeJS.ProcessEnv): Promise<{ keep: PathInfo[]; dropped: number }> {
  const runtime = built.storePath ? await closure(nix, [built.storePath], env) : [];
  const buildTime = (await closure(nix, [built.drvPath], env, true)).filter((p) => !p.endsWith('.drv') && existsSync(p));
  const ordered = [...new Set([...runtime, ...buildTime])].filter((p) => p !== built.storePath);
  const infos = new Map((await pathInfo(nix, ordered, env)).map((i) => [i.path, i]));
  const keep: PathInfo[] = [];
  let total = 0;
  let dropped = 0;
  for (const path of ordered) {
    const info = infos.get(path);
    // A signed path came from a binary cache (cache.nixos.org, a cachix): it will come from there again.
    if (!info || info.signatures.length > 0) continue;
    if (total + info.narSize > maxSize) {
      dropped++;
      continue;
    }
    total += info.narSize;
    keep.push(info);
  }
  return { keep, dropped };
}

export function pathSetKey(keyBase: string, paths: PathInfo[]): string {
  const set = paths.map((p) => p.path).sort().join('\n');
  return `${keyBase}${createHash('sha256').update(set).digest('hex').slice(0, 16)}`;
}

/** What went wrong in a cache call, if anything; unreachable when the service failed or did not answer in time. */
export function cacheProblem(call: CacheCallOutcome<unknown>): { reason: string; unreachable: boolean } | undefined {
  if (call.timedOut) return { reason: call.timedOut, unreachable: true };
  if (!call.failure) return undefined;
  const reason = call.failure.message;
  // An info-level "Failed to save" is a refused reservation (another job saves the same key): the service answered.
  if (call.failure.level === 'info') return { reason, unreachable: false };
  return { reason, unreachable: SERVICE_DOWN.test(reason) };
}

/** A failure of the service or the network, as @actions/cache words it. */
const SERVICE_DOWN = /\(5\d\d\)|responded with 5\d\d|status code 5\d\d|\b(ECONN\w+|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EPIPE|ENETUNREACH|EHOSTUNREACH)\b|socket hang up|NetworkError|network error|Unable to make request|timed? ?out/i;

export async function saveStoreCache(raw: unknown, built: Built): Promise<SaveSummary | undefined> {
  const state = raw as CacheState | undefined;
  if (!state?.dir || !state.keyBase) return undefined;
  const started = Date.now();
  if (state.restoreFailed) {
    // The main step already lost its time on the service: the post step does not try it again.
    core.info(`store cache: not saved: the restore failed in the main step (${state.restoreFailed.reason}), so the cache service is not tried again`);
    const skipped = state.restoreFailed.unreachable ? 'the cache service was unreachable when restoring' : 'the restore failed';
    return { paths: 0, bytes: 0, seconds: (Date.now() - started) / 1000, skipped };
  }
  const env = { ...process.env, NIX_CONFIG: ['experimental-features = nix-command flakes', process.env.NIX_CONFIG].filter(Boolean).join('\n') };
  const { keep, dropped } = await pathsToSave(state.nix, built, state.maxSize, env);
  const key = pathSetKey(state.keyBase, keep);
  const summary = (s: Omit<SaveSummary, 'seconds'>): SaveSummary => ({ ...s, seconds: (Date.now() - started) / 1000 });
  if (keep.length === 0) {
    core.info('store cache: nothing built here that an upstream cache does not serve; nothing to save');
    return summary({ paths: 0, bytes: 0, skipped: 'nothing to save' });
  }
  if (key === state.restoredKey) {
    core.info(`store cache: the path set is unchanged since ${key}; nothing new to save`);
    return summary({ key, paths: keep.length, bytes: 0, skipped: 'unchanged' });
  }
  if (dropped > 0) core.warning(`store cache: ${dropped} path(s) left out to stay under cache-max-size`);
  const written = await writeBinaryCache(state.dir, keep, state.nix, env);
  core.info(`store cache: ${keep.length} paths (${written.written} new, ${written.kept} restored), ${written.bytes} bytes; saving as ${key}`);
  const call = await cacheCall<SaveValue>({ op: 'save', paths: [state.dir], key });
  const problem = cacheProblem(call);
  if (problem) {
    core.warning(
      problem.unreachable
        ? `store cache: the cache service was unreachable (${problem.reason}); the job went on without saving the store cache`
        : `store cache not saved: ${problem.reason}`,
    );
    return summary({ key, paths: keep.length, bytes: written.bytes, skipped: problem.unreachable ? 'the cache service was unreachable' : problem.reason });
  }
  const id = call.value?.id ?? -1;
  if (id <= 0) return summary({ key, paths: keep.length, bytes: written.bytes, skipped: 'the cache service did not take it (see the log above)' });
  return summary({ key, paths: keep.length, bytes: written.bytes });
}
