// Store cache benchmark: the bundled action on a flake whose two derivations each take --build-seconds,
// as a cold job (empty cache) and as a warm job on a "fresh runner" (outputs deleted, cache restored),
// against the test cache server and a local registry; then the saved entry's size against a
// zstd tarball of the same store paths (what caching the closure as files would store). Then the same
// two jobs with the binary-cache input instead of the GitHub cache (cache: false): a real HTTP binary
// cache (nginx taking PUT, support/binary-cache.ts), the cold job uploading signed, the warm one (another
// HOME, the closure gone) reading it with the public key only.
// Then ten commits in a row, each changing one package of a flake whose base is --base-mib (default 90):
// per commit the post step's save time, the restore time, what was saved and the bytes the cache holds,
// against a zstd tarball of the whole closure per commit (what saving the closure again stores).
// usage: npm run bench:cache [-- --build-seconds 5] [-- --base-mib 90] [-- --chain-only]
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runAction } from '../__tests__/support/action.js';
import { startBinaryCache } from '../__tests__/support/binary-cache.js';
import { startCacheServer } from '../__tests__/support/cache-server.js';
import { forgetOutputs, makeClosureFlake } from '../__tests__/support/flakes.js';
import { generateCacheKey, nixTestEnv } from '../__tests__/support/nix.js';
import { startRegistry } from '../__tests__/support/registry.js';

const run = promisify(execFile);
const i = process.argv.indexOf('--build-seconds');
const seconds = i > 0 ? Number(process.argv[i + 1]) : 5;
const m = process.argv.indexOf('--base-mib');
const baseMiB = m > 0 ? Number(process.argv[m + 1]) : 90;
const chainOnly = process.argv.includes('--chain-only');

const registry = await startRegistry({});
const server = await startCacheServer();
const binaryCache = await startBinaryCache();
try {
  if (!chainOnly) await singleJobs();
  await tenCommits();
} finally {
  await registry.stop();
  await server.stop();
  await binaryCache.stop();
}

async function singleJobs(): Promise<void> {
  const flake = await makeClosureFlake('1', seconds);
  const home = await mkdtemp(join(tmpdir(), 'nia-bench-home-'));
  const workspace = await mkdtemp(join(tmpdir(), 'nia-bench-ws-'));
  // Each job its own repository: one that holds the image already is only re-tagged (the registry stands
  // in for the build), which is not what this bench measures.
  let jobs = 0;
  const job = async () => {
    const t = Date.now();
    const r = await runAction({
      runtime: 'node24',
      inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: `bench/cache-${++jobs}`, insecure: 'true' },
      env: { ...nixTestEnv(), ...server.env('v2'), HOME: home },
      cwd: workspace,
    });
    if (r.main.code !== 0 || r.post?.code !== 0) throw new Error(`the action failed: ${r.main.errors.join('; ')}`);
    return { seconds: (Date.now() - t) / 1000, hit: r.outputs['cache-hit'] };
  };
  const cold = await job();
  const saved = await forgetOutputs(flake, ['docker', 'app', 'base']);
  const warm = await job();
  const entry = server.entries.find((e) => e.committed)!;
  const closurePaths = saved.filter((p) => !p.endsWith('.tar.gz'));
  const { stdout } = await run('sh', ['-c', `tar -cf - ${closurePaths.join(' ')} 2>/dev/null | zstd -T0 --long=30 -q -c | wc -c`]);
  console.log(`flake: two derivations of ${seconds} s each, then the image assembly`);
  console.log('\n| job | time (s) | cache-hit |');
  console.log('|---|---|---|');
  console.log(`| cold (empty cache) | ${cold.seconds.toFixed(1)} | ${cold.hit} |`);
  console.log(`| warm (fresh runner, cache restored) | ${warm.seconds.toFixed(1)} | ${warm.hit} |`);
  console.log(`\nsaved entry: ${entry.size} bytes; zstd tarball of the same ${closurePaths.length} store paths: ${stdout.trim()} bytes`);

  // The binary-cache input alone: another flake (nothing of the first in the store or the cache).
  const key = await generateCacheKey('nia-bench-binary-cache-1');
  const other = await makeClosureFlake('1', seconds);
  const binaryJob = async (keys: Record<string, string>, netrc: boolean) => {
    const h = await mkdtemp(join(tmpdir(), 'nia-bench-home-'));
    if (netrc) await writeFile(join(h, '.netrc'), binaryCache.netrc(), { mode: 0o600 });
    const t = Date.now();
    const r = await runAction({
      runtime: 'node24',
      inputs: { flake: other.flake, attr: 'docker', registry: registry.host, image: `bench/cache-${++jobs}`, insecure: 'true', cache: 'false', 'binary-cache': binaryCache.url, ...keys },
      env: { ...nixTestEnv(), HOME: h },
      cwd: workspace,
    });
    if (r.main.code !== 0 || r.post?.code !== 0) throw new Error(`the action failed: ${r.main.errors.join('; ')}`);
    const upload = /binary cache \S+: uploaded (\d+) paths \((\d+) NAR bytes, (\d+) sent\).* in ([\d.]+) s/.exec(r.post?.stdout ?? '');
    const substituted = (JSON.parse(r.outputs.metadata!) as { 'binary-cache'?: { substituted: string[] } })['binary-cache']?.substituted.length ?? 0;
    return { seconds: (Date.now() - t) / 1000, substituted, upload };
  };
  const writer = await binaryJob({ 'binary-cache-key': key.secret }, true);
  await forgetOutputs(other, ['docker', 'app', 'base']);
  const reader = await binaryJob({ 'binary-cache-public-key': key.pub }, false);
  console.log('\n| job, binary cache instead of the GitHub cache (cache: false) | time (s) | paths from the binary cache | uploaded (post step) |');
  console.log('|---|---|---|---|');
  const sent = writer.upload ? `${writer.upload[1]} paths, ${writer.upload[2]} NAR bytes (${writer.upload[3]} sent, zstd), ${writer.upload[4]} s` : 'none';
  console.log(`| cold (empty binary cache), uploads signed | ${writer.seconds.toFixed(1)} | ${writer.substituted} | ${sent} |`);
  console.log(`| warm (fresh runner, closure gone), public key only | ${reader.seconds.toFixed(1)} | ${reader.substituted} | none (no key) |`);
}

