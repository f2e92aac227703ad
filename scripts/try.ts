// Runs the bundled action on examples/offline against a local registry it starts, then shows what
// skopeo sees there. The README's "try it locally" command: bash scripts/try.sh
import { join } from 'node:path';
import { runAction, repoRoot } from '../__tests__/support/action.js';
import { nixTestEnv } from '../__tests__/support/nix.js';
import { skopeo, startRegistry } from '../__tests__/support/registry.js';

const registry = await startRegistry({});
let shown = 'the run stopped with the error above';
try {
  const flake = `path:${join(repoRoot, 'examples', 'offline')}`;
  console.log(`registry: http://${registry.host} (Distribution, started for this run)`);
  console.log(`running dist/index.js on ${flake}#docker …`);
  const run = await runAction({
    inputs: { flake, attr: 'docker', registry: registry.host, image: 'example/hello', tags: 'latest,v1', cache: 'false', insecure: 'true' },
    env: nixTestEnv(),
    runtime: 'node24',
  });
  process.stdout.write(run.main.stdout.split('\n').filter((l) => !l.startsWith('::')).map((l) => `  | ${l}`).join('\n') + '\n');
  if (run.main.code !== 0) {
    console.error(`the action failed: ${run.main.errors.join('; ') || run.main.stderr}`);
    process.exitCode = 1;
    shown = 'the action failed on examples/offline (its error is above)';
  } else {
    console.log('outputs:');
    for (const [k, v] of Object.entries(run.outputs)) if (k !== 'metadata') console.log(`  ${k}: ${v.replace(/\n/g, ', ')}`);
    const inspect = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/example/hello:latest`])) as { Digest: string };
    console.log(`skopeo inspect: ${inspect.Digest} ${inspect.Digest === run.outputs.digest ? '(matches the action\'s digest)' : '(DIFFERS from the action\'s digest)'}`);
    if (inspect.Digest !== run.outputs.digest) {
      process.exitCode = 1;
      shown = 'examples/offline was pushed, but skopeo reads another digest than the action gave';
    } else {
      shown = `examples/offline built by Nix, pushed by dist/index.js as example/hello:latest and :v1, and read back by skopeo with the same digest (${inspect.Digest.slice(0, 19)}…)`;
    }
  }
} finally {
  await registry.stop();
  // The last line: what was shown, and that nothing of it is left (the registry kept its storage in a
  // temporary directory, removed with it).
  console.log(`shown: ${shown}; the registry ran for this script only, and is gone now with everything pushed to it.`);
}
