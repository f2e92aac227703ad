// The Nix store cache: GitHub Actions cache entries (at most one saved per job) holding a Nix binary cache
// directory. Restore (main step, before the build) fetches the newest matching entry and the entries it
// builds on (below), and hands the directory to Nix as a substituter, so the build fetches only the paths
// it needs. Save (post step, also after a failed push or build) takes the build's closure as realised
// here, minus what an upstream cache serves and minus the image itself, and saves what the restored
// entries lack under a key naming that path set — nothing when they hold it all.
//
// Entries form chains, so a commit that changes one package saves that package, not the closure again:
// a base entry holds a whole path set; a delta entry holds only the paths the entries it builds on lack,
// and a manifest (CHAIN_MANIFEST) naming them: the base key and the delta keys before it. A restore looks
// up the newest entry by prefix, reads its manifest, and restores every entry it lists by its exact key,
// in the same child; an entry the service no longer holds (evicted) is left out, Nix builds what it held,
// and the next save writes a new base. Save writes a new base when there is no usable chain (none
// restored, a key prefix other than this job's, an entry missing, another signer), when the chain holds
// MAX_DELTAS deltas, or when its deltas would outweigh DELTA_SHARE of the base; else a delta. With
// cache-purge, a new base deletes the entries it supersedes (the old base and its deltas, this ref only)
// through the REST API (purge.ts).
//
// Keys: base nix-image-<os>-<arch>-<attr>-<flake>-<lock>-<path set hash>, delta <base key>-d<n>-<path
// set hash> (the path set the chain completes): <flake> names which flake (its
// reference, `dir` included; a local one by its path relative to the workspace), <lock> its inputs as
// `nix flake metadata` locks them. Restored by the prefix up to <lock> (cache-hit true), else up to
// <flake>-, <attr>- or <arch>- (cache-hit partial). cache-key replaces everything before the path set hash.
//
// Trust: with a key (binary-cache-key, or binary-cache-public-key for a job that only reads), the
// restored directory is a substituter like any other: Nix takes a path from it only with a signature by
// that key (extra-trusted-public-keys), and the save signs every narinfo. Without one, the directory is
// trusted as it is (?trusted=1): whoever can write the repository's cache can put any path in it.
//
// A cache service that is down or stalls costs seconds: each restore and save runs in a child under a
// watchdog (cache-call.ts) that gives each service call CALL_MS and each transfer STALL_MS without
// progress. A restore that failed or timed out is recorded in the state carried to post, and post then
// does not try the service again. Either way the job goes on without the cache, with one warning.
import * as cache from '@actions/cache';
import * as core from '@actions/core';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { withoutSecrets } from '../image/child-env.js';
import { describeBinaryCache, narinfoSignedBy, restoredNarMatches, STORE_CACHE_PRIORITY, writeBinaryCache } from './binary-cache.js';
import { cacheCall, type CacheCallOutcome, type RestoreValue, type SaveValue } from './cache-call.js';
import { keyName, parseSecretKey } from './signing.js';
import { layerRecordFile, layerRecordTrusted, recordDigest, signLayerRecord } from './layer-record.js';
import { closure, nixOutput, pathInfo, type PathInfo } from './store.js';
import { inChain, isBaseKey, purgeSuperseded, type PurgeResult } from './purge.js';
import { secretSettingOf } from './secrets.js';

/** The chain manifest every entry carries (not trusted for anything a signature guards: it only names entries to fetch). */
export const CHAIN_MANIFEST = 'nix-image-action-chain.json';
/** A chain's deltas may hold at most this share of its base's NAR bytes; the save past it writes a new base. */
export const DELTA_SHARE = 0.5;
/** At most this many deltas on a base (each is one more lookup and download on restore). */
export const MAX_DELTAS = 8;

export interface ChainManifest {
  version: 1;
  /** This entry's key. */
  key: string;
  /** The base entry's key (this key for a base). */
  base: string;
  /** The delta entries this one builds on, oldest first (this one not included). */
  deltas: string[];
  /** The store paths of the path set the chain up to this entry completes, sorted. */
  paths: string[];
  /** NAR bytes in the base, and in the deltas up to and including this one. */
  baseBytes: number;
  deltaBytes: number;
  /** The public key (`name:base64`) the narinfos are signed by (absent: unsigned). */
  signer?: string;
}

