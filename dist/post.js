import { createRequire as __nia_createRequire } from 'node:module'; const require = __nia_createRequire(import.meta.url);
import {
  errorLine,
  info,
  readPostState,
  reportCacheSave,
  saveStoreCache,
  warning
} from "./chunks/chunk-SPKD5A4N.js";

// src/post.ts
async function run() {
  const state = readPostState();
  if (!state?.started || state.cache === void 0) return;
  if (!state.drvPath) {
    info("store cache: nothing was built, nothing to save");
    return;
  }
  if (!state.storePath) info("store cache: the build failed; saving what it built");
  const saved = await saveStoreCache(state.cache, { storePath: state.storePath, drvPath: state.drvPath });
  if (saved) await reportCacheSave(saved);
}
run().catch((error) => {
  warning(`store cache not saved: ${errorLine(error)}`);
});