async function tenCommits(): Promise<void> {
  const flake = await makeClosureFlake('1', 0, baseMiB * 1024 * 1024);
  const home = await mkdtemp(join(tmpdir(), 'nia-bench-home-'));
  const workspace = await mkdtemp(join(tmpdir(), 'nia-bench-ws-'));
  const before = new Set(server.entries.map((e) => e.id));
  const ours = () => server.entries.filter((e) => e.committed && !before.has(e.id));
  console.log(`\nten commits, each changing one package; base ${baseMiB} MiB (half random); a fresh runner per commit, cache-purge on`);
  console.log('\n| commit | restore (s) | entries restored | built | post: save (s) | saved | entry bytes | bytes stored (all entries) | whole-closure tarball (bytes, s) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  let tarballTotal = 0;
  for (let commit = 1; commit <= 10; commit++) {
    await flake.setVersion(String(commit));
    const built = (await readFile(join(flake.records, 'builds'), 'utf8')).split('\n').filter(Boolean).length;
    const r = await runAction({
      runtime: 'node24',
      inputs: { flake: flake.flake, attr: 'docker', registry: registry.host, image: `bench/chain-${commit}`, insecure: 'true', 'cache-purge': 'true' },
      env: { ...nixTestEnv(), ...server.env('v2', { ref: 'refs/heads/main' }), HOME: home },
      cwd: workspace,
    });
    if (r.main.code !== 0 || r.post?.code !== 0) throw new Error(`the action failed: ${r.main.errors.join('; ')}`);
    const builds = (await readFile(join(flake.records, 'builds'), 'utf8')).split('\n').filter(Boolean).slice(built);
    const metadata = JSON.parse(r.outputs.metadata!) as { seconds: { restore?: number }; 'store-cache'?: { entries: number } };
    const save = /Store cache (saved <code>(\S+)<\/code>: (a delta|[^,]+)[^<]*|not saved: [^,<(]+).*?, in ([\d.]+) s \(post step/.exec(r.summary);
    const entry = save?.[2] ? ours().find((e) => e.key === save[2]) : undefined;
    const stored = ours().reduce((n, e) => n + e.size, 0);
    // What saving the closure again would store: the closure (base and this app) as a zstd tarball.
    const paths = (await run('nix', ['path-info', `${flake.flake}#app`, `${flake.flake}#base`], { env: { ...process.env, ...nixTestEnv() } })).stdout.split('\n').filter(Boolean);
    const t = Date.now();
    const { stdout } = await run('sh', ['-c', `tar -cf - ${paths.join(' ')} 2>/dev/null | zstd -T0 -q -c | wc -c`]);
    const tarball = Number(stdout.trim());
    const tarSeconds = (Date.now() - t) / 1000;
    tarballTotal += tarball;
    await forgetOutputs(flake, ['docker', 'app', 'base']); // the next commit's runner is fresh
    console.log(
      `| ${commit} | ${metadata.seconds.restore ?? '-'} | ${metadata['store-cache']?.entries ?? 0} | ${builds.join(' ')} | ${save?.[4] ?? '?'} | ${save?.[2] ? (save[3] === 'a delta' ? 'delta' : 'base') : 'nothing'} | ${entry?.size ?? 0} | ${stored} | ${tarball}, ${tarSeconds.toFixed(1)} s (${tarballTotal} over the commits) |`,
    );
  }
}
