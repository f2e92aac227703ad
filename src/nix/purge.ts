// cache-purge: deleting the store cache entries a new base supersedes, through GitHub's REST API for
// caches (GITHUB_API_URL): GET /repos/{owner}/{repo}/actions/caches?key=<prefix>&ref=<ref> lists the
// entries whose key starts with the old base key, DELETE /repos/{owner}/{repo}/actions/caches?key=<key>&ref=<ref>
// deletes the base and each delta on it (concurrent ones included). Only this job's ref, only the old
// base's own chain under this job's key prefix, never the entry just saved: another branch's entries,
// another prefix's and another chain's are never touched. The token needs `actions: write`; without
// it (403) the post step says once how to grant it. Requests go through the runner's proxy, if any (proxy.ts).
import * as core from '@actions/core';
import { fetchSmall } from './cache-http.js';

const ok = (status: number): boolean => status >= 200 && status < 300;

export interface PurgeResult {
  /** Keys deleted. */
  deleted: string[];
  /** NAR-archive bytes the deleted entries held, as the API reports their size. */
  bytes: number;
  /** Why nothing (or not everything) was deleted. */
  problem?: string;
}

export interface ListedCache {
  key: string;
  ref: string;
  size_in_bytes: number;
}

const PERMISSION =
  'cache-purge: the token may not delete caches (403), so superseded store cache entries stay until GitHub evicts them; ' +
  'give the job `permissions: actions: write` (and pass that token as github-token), or set cache-purge: false';

const HEX16 = '[0-9a-f]{16}';
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether `key` is a base entry's key under `keyBase` (nix/cache.ts pathSetKey: the prefix, 16 hex). */
export function isBaseKey(key: string, keyBase: string): boolean {
  return new RegExp(`^${escape(keyBase)}${HEX16}$`).test(key);
}

/**
 * The listed entries a new base supersedes: in this ref, the old base itself and its deltas
 * (`<base>-d<n>-<16 hex>`, nix/cache.ts deltaKey), nothing else; never `keep` (the entry just saved).
 * A chain manifest names its base: one that is not a base key under this prefix supersedes nothing, so a
 * crafted manifest cannot widen the purge to a whole prefix or to the new entry.
 */
export function supersededKeys(listed: ListedCache[], oldBase: string, keyBase: string, ref: string, keep: string): string[] {
  if (!isBaseKey(oldBase, keyBase) || oldBase === keep) return [];
  return [...new Set(listed.filter((c) => c.ref === ref && c.key !== keep && inChain(c.key, oldBase)).map((c) => c.key))];
}

/** Whether `key` is the base `base` or a delta on it (nix/cache.ts deltaKey: `<base>-d<n>-<16 hex>`). */
export function inChain(key: string, base: string): boolean {
  return key === base || new RegExp(`^${escape(base)}-d[0-9]+-${HEX16}$`).test(key);
}

/** Deletes the old base `oldBase` and its deltas in this ref (supersededKeys: nothing unless `oldBase` is a
 *  base key under `keyBase`), never `keep`. */
export async function purgeSuperseded(oldBase: string, keyBase: string, token: string, keep: string): Promise<PurgeResult> {
  const api = (process.env.GITHUB_API_URL || 'https://api.github.com').replace(/\/$/, '');
  const repo = process.env.GITHUB_REPOSITORY;
  const ref = process.env.GITHUB_REF;
  if (!repo || !ref || !token) return { deleted: [], bytes: 0, problem: 'no GITHUB_REPOSITORY, GITHUB_REF or github-token' };
  const headers = { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'nix-image-action' };
  const base = `${api}/repos/${repo}/actions/caches`;
  const result: PurgeResult = { deleted: [], bytes: 0 };
  const fail = (status: number, what: string): PurgeResult => {
    if (status === 403) {
      core.warning(PERMISSION);
      return { ...result, problem: 'no permission (actions: write)' };
    }
    core.warning(`cache-purge: ${what} answered ${status}; superseded store cache entries stay until GitHub evicts them`);
    return { ...result, problem: `${what} answered ${status}` };
  };
  try {
    const listed: ListedCache[] = [];
    for (let page = 1; page <= 10; page++) {
      const res = await fetchSmall(new URL(`${base}?${new URLSearchParams({ key: oldBase, ref, per_page: '100', page: String(page) })}`), { method: 'GET', headers, answerMs: 10_000 }, 16 << 20);
      if (!ok(res.status)) return fail(res.status, 'listing caches');
      if (res.truncated) {
        core.warning('cache-purge: the list of caches is over 16 MiB; superseded store cache entries stay until GitHub evicts them');
        return { ...result, problem: 'the list of caches is over 16 MiB' };
      }
      const body = JSON.parse(res.text) as { actions_caches?: ListedCache[] };
      const got = body.actions_caches ?? [];
      listed.push(...got);
      if (got.length < 100) break;
    }
    const keys = supersededKeys(listed, oldBase, keyBase, ref, keep);
    for (const key of keys) {
      const res = await fetchSmall(new URL(`${base}?${new URLSearchParams({ key, ref })}`), { method: 'DELETE', headers, answerMs: 10_000 });
      if (res.status === 404) continue; // gone already (another job purged it)
      if (!ok(res.status)) return fail(res.status, `deleting ${key}`);
      result.deleted.push(key);
      result.bytes += listed.filter((c) => c.key === key).reduce((n, c) => n + (c.size_in_bytes || 0), 0);
    }
    if (result.deleted.length) core.info(`cache-purge: deleted ${result.deleted.length} superseded store cache entr${result.deleted.length === 1 ? 'y' : 'ies'} (${result.bytes} bytes): ${result.deleted.join(', ')}`);
    return result;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    core.warning(`cache-purge: the API could not be reached (${message}); superseded store cache entries stay until GitHub evicts them`);
    return { ...result, problem: message };
  }
}
