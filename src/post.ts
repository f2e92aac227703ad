// The post step: only wiring. First removes the files main wrote under RUNNER_TEMP, then saves the store
// cache and uploads to the binary cache when main built something, also if the push failed. Nothing here fails the job: every failure,
// an unhandled rejection or a stray exception included, is a warning, and the step exits 0 once done
// (a socket or timer left behind by the cache client must not hold it open either).
// The same bundle is the child that runs one @actions/cache call under a watchdog (nix/cache-call.ts),
// for main's restore and for the save here: with NIA_CACHE_CALL set it runs that call and nothing else.
import './heap.js'; // first: buffers in V8's heap budget, as in main
import * as core from '@actions/core';
import { proxySecrets } from './proxy.js';
import { rm } from 'node:fs/promises';
import { saveStoreCache } from './nix/cache.js';
import { isCacheCall, runCacheCall } from './nix/cache-call.js';
import { uploadToBinaryCache } from './nix/remote-cache.js';
import { reportBinaryCacheUpload, reportCacheSave } from './report/index.js';
import { readPostState, readTempFiles } from './state.js';
import { errorLine } from './log.js';

function handleStrayErrors(): void {
  process.on('unhandledRejection', (error: unknown) => core.warning(`post step: ${errorLine(error)}`));
  process.on('uncaughtException', (error: unknown) => {
    core.warning(`post step: ${errorLine(error)}`);
    process.exit(0);
  });
}

/** Removes the recorded temp files; a file that cannot be removed is a warning naming it. */
async function removeTempFiles(paths: string[]): Promise<void> {
  for (const path of paths) {
    await rm(path, { recursive: true, force: true }).catch((error: unknown) => core.warning(`cannot remove ${path}: ${errorLine(error)}`));
  }
}

async function saveCache(): Promise<void> {
  const state = readPostState();
  if (!state?.started || (state.cache === undefined && state.binaryCache === undefined)) return;
  if (!state.drvPath) {
    core.info('store cache: nothing was built, nothing to save');
    return;
  }
  if (!state.storePath) core.info('store cache: the build failed; saving what it built');
  for (const secret of proxySecrets()) core.setSecret(secret);
  // The signing key is read again from the input (never written to state or a file), masked first.
  const secretKey = core.getInput('binary-cache-key');
  if (secretKey) {
    core.setSecret(secretKey);
    core.setSecret(secretKey.slice(secretKey.indexOf(':') + 1));
  }
  const built = { drvPath: state.drvPath, ...(state.storePath ? { storePath: state.storePath } : {}), ...(state.evaluated ? { evaluated: state.evaluated } : {}) };
  // Each on its own: a failure of one is a warning, and the other still runs.
  if (state.cache !== undefined) {
    // cache-purge: the token is read again from the input (never written to state), masked first.
    const purge = (state.cache as { purge?: boolean } | null)?.purge ? core.getInput('github-token') : '';
    if (purge) core.setSecret(purge);
    await saveStoreCache(state.cache, built, { ...(secretKey ? { secretKey } : {}), ...(purge ? { purge: { token: purge } } : {}) }).then(
      async (saved) => {
        if (saved) await reportCacheSave(saved);
      },
      (error: unknown) => core.warning(`store cache not saved: ${errorLine(error)}`),
    );
  }
  if (state.binaryCache !== undefined) {
    await uploadToBinaryCache(state.binaryCache, built, secretKey ? { secretKey } : {}).then(
      async (uploaded) => {
        if (uploaded) await reportBinaryCacheUpload(uploaded);
      },
      (error: unknown) => core.warning(`binary cache: nothing uploaded: ${errorLine(error)}`),
    );
  }
}

async function run(): Promise<void> {
  await removeTempFiles(readTempFiles());
  await saveCache().catch((error: unknown) => {
    // The cache is an optimisation: saving it never fails the job.
    core.warning(`store cache not saved: ${errorLine(error)}`);
  });
}

if (isCacheCall()) {
  void runCacheCall();
} else {
  handleStrayErrors();
  run()
    .catch((error: unknown) => core.warning(`post step: ${errorLine(error)}`))
    .finally(() => process.exit(0));
}
