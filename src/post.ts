// The post step: only wiring. Saves the store cache when main built something, also if the push failed.
import * as core from '@actions/core';
import { saveStoreCache } from './nix/cache.js';
import { reportCacheSave } from './report/index.js';
import { readPostState } from './state.js';
import { errorLine } from './log.js';

async function run(): Promise<void> {
  const state = readPostState();
  if (!state?.started || state.cache === undefined) return;
  if (!state.drvPath) {
    core.info('store cache: nothing was built, nothing to save');
    return;
  }
  if (!state.storePath) core.info('store cache: the build failed; saving what it built');
  const saved = await saveStoreCache(state.cache, { storePath: state.storePath, drvPath: state.drvPath });
  if (saved) await reportCacheSave(saved);
}

run().catch((error: unknown) => {
  // The cache is an optimisation: saving it never fails the job.
  core.warning(`store cache not saved: ${errorLine(error)}`);
});
