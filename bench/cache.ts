// Store cache benchmark: the bundled action on a flake whose two derivations each take --build-seconds,
// as a cold job (empty cache) and as a warm job on a "fresh runner" (outputs deleted, cache restored),
// against the test cache server and a local registry; then the saved entry's size against a
// zstd tarball of the same store paths (what caching the closure as files would store).
// usage: npm run bench:cache [-- --build-seconds 5]
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runAction } from '../__tests__/support/action.js';
import { startCacheServer } from '../__tests__/support/cache-server.js';
import { forgetOutputs, makeClosureFlake } from '../__tests__/support/flakes.js';
import { nixTestEnv } from '../__tests__/support/nix.js';
import { startRegistry } from '../__tests__/support/registry.js';

const run = promisify(execFile);
const i = process.argv.indexOf('--build-seconds');
const seconds = i > 0 ? Number(process.argv[i + 1]) : 5;

const registry = await startRegistry({});
const server = await startCacheServer();
try {
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
} finally {
  await registry.stop();
  await server.stop();
}
