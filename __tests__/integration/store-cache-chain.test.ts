// The store cache as a chain of entries, with the real Nix, the real @actions/cache and the test cache
// server, calling restoreStoreCache/saveStoreCache as main and post do. Commits in a row that each change
// one package store a base and small deltas, and each fresh runner builds only the changed package; a
// chain whose middle entry was evicted still restores what is left, and the next save is a new base;
// two jobs that save on the same chain at once both succeed, and a later job restores a consistent chain;
// a branch saves its delta on top of the default branch's entries; cache-purge deletes what a new base
// supersedes, and says how to grant the permission when the token lacks it.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir, MAX_DELTAS } from '../../src/nix/cache.js';
import type { CacheServer } from '../support/cache-server.js';
import { builtSoFar, makeClosureFlake, type ClosureFlake } from '../support/flakes.js';
import { generateCacheKey, nixTestEnv } from '../support/nix.js';
import { cacheJobEnv, forgetPaths, mainStep, postStep as post, type MainOptions, type MainStep } from '../support/store-cache-job.js';

const run = promisify(execFile);
const env = { ...process.env, ...nixTestEnv() };

// Every runner has the same HOME (the cache directory's path versions the entries); each fresh runner
// starts without the outputs (main forgets them) and with the directory emptied (by the restore).
const runners = cacheJobEnv('nia-chain-', { GITHUB_REPOSITORY: 'owner/app' });
let server: CacheServer;
let work: string;

beforeAll(async () => {
  ({ server, work } = await runners.start());
});
afterAll(() => runners.stop());

function onRef(ref: string): void {
  Object.assign(process.env, server.env('v2', { ref }));
}

/** What the jobs built: a fresh runner has none of it (forgetOutputs, but for every version built so far). */
const outputs = new Set<string>();

/** The main step of a fresh runner: restore, then build <flake>#docker with the restored substituter. */
async function main(flake: ClosureFlake, opts: MainOptions & { keepStore?: boolean } = {}): Promise<MainStep> {
  if (!opts.keepStore) {
    const there = [...outputs];
    outputs.clear();
    await forgetPaths(there);
  }
  const job = await mainStep(flake.flake, opts);
  // The image (gzipped) names no references: its inputs are asked for by attribute.
  const { stdout: inputs } = await run('nix', ['path-info', `${flake.flake}#app`, `${flake.flake}#base`], { env });
  for (const p of [job.out, ...inputs.split('\n').filter(Boolean)]) outputs.add(p);
  return job;
}

const committed = () => server.entries.filter((e) => e.committed);
const storedBytes = (prefix: string) => committed().filter((e) => e.key.startsWith(prefix)).reduce((n, e) => n + e.size, 0);