async function readManifest(dir: string): Promise<ChainManifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, CHAIN_MANIFEST), 'utf8')) as ChainManifest;
    if (m?.version === 1 && typeof m.key === 'string' && typeof m.base === 'string' && Array.isArray(m.deltas) && Array.isArray(m.paths)) return m;
  } catch {
    // none (an entry from before chains: it stands alone) or unreadable
  }
  return undefined;
}

export interface RestoreOptions {
  enabled: boolean;
  keyPrefix?: string;
  attr: string;
  flake: string;
  maxSize: number;
  /** cache-purge: a new base deletes the entries it supersedes. */
  purge?: boolean;
  nix: string;
  /** NixSetup.version: which `nix path-info --json` form to use. */
  nixVersion?: string;
  /** Public keys (`name:base64`) whose signature a restored path needs: binary-cache-public-key's and
   *  binary-cache-key's own. Empty: the restored directory is trusted without signatures. */
  trustedKeys?: string[];
  /** Environment of this action's Nix invocations (NIX_CONFIG from setup). */
  env: Record<string, string>;
  /** Where a local flake's path is taken relative to (GITHUB_WORKSPACE, else the working directory). */
  workspace?: string;
  /** build-args, split: part of the key (see cacheKeys). */
  buildArgs?: string[];
}

export interface CacheState {
  dir: string;
  /** The key up to the path set hash, ending in "-". */
  keyBase: string;
  restoredKey?: string;
  /** The chain the restored entry completes (from its manifest; absent: none, or an entry that stands alone):
   *  its base key and its delta keys, the restored entry's included when it is a delta, oldest first. */
  chain?: { base: string; deltas: string[]; baseBytes: number; deltaBytes: number; signer?: string; missing: string[] };
  nix: string;
  nixVersion?: string;
  maxSize: number;
  /** cache-purge (the post step reads github-token for it). */
  purge?: boolean;
  /** Public keys a restored path needs a signature by (none: trusted without). */
  trustedKeys?: string[];
  /** With trusted keys: the digest of the layer record this job may take, the one restored with a valid
   *  signature or the one it wrote itself (null: none). Any other record is left out, and not signed. */
  layerRecord?: string | null;
  /** Why the restore failed or timed out (unreachable: the service failed or did not answer in time):
   *  the post step then does not try to save. */
  restoreFailed?: { reason: string; unreachable: boolean };
}

