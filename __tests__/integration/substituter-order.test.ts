// The store cache never stands in for what upstream signs, proved with the real Nix (Debian's 2.8):
// two binary caches hold the same path, an "upstream" one signed like cache.nixos.org (its
// nix-cache-info says Priority: 40) and the action's own (written by writeBinaryCache, handed to Nix by
// substituterLine, listed before upstream); Nix must copy the path from upstream, and take from the store cache
// only what upstream lacks. The old line (no priority, nix-cache-info Priority: 10) fails the same check.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeBinaryCache } from '../../src/nix/binary-cache.js';
import { substituterLine } from '../../src/nix/cache.js';
import { pathInfo } from '../../src/nix/store.js';
import { nixTestEnv } from '../support/nix.js';

const run = promisify(execFile);
const base = { ...process.env, ...nixTestEnv() };

let work: string;
let shared: string; // in both caches
let oursOnly: string; // only in the store cache
let upstream: string;
let publicKey: string;

async function nixBuild(name: string, salt: string): Promise<string> {
  const file = join(work, `${name}.nix`);
  await writeFile(
    file,
    `derivation { name = ${JSON.stringify(name)}; system = "x86_64-linux"; builder = "/bin/sh"; salt = ${JSON.stringify(salt)}; args = [ "-c" "echo ${name} > $out" ]; }`,
  );
  return (await run('nix-build', ['--no-out-link', file], { env: base })).stdout.trim();
}

/** Deletes the paths from the store, then realises them with this nix.conf; returns the cache each came from. */
async function fetchedFrom(conf: string, paths: string[]): Promise<Record<string, string>> {
  await run('nix', ['store', 'delete', ...paths], { env: base });
  const env = { ...base, NIX_CONFIG: `${base.NIX_CONFIG}\n${conf}` };
  const { stderr } = await run('nix-store', ['--realise', ...paths], { env });
  const from: Record<string, string> = {};
  for (const m of stderr.matchAll(/copying path '([^']+)' from '([^']+)'/g)) from[m[1]!] = m[2]!;
  return from;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-subst-'));
  const salt = work;
  shared = await nixBuild('subst-shared', salt);
  oursOnly = await nixBuild('subst-ours-only', salt);
  // Upstream: signed with a key Nix trusts, Priority 40 as cache.nixos.org says.
  upstream = join(work, 'upstream');
  const sec = join(work, 'key.sec');
  const pub = join(work, 'key.pub');
  await run('nix-store', ['--generate-binary-cache-key', 'upstream-test-1', sec, pub], { env: base });
  publicKey = (await run('cat', [pub])).stdout.trim();
  await run('nix', ['copy', '--to', `file://${upstream}?secret-key=${sec}`, shared], { env: base });
  await writeFile(join(upstream, 'nix-cache-info'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n');
});

async function storeCache(name: string, cacheInfo?: string): Promise<string> {
  const dir = join(work, name);
  await writeBinaryCache(dir, await pathInfo('nix', [shared, oursOnly], base), 'nix', base);
  if (cacheInfo) await writeFile(join(dir, 'nix-cache-info'), cacheInfo);
  return dir;
}

describe('store cache substituter order (Nix 2.8)', () => {
  it('a path upstream signs comes from upstream; the store cache gives only what upstream lacks', async () => {
    const ours = await storeCache('ours');
    const from = await fetchedFrom([substituterLine(ours), `extra-substituters = file://${upstream}`, `trusted-public-keys = ${publicKey}`].join('\n'), [shared, oursOnly]);
    expect(from).toEqual({ [shared]: `file://${upstream}`, [oursOnly]: `file://${ours}` });
  });

  it('also with an entry restored from an older version, whose nix-cache-info says Priority: 10', async () => {
    const ours = await storeCache('ours-old', 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 10\n');
    const from = await fetchedFrom([substituterLine(ours), `extra-substituters = file://${upstream}`, `trusted-public-keys = ${publicKey}`].join('\n'), [shared]);
    expect(from).toEqual({ [shared]: `file://${upstream}` });
  });

  it('the old line, without a priority, let the store cache win: what this test exists to catch', async () => {
    const ours = await storeCache('ours-unprioritised', 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 10\n');
    const from = await fetchedFrom([`extra-substituters = file://${ours}?trusted=1`, `extra-substituters = file://${upstream}`, `trusted-public-keys = ${publicKey}`].join('\n'), [shared]);
    expect(from).toEqual({ [shared]: `file://${ours}` });
  });
});