describe('a store cache that grows with what changed', () => {
  it('ten commits in a row: a base and small deltas, each fresh runner builds only the changed package, and a new base purges the old chain', async () => {
    onRef('refs/heads/main');
    const flake = await makeClosureFlake('1', 0);
    const first = await main(flake, { purge: true });
    expect(first.restored.hit).toBe('false');
    const firstSave = await post(first, { purgeToken: 'gh-token' });
    expect(firstSave.summary?.kind, firstSave.printed).toBe('base');
    const prefix = first.state.keyBase;
    const firstBytes = storedBytes(prefix);
    expect(firstBytes).toBeGreaterThan(0);
    expect(await builtSoFar(flake)).toEqual(['base', 'app']);

    const kinds: string[] = [];
    for (let commit = 2; commit <= 10; commit++) {
      await flake.setVersion(String(commit));
      const before = (await builtSoFar(flake)).length;
      const job = await main(flake, { purge: true });
      expect(job.restored.hit).toBe('true');
      // Only the changed package is built: base comes from the restored chain.
      expect((await builtSoFar(flake)).slice(before), `commit ${commit}`).toEqual(['app']);
      const saved = await post(job, { purgeToken: 'gh-token' });
      expect(saved.summary?.skipped, saved.printed).toBeUndefined();
      expect(saved.warnings).toEqual([]);
      kinds.push(saved.summary!.kind!);
      if (saved.summary!.kind === 'delta') {
        expect(saved.summary!.newPaths).toBe(1); // the app alone
        expect(saved.summary!.key).toMatch(new RegExp(`^${prefix}[0-9a-f]{16}-d\\d+-[0-9a-f]{16}$`));
      }
      expect(storedBytes(prefix), `bytes stored after commit ${commit}`).toBeLessThanOrEqual(1.5 * firstBytes);
    }
    // Deltas up to MAX_DELTAS, then a new base, which deleted the old base and its deltas.
    expect(kinds).toEqual([...Array(MAX_DELTAS).fill('delta'), 'base']);
    expect(committed().filter((e) => e.key.startsWith(prefix))).toHaveLength(1);

    // A fresh runner after the tenth commit, nothing changed since: it builds nothing, saves nothing.
    const before = (await builtSoFar(flake)).length;
    const again = await main(flake);
    expect((await builtSoFar(flake)).slice(before)).toEqual([]);
    expect((await post(again)).summary?.skipped).toBe('unchanged');
  });

  it('restores the whole chain into one directory; a chain whose middle entry was evicted restores the rest, builds only what is missing, and saves a new base', async () => {
    onRef('refs/heads/main');
    const flake = await makeClosureFlake('1', 0);
    // Version 1 is the base; version 2 a delta holding app 2; version 3 one holding app 3.
    await post(await main(flake));
    await flake.setVersion('2');
    const second = await main(flake);
    const d1 = (await post(second)).summary!;
    expect(d1.kind).toBe('delta');
    await flake.setVersion('3');
    const third = await main(flake);
    expect(third.restored.restored?.entries).toBe(2);
    const d2 = (await post(third)).summary!;
    expect(d2.kind).toBe('delta');

    // Going back to version 2 on a fresh runner: all three entries are restored and app 2 is substituted.
    await flake.setVersion('2');
    let before = (await builtSoFar(flake)).length;
    const back = await main(flake);
    expect(back.restored.restored?.entries).toBe(3);
    expect((await builtSoFar(flake)).slice(before)).toEqual([]);
    expect((await post(back)).summary?.skipped).toBe('unchanged');

    // The middle entry (app 2) is evicted: the chain's base and last delta are still restored; app 2 is
    // built again, base is not; the save is a new base holding everything.
    expect(server.evict(d1.key!)).toBe(1);
    before = (await builtSoFar(flake)).length;
    const evicted = await main(flake);
    expect(evicted.restored.restored?.entries).toBe(2);
    expect(evicted.restored.restored?.missing).toBe(1);
    expect((await builtSoFar(flake)).slice(before)).toEqual(['app']);
    const rebased = await post(evicted);
    expect(rebased.summary?.kind, rebased.printed).toBe('base');
    expect(rebased.printed).toContain('a new base: an entry of the restored chain is no longer held');
    expect(rebased.summary?.paths).toBe(2);

    // The next fresh runner restores that base alone and builds nothing.
    before = (await builtSoFar(flake)).length;
    const next = await main(flake);
    expect(next.restored.restored?.key).toBe(rebased.summary?.key);
    expect(next.restored.restored?.entries).toBe(1);
    expect((await builtSoFar(flake)).slice(before)).toEqual([]);
  });

  it('two jobs saving on the same chain at once both succeed, and a later job restores a consistent chain', async () => {
    onRef('refs/heads/main');
    const flake = await makeClosureFlake('1', 0);
    const base = (await post(await main(flake))).summary!;
    // Both runners restore the same base and build before either saves (each its own version). They share
    // the cache directory's path, as runners do (the path versions the entries), not its contents: the
    // restored directory is set aside after A's main step and put back for B's post step.
    const dir = cacheDir(join(work, 'home'));
    await flake.setVersion('2');
    const a = await main(flake);
    const restoredDir = await mkdtemp(join(tmpdir(), 'nia-runner-'));
    await cp(dir, restoredDir, { recursive: true });
    await flake.setVersion('3');
    const b = await main(flake, { keepStore: true }); // A's outputs stay: A's post step has yet to read them
    expect(b.state.restoredKey).toBe(a.state.restoredKey);
    const aSaved = await post(a);
    await rm(dir, { recursive: true, force: true });
    await cp(restoredDir, dir, { recursive: true });
    const bSaved = await post(b);
    for (const s of [aSaved, bSaved]) {
      expect(s.summary?.skipped, s.printed).toBeUndefined();
      expect(s.summary?.kind).toBe('delta');
      expect(s.summary?.key).toMatch(new RegExp(`^${base.key}-d1-[0-9a-f]{16}$`));
    }
    expect(aSaved.summary?.key).not.toBe(bSaved.summary?.key);

    // The newest (B's) is restored with its base: version 3 needs nothing built.
    let before = (await builtSoFar(flake)).length;
    const later = await main(flake);
    expect(later.restored.restored?.key).toBe(bSaved.summary?.key);
    expect(later.restored.restored?.entries).toBe(2);
    expect(later.restored.restored?.missing).toBeUndefined();
    expect((await builtSoFar(flake)).slice(before)).toEqual([]);
    // Back to A's version: B's chain does not hold it; app alone is built and saved as the next delta.
    await flake.setVersion('2');
    before = (await builtSoFar(flake)).length;
    const other = await main(flake);
    expect((await builtSoFar(flake)).slice(before)).toEqual(['app']);
    const next = (await post(other)).summary!;
    expect(next.kind).toBe('delta');
    expect(next.key).toMatch(new RegExp(`^${base.key}-d2-[0-9a-f]{16}$`));
  });

  it('a branch restores the default branch chain and saves its delta on top; its new base purges only its own entries', async () => {
    onRef('refs/heads/main');
    const flake = await makeClosureFlake('1', 0);
    const mainBase = (await post(await main(flake))).summary!;
    await flake.setVersion('2');
    const mainDelta = (await post(await main(flake))).summary!;
    expect(mainDelta.kind).toBe('delta');

    onRef('refs/heads/feature');
    await flake.setVersion('3');
    let before = (await builtSoFar(flake)).length;
    const branch = await main(flake, { purge: true });
    expect(branch.restored.restored?.key).toBe(mainDelta.key); // the default branch's, through the restore keys
    expect(branch.restored.restored?.entries).toBe(2);
    expect((await builtSoFar(flake)).slice(before)).toEqual(['app']);
    const branchDelta = (await post(branch, { purgeToken: 'gh-token' })).summary!;
    expect(branchDelta.kind).toBe('delta');
    expect(branchDelta.key).toMatch(new RegExp(`^${mainBase.key}-d2-`));
    expect(server.entries.find((e) => e.key === branchDelta.key)?.ref).toBe('refs/heads/feature');

    // The branch restores its own newest entry, whose chain is main's base and delta plus its own.
    before = (await builtSoFar(flake)).length;
    const again = await main(flake);
    expect(again.restored.restored?.key).toBe(branchDelta.key);
    expect(again.restored.restored?.entries).toBe(3);
    expect((await builtSoFar(flake)).slice(before)).toEqual([]);

    // Main does not see the branch's entry.
    onRef('refs/heads/main');
    const onMain = await main(flake);
    expect(onMain.restored.restored?.key).toBe(mainDelta.key);

    // The branch's chain evicted in the middle: a new base on the branch, whose purge deletes only the
    // branch's entries under that base (its delta), never main's.
    onRef('refs/heads/feature');
    server.evict(mainDelta.key!);
    await flake.setVersion('4');
    const rebase = await main(flake, { purge: true });
    const saved = await post(rebase, { purgeToken: 'gh-token' });
    expect(saved.summary?.kind, saved.printed).toBe('base');
    expect(saved.summary?.purge?.deleted).toEqual([branchDelta.key]);
    expect(server.entries.some((e) => e.key === mainBase.key && e.ref === 'refs/heads/main')).toBe(true);
  });

  it('signed: every entry of the chain is signed, and a reader trusting the key restores the chain and builds nothing', async () => {
    onRef('refs/heads/main');
    const { secret, pub } = await generateCacheKey('nia-chain-1');
    const flake = await makeClosureFlake('1', 0);
    expect((await post(await main(flake, { trustedKeys: [pub] }), { secretKey: secret })).summary?.kind).toBe('base');
    await flake.setVersion('2');
    const delta = await post(await main(flake, { trustedKeys: [pub] }), { secretKey: secret });
    expect(delta.summary?.kind, delta.printed).toBe('delta');
    expect(delta.summary?.newPaths).toBe(1);
    const before = (await builtSoFar(flake)).length;
    const reader = await main(flake, { trustedKeys: [pub] });
    expect(reader.restored.restored?.entries).toBe(2);
    expect((await builtSoFar(flake)).slice(before)).toEqual([]);
    const dir = cacheDir(join(work, 'home'));
    for (const n of (await readdir(dir)).filter((f) => f.endsWith('.narinfo'))) expect(await readFile(join(dir, n), 'utf8'), n).toMatch(/^Sig: nia-chain-1:/m);
    // An unsigned job does not put unsigned paths on the signed chain: it writes a base of its own.
    await flake.setVersion('3');
    const unsigned = await post(await main(flake));
    expect(unsigned.summary?.kind).toBe('base');
    expect(unsigned.printed).toContain('the restored chain is signed otherwise');
  });

  it('without actions: write, a purge says once how to grant it and leaves the entries', async () => {
    onRef('refs/heads/main');
    const flake = await makeClosureFlake('1', 0);
    const base = (await post(await main(flake))).summary!;
    await flake.setVersion('2');
    const d1 = (await post(await main(flake))).summary!;
    await flake.setVersion('3');
    const d2 = (await post(await main(flake))).summary!;
    expect([d1.kind, d2.kind]).toEqual(['delta', 'delta']);
    server.evict(d1.key!); // the next save is a new base, superseding the base and d2
    server.restWrite = false;
    try {
      const saved = await post(await main(flake, { purge: true }), { purgeToken: 'gh-token' });
      expect(saved.summary?.kind, saved.printed).toBe('base');
      expect(saved.summary?.purge?.problem).toBe('no permission (actions: write)');
      expect(saved.warnings).toHaveLength(1);
      expect(saved.warnings[0]).toMatch(/^cache-purge: the token may not delete caches \(403\).*permissions: actions: write/);
      expect(server.entries.some((e) => e.key === base.key)).toBe(true);
      expect(server.entries.some((e) => e.key === d2.key)).toBe(true);
    } finally {
      server.restWrite = true;
    }
  });
});