export interface RestoreResult {
  hit: 'true' | 'partial' | 'false';
  restored?: { paths: number; bytes: number; seconds: number; key?: string; entries?: number; missing?: number };
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

/** The `dir` parameter of a flake reference (the flake's subdirectory), or ''. */
export function flakeSubdir(flake: string): string {
  const query = flake.split('?')[1];
  return query ? (new URLSearchParams(query).get('dir') ?? '') : '';
}

/**
 * Which flake, as the key names it: a local one by its directory (`dir` included) relative to the
 * workspace, so the same repository gives the same name on every runner; a remote one by its reference
 * (`dir` included), without parameters that do not pick the flake.
 */
export function flakeIdentity(flake: string, workspace = process.env.GITHUB_WORKSPACE || process.cwd()): string {
  const dir = localFlakeDir(flake, workspace);
  if (dir) return `local:${relative(resolve(workspace), join(dir, flakeSubdir(flake))).split('\\').join('/') || '.'}`;
  const [base, query] = flake.split('?');
  const params = new URLSearchParams(query ?? '');
  // Not the rev (`?rev=`, `github:o/r/<rev>`): every commit of a flake is the same flake, as a local one is.
  for (const name of [...params.keys()]) if (!['dir', 'ref', 'host'].includes(name)) params.delete(name);
  params.sort();
  const source = base!.replace(/^((?:github|gitlab|sourcehut):[^/]+\/[^/]+)\/[0-9a-f]{40}$/, '$1');
  return `remote:${source}${params.size > 0 ? `?${params.toString()}` : ''}`;
}

const hex = (text: string | Buffer, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);

/**
 * 16 hex digits naming the flake's locked inputs: `locks` of `nix flake metadata --json` (the lock file as
 * Nix resolves it, the same whether or not flake.lock was written yet). If Nix cannot say, the flake.lock
 * file, else the reference.
 */
export async function lockHash(nix: string, flake: string, env: NodeJS.ProcessEnv, workspace?: string): Promise<string> {
  try {
    const metadata = JSON.parse(await nixOutput(nix, ['flake', 'metadata', '--json', '--no-write-lock-file', flake], env)) as { locks?: unknown };
    if (metadata.locks) return hex(JSON.stringify(metadata.locks), 16);
  } catch (error) {
    core.info(`store cache: nix flake metadata ${flake} failed (${(error as Error).message}); keyed by flake.lock`);
  }
  const dir = localFlakeDir(flake, workspace);
  const lock = dir ? join(dir, flakeSubdir(flake), 'flake.lock') : undefined;
  return hex(lock && existsSync(lock) ? readFileSync(lock) : Buffer.from(`no-lock:${flake}`), 16);
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_');

/** Flags that change what Nix prints, not what it builds. */
const LOG_FLAGS = new Set(['-L', '--print-build-logs', '--show-trace', '-v', '--verbose', '--quiet', '--debug', '--no-link', '--json', '--keep-going', '-k']);

/** build-args as they name the build in a key: no log flags, no secret values (a key is listed to anyone
 *  who can read the repository's caches), and an input overridden to a flake's rev named without the rev
 *  (`--override-input app github:o/app/<sha>` is the same input on every commit). */
export function keyArgs(args: string[]): string[] {
  return args.flatMap((arg, i) => {
    if (LOG_FLAGS.has(arg)) return [];
    if (secretSettingOf(args, i) !== undefined) return ['<secret>'];
    if (args[i - 2] === '--override-input') return [flakeIdentity(arg)];
    return [arg];
  });
}

/**
 * The key up to its path set, and the prefixes to restore from. `buildArgs` (split) name the build as much
 * as the flake does (`--system`, `--override-input`, `--arg`): matrix legs that differ only there keep
 * entries of their own. None: the key is the flake's alone.
 */
export function cacheKeys(opts: { keyPrefix?: string; attr: string; flakeId: string; lock: string; buildArgs?: string[]; platform?: string; arch?: string }): { keyBase: string; restoreKeys: string[] } {
  if (opts.keyPrefix) {
    const keyBase = `${safe(opts.keyPrefix)}-`;
    return { keyBase, restoreKeys: [keyBase] };
  }
  const system = `nix-image-${opts.platform ?? process.platform}-${opts.arch ?? process.arch}-`;
  const withAttr = `${system}${safe(opts.attr)}-`;
  const args = keyArgs(opts.buildArgs ?? []);
  const build = args.length ? `${opts.flakeId}\0${args.join('\0')}` : opts.flakeId;
  const withFlake = `${withAttr}${hex(build, 8)}-`;
  const keyBase = `${withFlake}${opts.lock}-`;
  return { keyBase, restoreKeys: [keyBase, withFlake, withAttr, system] };
}

/**
 * The nix.conf line(s) that hand the restored directory to the build. priority: consulted after
 * cache.nixos.org and every other substituter, so it never stands in for a path upstream signs. With
 * trusted keys, a path needs a signature by one of them (Nix's require-sigs); without, trusted=1: its
 * paths need no signature (Nix honours that for root and trusted users, see README "Store cache").
 */
export function substituterLine(dir: string, trustedKeys: string[] = []): string {
  if (trustedKeys.length === 0) return `extra-substituters = file://${dir}?trusted=1&priority=${STORE_CACHE_PRIORITY}`;
  return `extra-substituters = file://${dir}?priority=${STORE_CACHE_PRIORITY}\nextra-trusted-public-keys = ${trustedKeys.join(' ')}`;
}

function withSubstituter(env: Record<string, string>, dir: string, trustedKeys: string[]): Record<string, string> {
  return { NIX_CONFIG: [env.NIX_CONFIG, substituterLine(dir, trustedKeys)].filter(Boolean).join('\n') };
}

export async function restoreStoreCache(opts: RestoreOptions): Promise<RestoreResult> {
  if (!opts.enabled) return { hit: 'false', note: 'off (cache: false)', env: {} };
  if (!cache.isFeatureAvailable()) {
    core.warning('store cache: the GitHub Actions cache service is not available to this job; building without it');
    return { hit: 'false', note: 'cache service not available', env: {} };
  }
  const started = Date.now();
  const dir = cacheDir();
  const workspace = opts.workspace ?? (process.env.GITHUB_WORKSPACE || process.cwd());
  const nixEnv = { ...withoutSecrets(process.env), ...opts.env };
  const { keyBase, restoreKeys } = cacheKeys({
    keyPrefix: opts.keyPrefix,
    attr: opts.attr,
    flakeId: flakeIdentity(opts.flake, workspace),
    ...(opts.buildArgs?.length ? { buildArgs: opts.buildArgs } : {}),
    lock: opts.keyPrefix ? '' : await lockHash(opts.nix, opts.flake, nixEnv, workspace),
  });
  const trustedKeys = opts.trustedKeys ?? [];
  const state: CacheState = { dir, keyBase, nix: opts.nix, maxSize: opts.maxSize, ...(opts.purge ? { purge: true } : {}), ...(opts.nixVersion ? { nixVersion: opts.nixVersion } : {}), ...(trustedKeys.length ? { trustedKeys, layerRecord: null } : {}) };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const follow = { manifest: CHAIN_MANIFEST, keep: [CHAIN_MANIFEST, layerRecordFile(dir).slice(dir.length + 1), `${layerRecordFile(dir).slice(dir.length + 1)}.sig`] };
  const call = await cacheCall<RestoreValue>({ op: 'restore', paths: [dir], key: keyBase, restoreKeys, follow }, { watch: [dir] });
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
  const manifest = await readManifest(dir);
  const chain = call.value?.chain ?? { restored: [], missing: [] };
  if (manifest && manifest.key === matched) {
    const deltas = manifest.key === manifest.base ? [] : [...manifest.deltas, manifest.key];
    state.chain = { base: manifest.base, deltas, baseBytes: manifest.baseBytes, deltaBytes: manifest.deltaBytes, missing: chain.missing, ...(manifest.signer ? { signer: manifest.signer } : {}) };
    if (chain.missing.length > 0) core.info(`store cache: ${chain.missing.length} entr${chain.missing.length === 1 ? 'y' : 'ies'} of its chain no longer held (${chain.missing.join(', ')}): Nix builds what they held, and this job saves a new base`);
  }
  const entries = 1 + chain.restored.length;
  // The layer record (which blob holds which diff id) is trusted under the same keys as the paths.
  if (!(await layerRecordTrusted(dir, trustedKeys))) {
    core.info(`store cache: its layer record carries no signature by ${trustedKeys.map(keyName).join(' or ')}: left out, no layer is reused on its word`);
  }
  if (trustedKeys.length > 0) state.layerRecord = await recordDigest(dir);
  const found = await describeBinaryCache(dir);
  const seconds = (Date.now() - started) / 1000;
  const hit = matched.startsWith(keyBase) ? 'true' : 'partial';
  core.info(
    `store cache: restored ${matched}${entries > 1 ? ` and the ${entries - 1} entr${entries === 2 ? 'y' : 'ies'} it builds on` : ''} (${found.paths} paths, ${found.bytes} bytes) in ${seconds.toFixed(1)} s; ` +
      (trustedKeys.length ? `Nix takes a path from it only signed by ${trustedKeys.map(keyName).join(' or ')}` : 'trusted without signatures (no binary-cache-key)'),
  );
  return {
    hit,
    restored: { ...found, seconds, key: matched, entries, ...(chain.missing.length ? { missing: chain.missing.length } : {}) },
    env: withSubstituter(opts.env, dir, trustedKeys),
    state,
  };
}

export interface SaveSummary {
  key?: string;
  /** Paths in the set the saved chain completes. */
  paths: number;
  /** NAR bytes of the entry saved (a delta: only its new paths). */
  bytes: number;
  seconds: number;
  skipped?: string;
  /** base: the whole path set; delta: only `newPaths`, on the restored chain. */
  kind?: 'base' | 'delta';
  newPaths?: number;
  /** What cache-purge deleted (or why it could not). */
  purge?: PurgeResult;
}

/** What a build leaves: its derivation, its output unless the build failed, and what its evaluation realised. */
export interface Built {
  drvPath: string;
  storePath?: string;
  /** What import from derivation realised while evaluating: derivations built, paths substituted. */
  evaluated?: string[];
}

/**
 * What to keep: the output's runtime closure, then the build-time paths present here, then what the
 * evaluation realised (import from derivation) with their closures; not the image. A path built here is
 * kept whatever it is signed with (a runner with secret-key-files signs its own builds); one substituted
 * is kept only when it came from this cache (unsigned, or signed by its own keys `ownKeys`): one signed
 * by another cache comes from there again.
 */
export async function pathsToSave(nix: string, built: Built, maxSize: number, env: NodeJS.ProcessEnv, opts: { ownKeys?: string[]; nixVersion?: string } = {}): Promise<{ keep: PathInfo[]; dropped: number }> {
  const present = (p: string) => !p.endsWith('.drv') && existsSync(p);
  const runtime = built.storePath ? await closure(nix, [built.storePath], env) : [];
  const buildTime = (await closure(nix, [built.drvPath], env, true)).filter(present);
  const evaluated = built.evaluated ?? [];
  const evalDrvs = evaluated.filter((p) => p.endsWith('.drv') && existsSync(p));
  const evalPaths = evaluated.filter(present);
  const fromEvaluation = [...(await closure(nix, evalDrvs, env, true)), ...(await closure(nix, evalPaths, env))].filter(present);
  const ordered = [...new Set([...runtime, ...buildTime, ...fromEvaluation])].filter((p) => p !== built.storePath);
  const infos = new Map((await pathInfo(nix, ordered, env, opts.nixVersion)).map((i) => [i.path, i]));
  const own = new Set((opts.ownKeys ?? []).map(keyName));
  const keep: PathInfo[] = [];
  // Left out for size: a path referring to one is left out too (Nix could not substitute it without it).
  const over = new Set<string>();
  let total = 0;
  let dropped = 0;
  for (const path of ordered) {
    const info = infos.get(path);
    if (!info) continue;
    if (!info.ultimate && !info.signatures.every((s) => own.has(keyName(s)))) continue;
    if (total + info.narSize > maxSize || info.references.some((r) => r !== path && over.has(r))) {
      over.add(path);
      dropped++;
      continue;
    }
    total += info.narSize;
    keep.push(info);
  }
  return { keep, dropped };
}

/** The key of a path set; a signed set (`signer`: the public key, `name:base64`) is another set than the same
 *  paths unsigned or signed by another key. */
export function pathSetKey(keyBase: string, paths: PathInfo[], signer?: string): string {
  const set = [...paths.map((p) => p.path).sort(), ...(signer ? [`signed-by:${signer}`] : [])].join('\n');
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

export interface SaveOptions {
  /** binary-cache-key (`name:base64`): every saved narinfo is signed with it, in this process. */
  secretKey?: string;
  /** cache-purge: after a new base, delete the entries it supersedes with this token (actions: write). */
  purge?: { token: string };
}

/** The delta key: the base key, the delta's place in the chain, and the hash of the path set it completes. */
export function deltaKey(baseKey: string, n: number, setKey: string): string {
  return `${baseKey}-d${n}-${setKey.slice(-16)}`;
}

/** Whether a new base `entryKey` supersedes the chain based on `base` that the job restored: a base entry
 *  of this key prefix, the entry restored being that base or a delta on it (an entry restored from another
 *  prefix, or a manifest naming another chain, supersedes nothing). */
export function supersedes(state: Pick<CacheState, 'keyBase' | 'restoredKey'>, base: string, entryKey: string): boolean {
  return state.restoredKey !== undefined && isBaseKey(base, state.keyBase) && inChain(state.restoredKey, base) && base !== entryKey;
}

/** Why the save writes a new base rather than a delta on the restored chain (undefined: a delta will do). */
export function newBaseReason(state: CacheState, signer: string | undefined): string | undefined {
  const chain = state.chain;
  if (!state.restoredKey) return 'nothing restored';
  if (!state.restoredKey.startsWith(state.keyBase)) return 'the restored entry has another key prefix';
  if (!chain) return 'the restored entry stands alone (no chain manifest)';
  if (!chain.base.startsWith(state.keyBase)) return 'the restored chain has another key prefix';
  if (chain.missing.length > 0) return 'an entry of the restored chain is no longer held';
  if (chain.signer !== signer) return 'the restored chain is signed otherwise';
  if (chain.deltas.length >= MAX_DELTAS) return `the chain holds ${MAX_DELTAS} deltas`;
  return undefined;
}

export async function saveStoreCache(raw: unknown, built: Built, opts: SaveOptions = {}): Promise<SaveSummary | undefined> {
  const state = raw as CacheState | undefined;
  if (!state?.dir || !state.keyBase) return undefined;
  const started = Date.now();
  const key = opts.secretKey ? parseSecretKey(opts.secretKey) : undefined;
  const ownKeys = [...new Set([...(state.trustedKeys ?? []), ...(key ? [key.publicKey] : [])])];
  if (!key && ownKeys.length > 0) {
    // What it would save carries no signature: the jobs that trust only those keys would not take it.
    core.info('store cache: not saved: binary-cache-public-key is set without binary-cache-key, so this job cannot sign what it saves');
    return { paths: 0, bytes: 0, seconds: (Date.now() - started) / 1000, skipped: 'no binary-cache-key to sign with' };
  }
  if (state.restoreFailed) {
    // The main step already lost its time on the service: the post step does not try it again.
    core.info(`store cache: not saved: the restore failed in the main step (${state.restoreFailed.reason}), so the cache service is not tried again`);
    const skipped = state.restoreFailed.unreachable ? 'the cache service was unreachable when restoring' : 'the restore failed';
    return { paths: 0, bytes: 0, seconds: (Date.now() - started) / 1000, skipped };
  }
  const env = { ...withoutSecrets(process.env), NIX_CONFIG: [process.env.NIX_CONFIG, 'extra-experimental-features = nix-command flakes'].filter(Boolean).join('\n') };
  const { keep, dropped } = await pathsToSave(state.nix, built, state.maxSize, env, { ownKeys, nixVersion: state.nixVersion });
  // The signer is its public key, not its name: a key made again under the same name signs another set.
  const cacheKey = pathSetKey(state.keyBase, keep, key?.publicKey);
  const summary = (s: Omit<SaveSummary, 'seconds'>): SaveSummary => ({ ...s, seconds: (Date.now() - started) / 1000 });
  if (keep.length === 0) {
    core.info('store cache: nothing built here that an upstream cache does not serve; nothing to save');
    return summary({ paths: 0, bytes: 0, skipped: 'nothing to save' });
  }
  const setHash = cacheKey.slice(-16);
  if (state.restoredKey && state.restoredKey.startsWith(state.keyBase) && (state.restoredKey === cacheKey || state.restoredKey.endsWith(`-${setHash}`)) && !state.chain?.missing.length) {
    core.info(`store cache: the path set is unchanged since ${state.restoredKey}; nothing new to save`);
    return summary({ key: state.restoredKey, paths: keep.length, bytes: 0, skipped: 'unchanged' });
  }
  if (dropped > 0) core.warning(`store cache: ${dropped} path(s) left out to stay under cache-max-size`);
  // What the restored chain lacks: a path is there when its NAR is the path's (hashed when signing) and,
  // signed, its narinfo carries a valid signature by this key.
  let reason = newBaseReason(state, key?.publicKey);
  let fresh: PathInfo[] = keep;
  if (!reason) {
    fresh = [];
    for (const info of keep) {
      const there = (await restoredNarMatches(state.dir, info, key !== undefined)) && (!key || (await narinfoSignedBy(state.dir, info, key.publicKey)));
      if (!there) fresh.push(info);
    }
    if (fresh.length === 0) {
      core.info(`store cache: the restored chain holds every path of this build; nothing new to save`);
      return summary({ key: state.restoredKey, paths: keep.length, bytes: 0, skipped: 'unchanged' });
    }
    const freshBytes = fresh.reduce((n, p) => n + p.narSize, 0);
    if (state.chain!.deltaBytes + freshBytes > DELTA_SHARE * state.chain!.baseBytes) reason = `its deltas would pass ${DELTA_SHARE * 100}% of the base`;
  }
  const chain = state.chain;
  const asDelta = !reason && chain !== undefined;
  const entryKey = asDelta ? deltaKey(chain.base, chain.deltas.length + 1, cacheKey) : cacheKey;
  const written = await writeBinaryCache(state.dir, asDelta ? fresh : keep, state.nix, env, key);
  const manifest: ChainManifest = {
    version: 1,
    key: entryKey,
    base: asDelta ? chain.base : entryKey,
    deltas: asDelta ? chain.deltas : [],
    paths: keep.map((p) => p.path).sort(),
    baseBytes: asDelta ? chain.baseBytes : written.bytes,
    deltaBytes: asDelta ? chain.deltaBytes + written.bytes : 0,
    ...(key ? { signer: key.publicKey } : {}),
  };
  await writeFile(join(state.dir, CHAIN_MANIFEST), `${JSON.stringify(manifest)}\n`);
  if (key) {
    // Only the record this job verified or wrote is signed: one changed since (by a build or a script
    // of the same user) is left out of the entry.
    // The bytes are read once: those compared with the pin are those signed.
    if (!(await signLayerRecord(state.dir, key, state.layerRecord))) {
      core.info('store cache: the layer record changed after this job wrote it: left out, not signed');
    }
  }
  const kind = asDelta ? 'delta' : 'base';
  core.info(
    asDelta
      ? `store cache: ${fresh.length} new paths of ${keep.length}, ${written.bytes} bytes${key ? `, signed by ${key.name}` : ''}; saving as ${entryKey} (delta ${chain.deltas.length + 1} on ${chain.base})`
      : `store cache: ${keep.length} paths (${written.written} new, ${written.kept} restored), ${written.bytes} bytes${key ? `, signed by ${key.name}` : ''}; saving as ${entryKey}${reason && state.restoredKey ? ` (a new base: ${reason})` : ''}`,
  );
  const call = await cacheCall<SaveValue>({ op: 'save', paths: [state.dir], key: entryKey });
  const problem = cacheProblem(call);
  const base = { key: entryKey, paths: keep.length, bytes: written.bytes, kind, newPaths: asDelta ? fresh.length : written.written } as const;
  if (problem) {
    core.warning(
      problem.unreachable
        ? `store cache: the cache service was unreachable (${problem.reason}); the job went on without saving the store cache`
        : `store cache not saved: ${problem.reason}`,
    );
    return summary({ ...base, skipped: problem.unreachable ? 'the cache service was unreachable' : problem.reason });
  }
  const id = call.value?.id ?? -1;
  if (id <= 0) return summary({ ...base, skipped: 'the cache service did not take it (see the log above)' });
  // A new base supersedes the chain it was restored from (this key prefix only): the entry restored is that
  // chain's base or a delta on it, so a manifest naming some other base is not taken at its word.
  if (!asDelta && opts.purge && chain && supersedes(state, chain.base, entryKey)) {
    const purge = await purgeSuperseded(chain.base, state.keyBase, opts.purge.token, entryKey);
    return summary({ ...base, purge });
  }
  return summary(base);
}
