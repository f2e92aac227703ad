import { createRequire as __nia_createRequire } from 'node:module'; const require = __nia_createRequire(import.meta.url);
import {
  errorLine,
  getInput,
  info,
  isCacheCall,
  proxySecrets,
  readPostState,
  readTempFiles,
  reportBinaryCacheUpload,
  reportCacheSave,
  runCacheCall,
  saveStoreCache,
  setSecret,
  uploadToBinaryCache,
  warning
} from "./chunks/chunk-3I4GD6SW.js";

// src/post.ts
import { rm } from "node:fs/promises";
function handleStrayErrors() {
  process.on("unhandledRejection", (error) => warning(`post step: ${errorLine(error)}`));
  process.on("uncaughtException", (error) => {
    warning(`post step: ${errorLine(error)}`);
    process.exit(0);
  });
}
async function removeTempFiles(paths) {
  for (const path of paths) {
    await rm(path, { recursive: true, force: true }).catch((error) => warning(`cannot remove ${path}: ${errorLine(error)}`));
  }
}
async function saveCache() {
  const state = readPostState();
  if (!state?.started || state.cache === void 0 && state.binaryCache === void 0) return;
  if (!state.drvPath) {
    info("store cache: nothing was built, nothing to save");
    return;
  }
  if (!state.storePath) info("store cache: the build failed; saving what it built");
  for (const secret of proxySecrets()) setSecret(secret);
  const secretKey = getInput("binary-cache-key");
  if (secretKey) {
    setSecret(secretKey);
    setSecret(secretKey.slice(secretKey.indexOf(":") + 1));
  }
  const built = { drvPath: state.drvPath, ...state.storePath ? { storePath: state.storePath } : {}, ...state.evaluated ? { evaluated: state.evaluated } : {} };
  if (state.cache !== void 0) {
    const purge = state.cache?.purge ? getInput("github-token") : "";
    if (purge) setSecret(purge);
    await saveStoreCache(state.cache, built, { ...secretKey ? { secretKey } : {}, ...purge ? { purge: { token: purge } } : {} }).then(
      async (saved) => {
        if (saved) await reportCacheSave(saved);
      },
      (error) => warning(`store cache not saved: ${errorLine(error)}`)
    );
  }
  if (state.binaryCache !== void 0) {
    await uploadToBinaryCache(state.binaryCache, built, secretKey ? { secretKey } : {}).then(
      async (uploaded) => {
        if (uploaded) await reportBinaryCacheUpload(uploaded);
      },
      (error) => warning(`binary cache: nothing uploaded: ${errorLine(error)}`)
    );
  }
}
async function run() {
  await removeTempFiles(readTempFiles());
  await saveCache().catch((error) => {
    warning(`store cache not saved: ${errorLine(error)}`);
  });
}
if (isCacheCall()) {
  void runCacheCall();
} else {
  handleStrayErrors();
  run().catch((error) => warning(`post step: ${errorLine(error)}`)).finally(() => process.exit(0));
}
