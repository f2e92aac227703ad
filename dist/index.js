import { createRequire as __nia_createRequire } from 'node:module'; const require = __nia_createRequire(import.meta.url);
import {
  AuthError,
  COMPRESSION_LEVELS,
  DEFAULT_NIX_VERSION,
  FailFast,
  HttpClient,
  ImageMismatchError,
  LAYERS_AT_ONCE,
  MediaTypes,
  NetworkError,
  NixCommandError,
  OLDEST_NIX,
  QuotaSpentError,
  READ_CHUNK,
  RateLimitError,
  RegistryError,
  StallError,
  __toESM,
  actionLogger,
  addPath,
  archiveInput,
  atLeast,
  attachImageDocuments,
  blocksInFlight,
  cacheUrlProblem,
  checkVersion,
  compressorID,
  core_exports,
  cp,
  debug,
  describeBody,
  endGroup,
  errorLine,
  evaluatesImpurely,
  exec,
  fetchAttachedDocuments,
  forgetSecretSettings,
  httpError,
  imageStorePaths,
  info,
  isDebug,
  isRetryableStatus,
  keepSecretSettings,
  knownLayers,
  limiter,
  localFlakeDir,
  maskNixSecrets,
  mkdirP,
  nixConfSecrets,
  nixOutput,
  nixStoreBinary,
  notice,
  openBinaryCache,
  proxyOptions,
  proxyProblem,
  proxySecrets,
  proxyWarning,
  publicKeyOf,
  pushImage,
  readDerivation,
  readLayerRecord,
  recordLayers,
  recordTempFile,
  report,
  reportMerge,
  require_semver,
  restoreStoreCache,
  rmRF,
  savePostState,
  setFailed,
  setSecret,
  sha256Digest,
  sha256FileHex,
  spawnNix,
  startGroup,
  stepTempDir,
  substitutedFrom,
  tagAll,
  tunnelRefusal,
  untrustedCacheWarning,
  warning,
  withoutSecrets,
  writeImageDocuments
} from "./chunks/chunk-3I4GD6SW.js";

// src/threadpool.ts
var IO_THREADS = 4;
function threadPoolSize(env) {
  return env.UV_THREADPOOL_SIZE || String(LAYERS_AT_ONCE * blocksInFlight() + IO_THREADS);
}
process.env.UV_THREADPOOL_SIZE = threadPoolSize(process.env);

// src/inputs/index.ts
var InputError = class extends Error {
  constructor(input, message) {
    super(`input ${input}: ${message}`);
    this.input = input;
    this.name = "InputError";
  }
  input;
};
function envInputReader(env = process.env) {
  return (name) => (env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] ?? "").trim();
}
function parseBoolean(name, value, fallback) {
  if (value === "") return fallback;
  if (["true", "True", "TRUE"].includes(value)) return true;
  if (["false", "False", "FALSE"].includes(value)) return false;
  throw new InputError(name, `expected true or false, got "${value}"`);
}
var SIZE_UNITS = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e3 ** 2,
  mb: 1e3 ** 2,
  g: 1e3 ** 3,
  gb: 1e3 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4
};
function parseSize(name, value) {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : void 0;
  if (!m || unit === void 0) {
    throw new InputError(name, `expected a size such as 4GiB, 500MiB or a number of bytes, got "${value}"`);
  }
  return Math.floor(Number(m[1]) * unit);
}
function splitList(value) {
  const items = value.split(/[\n,]/).map((s) => s.trim()).filter((s) => s !== "");
  return [...new Set(items)];
}
function isOfficialReleaseUrl(url) {
  return /^https:\/\/releases\.nixos\.org\/nix\/nix-(\d[\w.+-]*)\/nix-\1-(x86_64|aarch64)-linux\.tar\.xz$/.test(url);
}
var CHECKSUM_REQUIRED = "needs nix-sha256 unless it is the official release URL (a checksum fetched from the same server proves nothing)";
function parseKeyValues(name, value) {
  const out = /* @__PURE__ */ new Map();
  for (const [i, raw] of value.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq).trim() : "";
    if (key === "" || /\s/.test(key)) throw new InputError(name, `expected key=value on every line, got "${line}" on line ${i + 1}`);
    out.delete(key);
    out.set(key, line.slice(eq + 1).trim());
  }
  return [...out];
}
function checkNixKey(name, value, bytes) {
  const m = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!m) throw new InputError(name, "expected <name>:<base64>, as nix-store --generate-binary-cache-key writes it");
  const length = Buffer.from(m[2], "base64").length;
  if (length !== bytes) throw new InputError(name, `expected a ${bytes === 64 ? "secret" : "public"} key of ${bytes} bytes after "${m[1]}:", got ${length}`);
  return value;
}
function oneOf(name, value, allowed) {
  if (allowed.includes(value)) return value;
  throw new InputError(name, `expected one of ${allowed.join(", ")}, got "${value}"`);
}
function parseCompression(value) {
  const m = /^(gzip|zstd)(?::(\d+))?$/.exec(value || "gzip");
  if (!m) throw new InputError("compression", `expected gzip or zstd, optionally with a level (gzip:6, zstd:9), got "${value}"`);
  const algorithm = m[1];
  const { default: fallback, min, max } = COMPRESSION_LEVELS[algorithm];
  const level = m[2] === void 0 ? fallback : Number(m[2]);
  if (level < min || level > max) throw new InputError("compression", `${algorithm} levels go from ${min} to ${max}, got "${value}"`);
  return { algorithm, level };
}
function parseNixVersion(value) {
  if (value === "") return DEFAULT_NIX_VERSION;
  if (!/^\d+\.\d+(\.\d+)?(pre[0-9A-Za-z_.]*)?$/.test(value)) {
    throw new InputError("nix-version", `expected a Nix version such as ${DEFAULT_NIX_VERSION}, got "${value}"`);
  }
  if (!atLeast(value, OLDEST_NIX)) throw new InputError("nix-version", `expected Nix ${OLDEST_NIX} or newer (the oldest this action supports), got "${value}"`);
  return value;
}
function splitArgs(value) {
  const args = [];
  let cur = "";
  let inArg = false;
  let quote;
  let opened = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quote === "'") {
      if (c === "'") quote = void 0;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = void 0;
      else if (c === "\\" && i + 1 < value.length && '"\\$`'.includes(value[i + 1])) cur += value[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      opened = i;
      inArg = true;
    } else if (c === "\\" && i + 1 < value.length) {
      if (value[i + 1] !== "\n") cur += value[i + 1];
      i++;
      inArg = true;
    } else if (/\s/.test(c)) {
      if (inArg) args.push(cur);
      cur = "";
      inArg = false;
    } else {
      cur += c;
      inArg = true;
    }
  }
  if (quote) throw new InputError("build-args", `unterminated ${quote} quote (opened at character ${opened + 1} of ${value.length})`);
  if (inArg) args.push(cur);
  return args;
}
function checkBuildArgs(value) {
  splitArgs(value);
  return value;
}
function parseInputs(get, env = process.env) {
  const attr = get("attr");
  if (attr === "") throw new InputError("attr", "expected the flake attribute that builds the image, e.g. docker");
  if (/\s/.test(attr)) throw new InputError("attr", `expected a flake attribute path without spaces, got "${attr}"`);
  const flake = get("flake") || ".";
  if (flake.includes("#")) {
    throw new InputError("flake", `expected a flake reference without #attribute (use the attr input), got "${flake}"`);
  }
  let image = get("image");
  if (image === "") {
    const repository = env.GITHUB_REPOSITORY ?? "";
    if (repository === "") {
      throw new InputError("image", "is empty and GITHUB_REPOSITORY is not set: give the repository path, e.g. owner/app");
    }
    image = repository.toLowerCase();
  }
  const tags = splitList(get("tags") || "latest");
  if (tags.length === 0) throw new InputError("tags", "expected at least one tag");
  const nixSha256 = get("nix-sha256").toLowerCase();
  if (nixSha256 !== "" && !/^[0-9a-f]{64}$/.test(nixSha256)) {
    throw new InputError("nix-sha256", `expected 64 hexadecimal characters, got "${nixSha256}"`);
  }
  const nixInstallUrl = get("nix-install-url");
  if (nixInstallUrl !== "" && nixSha256 === "" && !isOfficialReleaseUrl(nixInstallUrl)) {
    throw new InputError("nix-install-url", CHECKSUM_REQUIRED);
  }
  const push2 = parseBoolean("push", get("push"), true);
  if (get("merge") !== "" && !push2) throw new InputError("merge", "needs push: true (the index is made in the registry from the images it holds)");
  if (get("merge") !== "" && parseBoolean("push-by-digest", get("push-by-digest"), false)) {
    throw new InputError("merge", "and push-by-digest: true do not go together (push by digest in the matrix jobs, merge in the job after them)");
  }
  const sbomValue = get("sbom") || "cyclonedx";
  if (!["cyclonedx", "spdx", "false", "False", "FALSE"].includes(sbomValue)) throw new InputError("sbom", `expected cyclonedx, spdx or false, got "${sbomValue}"`);
  const sbom = sbomValue === "cyclonedx" || sbomValue === "spdx" ? sbomValue : false;
  const sbomAttach = parseBoolean("sbom-attach", get("sbom-attach"), false);
  if (sbomAttach && !push2) throw new InputError("sbom-attach", "needs push: true (the documents are attached to the pushed image)");
  if (sbomAttach && get("merge") !== "") {
    throw new InputError("sbom-attach", "true and merge do not go together (a merge builds nothing and attaches nothing to the index: attach in the jobs that build the images)");
  }
  const merge2 = get("merge").split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const binaryCache = get("binary-cache");
  if (binaryCache !== "") {
    const problem = cacheUrlProblem(binaryCache);
    if (problem) throw new InputError("binary-cache", problem);
    if (get("binary-cache-key") === "" && get("binary-cache-public-key") === "") {
      throw new InputError("binary-cache", "needs binary-cache-public-key (or binary-cache-key): a cache that other jobs write is used only with signatures by a key you name, never trusted as it is");
    }
  }
  return {
    flake,
    attr,
    buildArgs: checkBuildArgs(get("build-args")),
    registry: get("registry") || "ghcr.io",
    image,
    tags,
    reuseTags: splitList(get("reuse-tags")),
    layersFrom: oneOf("layers-from", get("layers-from") || "auto", ["auto", "archive"]),
    compression: parseCompression(get("compression")),
    username: get("username"),
    password: get("password"),
    githubToken: get("github-token"),
    push: push2,
    insecure: parseBoolean("insecure", get("insecure"), false),
    // Host names are case-insensitive; registry/reference.ts lower-cases the hosts tags name.
    insecureRegistries: splitList(get("insecure-registries").toLowerCase()),
    cache: parseBoolean("cache", get("cache"), true),
    cacheKey: get("cache-key"),
    cachePurge: parseBoolean("cache-purge", get("cache-purge"), false),
    cacheMaxSize: parseSize("cache-max-size", get("cache-max-size") || "4GiB"),
    installNix: oneOf("install-nix", get("install-nix") || "auto", ["auto", "true", "false"]),
    nixVersion: parseNixVersion(get("nix-version")),
    nixInstallUrl,
    nixSha256,
    extraNixConf: get("extra-nix-conf"),
    pushByDigest: parseBoolean("push-by-digest", get("push-by-digest"), false),
    merge: merge2,
    labels: parseKeyValues("labels", get("labels")),
    annotations: parseKeyValues("annotations", get("annotations")),
    sbom,
    sbomAttach,
    binaryCacheKey: get("binary-cache-key") && checkNixKey("binary-cache-key", get("binary-cache-key"), 64),
    binaryCachePublicKeys: splitList(get("binary-cache-public-key").replace(/\s+/g, "\n")).map((k) => checkNixKey("binary-cache-public-key", k, 32)),
    binaryCache
  };
}

// node_modules/@actions/tool-cache/lib/tool-cache.js
import * as crypto from "crypto";
import * as fs from "fs";

// node_modules/@actions/tool-cache/lib/manifest.js
var semver = __toESM(require_semver(), 1);

// node_modules/@actions/tool-cache/lib/tool-cache.js
import * as os from "os";
import * as path from "path";
var semver2 = __toESM(require_semver(), 1);
import * as stream from "stream";
import * as util from "util";
import { ok } from "assert";

// node_modules/@actions/tool-cache/lib/retry-helper.js
var __awaiter = function(thisArg, _arguments, P, generator) {
  function adopt(value) {
    return value instanceof P ? value : new P(function(resolve) {
      resolve(value);
    });
  }
  return new (P || (P = Promise))(function(resolve, reject) {
    function fulfilled(value) {
      try {
        step(generator.next(value));
      } catch (e) {
        reject(e);
      }
    }
    function rejected(value) {
      try {
        step(generator["throw"](value));
      } catch (e) {
        reject(e);
      }
    }
    function step(result) {
      result.done ? resolve(result.value) : adopt(result.value).then(fulfilled, rejected);
    }
    step((generator = generator.apply(thisArg, _arguments || [])).next());
  });
};
var RetryHelper = class {
  constructor(maxAttempts, minSeconds, maxSeconds) {
    if (maxAttempts < 1) {
      throw new Error("max attempts should be greater than or equal to 1");
    }
    this.maxAttempts = maxAttempts;
    this.minSeconds = Math.floor(minSeconds);
    this.maxSeconds = Math.floor(maxSeconds);
    if (this.minSeconds > this.maxSeconds) {
      throw new Error("min seconds should be less than or equal to max seconds");
    }
  }
  execute(action, isRetryable2) {
    return __awaiter(this, void 0, void 0, function* () {
      let attempt = 1;
      while (attempt < this.maxAttempts) {
        try {
          return yield action();
        } catch (err) {
          if (isRetryable2 && !isRetryable2(err)) {
            throw err;
          }
          info(err.message);
        }
        const seconds = this.getSleepAmount();
        info(`Waiting ${seconds} seconds before trying again`);
        yield this.sleep(seconds);
        attempt++;
      }
      return yield action();
    });
  }
  getSleepAmount() {
    return Math.floor(Math.random() * (this.maxSeconds - this.minSeconds + 1)) + this.minSeconds;
  }
  sleep(seconds) {
    return __awaiter(this, void 0, void 0, function* () {
      return new Promise((resolve) => setTimeout(resolve, seconds * 1e3));
    });
  }
};

// node_modules/@actions/tool-cache/lib/tool-cache.js
var __awaiter2 = function(thisArg, _arguments, P, generator) {
  function adopt(value) {
    return value instanceof P ? value : new P(function(resolve) {
      resolve(value);
    });
  }
  return new (P || (P = Promise))(function(resolve, reject) {
    function fulfilled(value) {
      try {
        step(generator.next(value));
      } catch (e) {
        reject(e);
      }
    }
    function rejected(value) {
      try {
        step(generator["throw"](value));
      } catch (e) {
        reject(e);
      }
    }
    function step(result) {
      result.done ? resolve(result.value) : adopt(result.value).then(fulfilled, rejected);
    }
    step((generator = generator.apply(thisArg, _arguments || [])).next());
  });
};
var HTTPError = class extends Error {
  constructor(httpStatusCode) {
    super(`Unexpected HTTP response: ${httpStatusCode}`);
    this.httpStatusCode = httpStatusCode;
    Object.setPrototypeOf(this, new.target.prototype);
  }
};
var IS_WINDOWS = process.platform === "win32";
var IS_MAC = process.platform === "darwin";
var userAgent = "actions/tool-cache";
function downloadTool(url, dest, auth, headers) {
  return __awaiter2(this, void 0, void 0, function* () {
    dest = dest || path.join(_getTempDirectory(), crypto.randomUUID());
    yield mkdirP(path.dirname(dest));
    debug(`Downloading ${url}`);
    debug(`Destination ${dest}`);
    const maxAttempts = 3;
    const minSeconds = _getGlobal("TEST_DOWNLOAD_TOOL_RETRY_MIN_SECONDS", 10);
    const maxSeconds = _getGlobal("TEST_DOWNLOAD_TOOL_RETRY_MAX_SECONDS", 20);
    const retryHelper = new RetryHelper(maxAttempts, minSeconds, maxSeconds);
    return yield retryHelper.execute(() => __awaiter2(this, void 0, void 0, function* () {
      return yield downloadToolAttempt(url, dest || "", auth, headers);
    }), (err) => {
      if (err instanceof HTTPError && err.httpStatusCode) {
        if (err.httpStatusCode < 500 && err.httpStatusCode !== 408 && err.httpStatusCode !== 429) {
          return false;
        }
      }
      return true;
    });
  });
}
function downloadToolAttempt(url, dest, auth, headers) {
  return __awaiter2(this, void 0, void 0, function* () {
    if (fs.existsSync(dest)) {
      throw new Error(`Destination file path ${dest} already exists`);
    }
    const http2 = new HttpClient(userAgent, [], {
      allowRetries: false
    });
    if (auth) {
      debug("set auth");
      if (headers === void 0) {
        headers = {};
      }
      headers.authorization = auth;
    }
    const response = yield http2.get(url, headers);
    if (response.message.statusCode !== 200) {
      const err = new HTTPError(response.message.statusCode);
      debug(`Failed to download from "${url}". Code(${response.message.statusCode}) Message(${response.message.statusMessage})`);
      throw err;
    }
    const pipeline2 = util.promisify(stream.pipeline);
    const responseMessageFactory = _getGlobal("TEST_DOWNLOAD_TOOL_RESPONSE_MESSAGE_FACTORY", () => response.message);
    const readStream = responseMessageFactory();
    let succeeded = false;
    try {
      yield pipeline2(readStream, fs.createWriteStream(dest));
      debug("download complete");
      succeeded = true;
      return dest;
    } finally {
      if (!succeeded) {
        debug("download failed");
        try {
          yield rmRF(dest);
        } catch (err) {
          debug(`Failed to delete '${dest}'. ${err.message}`);
        }
      }
    }
  });
}
function extractTar(file_1, dest_1) {
  return __awaiter2(this, arguments, void 0, function* (file, dest, flags = "xz") {
    if (!file) {
      throw new Error("parameter 'file' is required");
    }
    dest = yield _createExtractFolder(dest);
    debug("Checking tar --version");
    let versionOutput = "";
    yield exec("tar --version", [], {
      ignoreReturnCode: true,
      silent: true,
      listeners: {
        stdout: (data) => versionOutput += data.toString(),
        stderr: (data) => versionOutput += data.toString()
      }
    });
    debug(versionOutput.trim());
    const isGnuTar = versionOutput.toUpperCase().includes("GNU TAR");
    let args;
    if (flags instanceof Array) {
      args = flags;
    } else {
      args = [flags];
    }
    if (isDebug() && !flags.includes("v")) {
      args.push("-v");
    }
    let destArg = dest;
    let fileArg = file;
    if (IS_WINDOWS && isGnuTar) {
      args.push("--force-local");
      destArg = dest.replace(/\\/g, "/");
      fileArg = file.replace(/\\/g, "/");
    }
    if (isGnuTar) {
      args.push("--warning=no-unknown-keyword");
      args.push("--overwrite");
    }
    args.push("-C", destArg, "-f", fileArg);
    yield exec(`tar`, args);
    return dest;
  });
}
function cacheDir(sourceDir, tool, version, arch2) {
  return __awaiter2(this, void 0, void 0, function* () {
    version = semver2.clean(version) || version;
    arch2 = arch2 || os.arch();
    debug(`Caching tool ${tool} ${version} ${arch2}`);
    debug(`source dir: ${sourceDir}`);
    if (!fs.statSync(sourceDir).isDirectory()) {
      throw new Error("sourceDir is not a directory");
    }
    const destPath = yield _createToolPath(tool, version, arch2);
    for (const itemName of fs.readdirSync(sourceDir)) {
      const s = path.join(sourceDir, itemName);
      yield cp(s, destPath, { recursive: true });
    }
    _completeToolPath(tool, version, arch2);
    return destPath;
  });
}
function find(toolName, versionSpec, arch2) {
  if (!toolName) {
    throw new Error("toolName parameter is required");
  }
  if (!versionSpec) {
    throw new Error("versionSpec parameter is required");
  }
  arch2 = arch2 || os.arch();
  if (!isExplicitVersion(versionSpec)) {
    const localVersions = findAllVersions(toolName, arch2);
    const match = evaluateVersions(localVersions, versionSpec);
    versionSpec = match;
  }
  let toolPath = "";
  if (versionSpec) {
    versionSpec = semver2.clean(versionSpec) || "";
    const cachePath = path.join(_getCacheDirectory(), toolName, versionSpec, arch2);
    debug(`checking cache: ${cachePath}`);
    if (fs.existsSync(cachePath) && fs.existsSync(`${cachePath}.complete`)) {
      debug(`Found tool in cache ${toolName} ${versionSpec} ${arch2}`);
      toolPath = cachePath;
    } else {
      debug("not found");
    }
  }
  return toolPath;
}
function findAllVersions(toolName, arch2) {
  const versions = [];
  arch2 = arch2 || os.arch();
  const toolPath = path.join(_getCacheDirectory(), toolName);
  if (fs.existsSync(toolPath)) {
    const children = fs.readdirSync(toolPath);
    for (const child of children) {
      if (isExplicitVersion(child)) {
        const fullPath = path.join(toolPath, child, arch2 || "");
        if (fs.existsSync(fullPath) && fs.existsSync(`${fullPath}.complete`)) {
          versions.push(child);
        }
      }
    }
  }
  return versions;
}
function _createExtractFolder(dest) {
  return __awaiter2(this, void 0, void 0, function* () {
    if (!dest) {
      dest = path.join(_getTempDirectory(), crypto.randomUUID());
    }
    yield mkdirP(dest);
    return dest;
  });
}
function _createToolPath(tool, version, arch2) {
  return __awaiter2(this, void 0, void 0, function* () {
    const folderPath = path.join(_getCacheDirectory(), tool, semver2.clean(version) || version, arch2 || "");
    debug(`destination ${folderPath}`);
    const markerPath = `${folderPath}.complete`;
    yield rmRF(folderPath);
    yield rmRF(markerPath);
    yield mkdirP(folderPath);
    return folderPath;
  });
}
function _completeToolPath(tool, version, arch2) {
  const folderPath = path.join(_getCacheDirectory(), tool, semver2.clean(version) || version, arch2 || "");
  const markerPath = `${folderPath}.complete`;
  fs.writeFileSync(markerPath, "");
  debug("finished caching tool");
}
function isExplicitVersion(versionSpec) {
  const c = semver2.clean(versionSpec) || "";
  debug(`isExplicit: ${c}`);
  const valid2 = semver2.valid(c) != null;
  debug(`explicit? ${valid2}`);
  return valid2;
}
function evaluateVersions(versions, versionSpec) {
  let version = "";
  debug(`evaluating ${versions.length} versions`);
  versions = versions.sort((a, b) => {
    if (semver2.gt(a, b)) {
      return 1;
    }
    return -1;
  });
  for (let i = versions.length - 1; i >= 0; i--) {
    const potential = versions[i];
    const satisfied = semver2.satisfies(potential, versionSpec);
    if (satisfied) {
      version = potential;
      break;
    }
  }
  if (version) {
    debug(`matched: ${version}`);
  } else {
    debug("match not found");
  }
  return version;
}
function _getCacheDirectory() {
  const cacheDirectory = process.env["RUNNER_TOOL_CACHE"] || "";
  ok(cacheDirectory, "Expected RUNNER_TOOL_CACHE to be defined");
  return cacheDirectory;
}
function _getTempDirectory() {
  const tempDirectory = process.env["RUNNER_TEMP"] || "";
  ok(tempDirectory, "Expected RUNNER_TEMP to be defined");
  return tempDirectory;
}
function _getGlobal(key, defaultValue) {
  const value = global[key];
  return value !== void 0 ? value : defaultValue;
}

// src/nix/install.ts
import { spawn } from "node:child_process";
import { randomUUID as randomUUID2 } from "node:crypto";
import { accessSync, constants, existsSync as existsSync2, readdirSync as readdirSync2 } from "node:fs";
import { appendFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, homedir, tmpdir, userInfo } from "node:os";
import { delimiter, join as join2 } from "node:path";

// src/nix/known-hashes.ts
var KNOWN = {
  // nix-2.35.2/install (also pinned as such by independent projects)
  "2.35.2": {
    "x86_64-linux": "0c3960a9792331a22081c3c7a5d8465db9b17c50b3acdf18587fa4c6f2cb1158",
    "aarch64-linux": "4d0302a2910f5eec1c33b8deef634f04899a75737e7001ec49908d003ae5efda"
  },
  // nix-2.35.1/install
  "2.35.1": {
    "x86_64-linux": "c3fe29778acaa93b5095ee66e36f11ec7c6a284c40970a24cc83ac4f04809db3",
    "aarch64-linux": "79b739996f1751573b4d2b56e4ae607855184c711f2cc1274fa0952a13d4bfc9"
  },
  // nix-2.24.9/install
  "2.24.9": {
    "x86_64-linux": "3c0779e4878d1289cf3fbb158ec5ea9bdf61dfb9b4efac6b3b0b6bec5ba4cf13",
    "aarch64-linux": "c57c2830bb407e02dacdf2b63c49cde273f905075b579f6d9a6114c669301f33"
  }
};
var OFFICIAL = /^https:\/\/releases\.nixos\.org\/nix\/nix-([^/]+)\/nix-\1-(x86_64-linux|aarch64-linux)\.tar\.xz$/;
function knownSha256(url) {
  const m = OFFICIAL.exec(url);
  if (!m) return void 0;
  return KNOWN[m[1]]?.[m[2]];
}

// src/nix/install.ts
var NixInstallError = class extends Error {
  name = "NixInstallError";
};
var PROFILE_BINS = ["/nix/var/nix/profiles/default/bin", join2(homedir(), ".nix-profile", "bin")];
function executable(path2) {
  try {
    accessSync(path2, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
function findNix(env = process.env) {
  for (const dir of [...(env.PATH ?? "").split(delimiter).filter(Boolean), ...PROFILE_BINS]) {
    const candidate = join2(dir, "nix");
    if (executable(candidate)) return candidate;
  }
  return void 0;
}
var FEATURES = "extra-experimental-features = nix-command flakes";
function nixSettings(opts = {}) {
  const lines = [FEATURES, "max-jobs = auto"];
  if (opts.trustedUser) lines.push(`extra-trusted-users = ${opts.trustedUser}`);
  return `${lines.join("\n")}
`;
}
function nixConfig(opts, existing) {
  const plain = [];
  const secret = [];
  for (const line of (opts.extraNixConf ?? "").split(/\r?\n/)) {
    if (line.trim() === "") continue;
    (nixConfSecrets(line).length > 0 ? secret : plain).push(line);
  }
  if (opts.githubToken) secret.push(`extra-access-tokens = github.com=${opts.githubToken}`);
  const env = [existing?.trimEnd(), ...plain, FEATURES].filter(Boolean).join("\n");
  if (opts.impure) return { env, secret: "", withheld: secret.length > 0 };
  return { env, secret: secret.length > 0 ? `${secret.join("\n")}
` : "", withheld: false };
}
function settingOf(line) {
  return /^\s*([A-Za-z0-9_-]+)\s*=/.exec(line.replace(/#.*$/, ""))?.[1];
}
async function appendMissingLines(file, text) {
  const existing = existsSync2(file) ? await readFile(file, "utf8") : "";
  const lines = existing.split("\n").map((l) => l.trim());
  const have = new Set(lines);
  const set = new Set(lines.map(settingOf).filter((k) => k !== void 0 && !k.startsWith("extra-")));
  const missing = [...new Set(text.split("\n").map((l) => l.trim()))].filter((l) => {
    const key = settingOf(l);
    return l !== "" && !have.has(l) && !(key !== void 0 && set.has(key));
  });
  if (missing.length > 0) {
    const separator = existing === "" || existing.endsWith("\n") ? "" : "\n";
    await appendFile(file, `${separator}${missing.join("\n")}
`, { mode: 384 });
  }
  return missing;
}
function run(cmd, args, env, echo = false) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const take = (d) => {
      out = (out + d.toString()).slice(-32 * 1024);
      if (echo) process.stdout.write(d);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}
async function nixVersion(nix, env) {
  const { code, out } = await run(nix, ["--version"], env);
  const m = /(\d+\.\d+(?:\.\d+)?(?:[\w.+-]*)?)\s*$/m.exec(out.trim());
  if (code !== 0 || !m) throw new NixInstallError(`${nix} --version failed: ${out.trim().split("\n").pop() ?? ""}`);
  return m[1];
}
function runnerSystem(platform = process.platform, arch2 = process.arch) {
  const cpu = { x64: "x86_64", arm64: "aarch64" }[arch2];
  if (platform !== "linux" || !cpu) {
    throw new NixInstallError(`cannot install Nix on a ${platform}/${arch2} runner: supported are x86_64-linux and aarch64-linux`);
  }
  return `${cpu}-${platform}`;
}
function releaseUrl(version, system) {
  return `https://releases.nixos.org/nix/nix-${version}/nix-${version}-${system}.tar.xz`;
}
async function publishedSha256(url, temp) {
  const file = join2(temp, `nix-image-action-${randomUUID2()}.sha256`);
  recordTempFile(file);
  let text;
  try {
    await downloadTool(`${url}.sha256`, file);
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new NixInstallError(`cannot download ${url}.sha256: ${e.message} (give nix-sha256 to skip it)`);
  } finally {
    await rm(file, { force: true });
  }
  const hex = text.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new NixInstallError(`${url}.sha256 does not hold a SHA-256: "${hex.slice(0, 80)}"`);
  return hex;
}
async function expectedSha256(url, sha256, temp) {
  if (sha256) return sha256;
  const known = knownSha256(url);
  if (known) return known;
  return publishedSha256(url, temp);
}
async function fetchRelease(version, system, url, sha256, temp) {
  const expected = await expectedSha256(url, sha256, temp);
  const tool = "nix";
  const arch2 = `${system}-sha256-${expected}`;
  const cached = find(tool, version, arch2);
  if (cached) {
    info(`Nix ${version} tarball (SHA-256 ${expected}) found in the tool cache: ${cached}`);
    return cached;
  }
  info(`downloading ${url}`);
  const file = join2(temp, `nix-image-action-${randomUUID2()}.tar.xz`);
  const unpacked = join2(temp, `nix-image-action-${randomUUID2()}`);
  recordTempFile(file);
  recordTempFile(unpacked);
  try {
    return await unpackRelease({ version, arch: arch2, url, expected, tool, file, unpacked });
  } finally {
    await rm(file, { force: true });
    await rm(unpacked, { recursive: true, force: true });
  }
}
async function unpackRelease(o) {
  const { version, arch: arch2, url, expected, tool, file } = o;
  try {
    await downloadTool(url, file);
  } catch (e) {
    throw new NixInstallError(`cannot download the Nix tarball ${url}: ${e.message}`);
  }
  const actual = await sha256FileHex(file);
  if (actual !== expected) {
    throw new NixInstallError(`the Nix tarball ${url} has SHA-256 ${actual}, expected ${expected}: not installing it`);
  }
  let dir;
  try {
    dir = await extractTar(file, o.unpacked, "xJ");
  } catch (e) {
    throw new NixInstallError(`cannot unpack the Nix tarball ${url}: ${e.message}`);
  }
  return cacheDir(dir, tool, version, arch2);
}
function installerIn(dir) {
  const direct = join2(dir, "install");
  if (existsSync2(direct)) return direct;
  for (const entry of readdirSync2(dir)) {
    const candidate = join2(dir, entry, "install");
    if (existsSync2(candidate)) return candidate;
  }
  throw new NixInstallError(`the Nix tarball unpacked to ${dir} has no install script`);
}
function canRunDaemon(env) {
  const root = process.getuid?.() === 0;
  const sudo = (env.PATH ?? "").split(delimiter).some((d) => executable(join2(d, "sudo")));
  return existsSync2("/run/systemd/system") && (root || sudo);
}
async function install(opts, env) {
  const system = runnerSystem();
  const url = opts.installUrl ?? releaseUrl(opts.nixVersion, system);
  if (!opts.sha256 && !isOfficialReleaseUrl(url)) throw new InputError("nix-install-url", CHECKSUM_REQUIRED);
  const temp = env.RUNNER_TEMP || tmpdir();
  const dir = await fetchRelease(opts.nixVersion, system, url, opts.sha256, temp);
  const installer = installerIn(dir);
  const user = env.USER || userInfo().username;
  const settings = nixSettings({ trustedUser: user });
  const confFile = join2(temp, "nix-image-action.nix.conf");
  recordTempFile(confFile);
  await writeFile(confFile, settings, { mode: 384 });
  const daemon = canRunDaemon(env);
  const flags = daemon ? ["--daemon", "--yes", "--daemon-user-count", String(Math.max(4, availableParallelism())), "--no-channel-add", "--nix-extra-conf-file", confFile] : ["--no-daemon", "--no-channel-add", "--nix-extra-conf-file", confFile];
  startGroup(`${installer} ${flags.join(" ")}`);
  let result;
  try {
    result = await run(installer, flags, withoutSecrets(env), true);
  } finally {
    endGroup();
    await rm(confFile, { force: true });
  }
  if (result.code !== 0) {
    const last = result.out.trim().split("\n").slice(-2).join(" / ");
    throw new NixInstallError(`the Nix installer exited with code ${result.code}: ${last}`);
  }
  if (!daemon) {
    const confDir = join2(env.XDG_CONFIG_HOME || join2(env.HOME || homedir(), ".config"), "nix");
    await mkdir(confDir, { recursive: true });
    await appendMissingLines(join2(confDir, "nix.conf"), settings);
  }
  for (const bin of PROFILE_BINS) {
    if (executable(join2(bin, "nix"))) {
      addPath(bin);
      return join2(bin, "nix");
    }
  }
  throw new NixInstallError(`the Nix installer succeeded but no nix is in ${PROFILE_BINS.join(" or ")}`);
}
function multiUserNix(env = process.env) {
  const state = env.NIX_STATE_DIR || "/nix/var/nix";
  const socket = env.NIX_DAEMON_SOCKET_PATH || join2(state, "daemon-socket", "socket");
  const profileNix = join2(state, "profiles", "default", "bin", "nix");
  const why = existsSync2(socket) ? `its daemon's socket ${socket}` : executable(profileNix) ? profileNix : void 0;
  if (!why) return void 0;
  const nix = executable(profileNix) ? profileNix : findNix(env);
  return nix ? { nix, why } : void 0;
}
async function setupNix(opts) {
  const env = opts.env ?? process.env;
  if (opts.githubToken) setSecret(opts.githubToken);
  maskNixSecrets({ nixInstallUrl: opts.installUrl, extraNixConf: opts.extraNixConf });
  let found;
  if (opts.installNix === "true") {
    const multi = multiUserNix(env);
    if (multi) notice(`install-nix is true, but a multi-user Nix is installed (${multi.why}): using it (${multi.nix}) rather than installing over it`);
    found = multi?.nix;
  } else {
    found = findNix(env);
  }
  let nix;
  let installed = false;
  if (found) nix = found;
  else if (opts.installNix === "false") {
    throw new InputError("install-nix", "is false but no nix is on PATH or in /nix/var/nix/profiles/default/bin: install Nix first, or use auto");
  } else {
    nix = await install(opts, env);
    installed = true;
  }
  const config = nixConfig({ githubToken: opts.githubToken, extraNixConf: opts.extraNixConf, impure: opts.impure }, env.NIX_CONFIG);
  if (config.withheld) {
    notice(
      "the evaluation is impure (build-args or Nix settings), so flake code can read what Nix reads: Nix gets no github-token and none of the secret lines of extra-nix-conf; evaluate purely, or configure those credentials on the runner yourself"
    );
  }
  const version = await nixVersion(nix, { ...env, NIX_CONFIG: config.env });
  const said = checkVersion({ used: version, nix, asked: opts.nixVersion, installed });
  if (said?.level === "error") throw new NixInstallError(said.message);
  if (said) core_exports[said.level](said.message);
  const kept = config.secret === "" ? void 0 : keepSecretSettings(config.secret, stepTempDir("nix-image-action-nix-"));
  if (kept && "problem" in kept) {
    warning(`cannot give Nix its secret settings (github-token, the secret lines of extra-nix-conf) but through a file flake code could read: ${kept.problem}; Nix gets none of them`);
  }
  const include = kept && "include" in kept ? kept.include : void 0;
  const nixEnv = { NIX_CONFIG: include ? `${config.env}
${include}` : config.env };
  info(`${installed ? "installed" : "using"} Nix ${version} (${nix})`);
  return { nix, version, installed, env: nixEnv };
}

// src/nix/build.ts
import { existsSync as existsSync3 } from "node:fs";
import { basename, dirname as dirname2, join as join3 } from "node:path";
var BuildError = class extends Error {
  name = "BuildError";
};
var EvaluationError = class extends BuildError {
  name = "EvaluationError";
};
var ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
function describeFailure(installable, code, stderr) {
  const lines = stderr.replace(ANSI, "").split("\n").map((l) => l.trimEnd());
  const drv = /builder for '([^']+\.drv)' failed[^\n]*/.exec(stderr.replace(ANSI, ""));
  const firstError = lines.findIndex((l) => /^error:/.test(l.trim()));
  if (drv) {
    const name = drv[1].replace(/^.*\/[0-9a-z]{32}-/, "").replace(/\.drv$/, "");
    const quoted = lines.filter((l) => /^\s*>\s?/.test(l)).map((l) => l.replace(/^\s*>\s?/, ""));
    const prefixed = lines.filter((l) => l.startsWith(`${name}> `)).map((l) => l.slice(name.length + 2));
    const tail = (quoted.length ? quoted : prefixed).map((l) => l.trim()).filter(Boolean).slice(-3);
    return `nix build ${installable} failed: ${drv[0].replace(/[;.]\s*$/, "")}${tail.length ? `; last log lines: ${tail.join(" | ")}` : ""}`;
  }
  const message = firstError >= 0 ? lines.slice(firstError).map((l) => l.trim()).filter(Boolean).slice(0, 4).join(" ") : lines.map((l) => l.trim()).filter(Boolean).slice(-3).join(" ");
  return `nix build ${installable} failed (exit ${code}): ${message || "no output"}`;
}
var ACT_BUILD = 105;
var ACT_SUBSTITUTE = 108;
function realisedBy(line) {
  if (!line.startsWith("@nix {")) return void 0;
  try {
    const event = JSON.parse(line.slice(5));
    if (event.action !== "start" || event.type !== ACT_BUILD && event.type !== ACT_SUBSTITUTE) return void 0;
    const path2 = event.fields?.[0];
    return typeof path2 === "string" && path2.startsWith("/") ? path2 : void 0;
  } catch {
    return void 0;
  }
}
async function derivationOf(opts) {
  const realised = /* @__PURE__ */ new Set();
  try {
    const out = await nixOutput(opts.nix, ["path-info", "--derivation", "--log-format", "internal-json", opts.installable, ...opts.buildArgs], opts.env, {
      onStderrLine: (line) => {
        const path2 = realisedBy(line);
        if (path2) realised.add(path2);
      }
    });
    const drv = out.trim().split("\n").pop();
    return { ...drv?.endsWith(".drv") ? { drvPath: drv } : {}, realised: [...realised] };
  } catch {
    return { realised: [...realised] };
  }
}
function nixErrorMessage(stderr) {
  const lines = stderr.replace(ANSI, "").split("\n").filter((l) => !l.startsWith("@nix "));
  const first = lines.findIndex((l) => /^error:/.test(l.trim()));
  if (first < 0) return lines.map((l) => l.trim()).filter(Boolean).slice(-1)[0] ?? "no output";
  const rest = lines.slice(first + 1).map((l) => l.trim()).filter((l) => /^at /.test(l)).slice(0, 1);
  return [lines[first].trim(), ...rest].join(" ");
}
function gitTop(dir) {
  for (let d = dir; ; d = dirname2(d)) {
    if (existsSync3(join3(d, ".git"))) return d;
    if (dirname2(d) === d) return void 0;
  }
}
function untrackedHint(flake, message, cwd) {
  const dir = localFlakeDir(flake, cwd);
  if (!dir || flake.startsWith("path:")) return void 0;
  const top = gitTop(dir);
  if (!top) return void 0;
  const tracked = /Path '([^']+)' in the repository .* is not tracked by Git/.exec(message);
  const missing = /'\/nix\/store\/[0-9a-z]{32}-source\/([^']+)'(?::| does not exist| No such file)/.exec(message);
  const file = tracked?.[1] ?? missing?.[1];
  if (!file || !tracked && !existsSync3(join3(top, file))) return void 0;
  return `${file} is not tracked by git; git add it: flakes only see tracked files`;
}
async function evaluateDerivation(opts) {
  if (evaluatesImpurely(opts.buildArgs, [String(opts.env?.NIX_CONFIG ?? "")])) return { reason: "the evaluation is impure (build-args or the Nix settings): the derivation does not fix the image" };
  let drvPath;
  try {
    const out = await nixOutput(opts.nix, ["path-info", "--derivation", "--option", "allow-import-from-derivation", "false", opts.installable, ...opts.buildArgs], opts.env);
    drvPath = out.trim().split("\n").pop();
  } catch (error) {
    const stderr = error instanceof NixCommandError ? error.stderr : String(error);
    if (/allow-import-from-derivation|import from derivation/i.test(stderr)) return { reason: "it imports from a derivation: evaluating it needs a build" };
    const message = error instanceof NixCommandError ? nixErrorMessage(stderr) : error.message;
    const flake = opts.installable.split("#")[0];
    const hint = untrackedHint(flake, stderr);
    throw new EvaluationError(`nix could not evaluate ${opts.installable}: ${message}${hint ? ` (${hint})` : ""}`);
  }
  if (!drvPath?.endsWith(".drv")) return { reason: "nix path-info --derivation named no derivation" };
  let drv;
  try {
    drv = await readDerivation(drvPath);
  } catch (error) {
    return { reason: error.message };
  }
  if (drv.env.__impure !== void 0) return { reason: `${drvPath} is an impure derivation` };
  const outPath = drv.outputs.out ?? Object.values(drv.outputs)[0];
  if (!outPath) return { reason: `${drvPath} is content-addressed: its output path is known only once built` };
  return { drvPath, outPath };
}
function ignoredSubstituters(log) {
  return [...log.replace(ANSI, "").matchAll(/ignoring untrusted substituter '([^']+)'/g)].map((m) => m[1]);
}
async function runLogged(command, args, env, onLine) {
  startGroup(`${basename(command)} ${args.join(" ")}`);
  let stdout = "";
  let stderr = "";
  let head2 = "";
  let partial = "";
  try {
    const code = await new Promise((resolve, reject) => {
      const child = spawnNix(command, args, env);
      child.stdout.on("data", (d) => stdout += d.toString());
      child.stderr.on("data", (d) => {
        const text = d.toString();
        stderr = (stderr + text).slice(-64 * 1024);
        if (head2.length < 64 * 1024) head2 += text;
        process.stdout.write(text);
        if (onLine) {
          const lines = (partial + text).split("\n");
          partial = lines.pop();
          lines.forEach(onLine);
        }
      });
      child.on("error", (e) => reject(new BuildError(`cannot run ${command}: ${e.message}`)));
      child.on("close", (code2) => {
        if (partial && onLine) onLine(partial);
        resolve(code2);
      });
    });
    return { code, stdout, stderr, head: head2 };
  } finally {
    endGroup();
  }
}
async function realiseDerivation(opts, drvPath, what) {
  const started = Date.now();
  const { code, stdout, stderr, head: head2 } = await runLogged(nixStoreBinary(opts.nix), ["--realise", drvPath], opts.env, opts.onLine);
  if (code !== 0) throw new BuildError(describeFailure(what, code, stderr));
  return { outPaths: stdout.split("\n").filter(Boolean), seconds: (Date.now() - started) / 1e3, ignoredSubstituters: ignoredSubstituters(head2) };
}
async function buildImageOutput(opts) {
  const args = ["build", "--no-link", "--json", "--print-build-logs", opts.installable, ...opts.buildArgs];
  const started = Date.now();
  const { code, stdout, stderr, head: head2 } = await runLogged(opts.nix, args, opts.env, opts.onLine);
  if (code !== 0) throw new BuildError(describeFailure(opts.installable, code, stderr));
  let parsed;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new BuildError(`nix build ${opts.installable} printed no JSON result: ${stdout.slice(0, 200)}`);
  }
  const first = parsed[0];
  const outputs = first?.outputs ?? {};
  const storePath = outputs.out ?? Object.values(outputs)[0];
  if (!first?.drvPath || !storePath) throw new BuildError(`nix build ${opts.installable} reported no output path: ${stdout.slice(0, 200)}`);
  if (parsed.length > 1) warning(`nix build ${opts.installable} built ${parsed.length} results; using the first, ${storePath}`);
  return { storePath, drvPath: first.drvPath, seconds: (Date.now() - started) / 1e3, ignoredSubstituters: ignoredSubstituters(head2) };
}

// src/nix/dockertools.ts
import { lstat, readFile as readFile2, stat } from "node:fs/promises";
import { basename as basename2, join as join4 } from "node:path";
var STORE_PATH = /^(\/[^\s'"\\]+)\/[0-9a-z]{32}-[A-Za-z0-9+\-._?=]+$/;
var PIPE = /^(\S+)\s*\|\s*((?:cat|pigz|gzip|zstd)(?:\s+[-\w$={}]+)*)\s*>\s*"?\$\{?out\}?"?$/;
var REDIRECT = /^(\S+)\s*>\s*"?\$\{?out\}?"?$/;
var WRAPPER = /^makeWrapper\s+(\S+)\s+"?\$\{?out\}?"?\s+--add-flags\s+(\S+)$/;
var SCRIPT_MARKERS = [
  [/^\s*import\s+tarfile\b/m, "import tarfile"],
  [/tarfile\.open\([^)]*mode\s*=\s*"w\|"/, 'layer tars written by tarfile.open(mode="w|")'],
  [/\.rglob\(\s*"\*"\s*\)/, 'store paths walked with rglob("*")'],
  [/\bsorted\(/, "entries sorted"],
  [/\.islnk\(\)[\s\S]{0,300}tarfile\.REGTYPE/, "hardlinks copied as regular files"],
  ...["store_layers", "customisation_layer", "mtime", "uid", "gid", "uname", "gname", "store_dir", "created", "architecture", "config"].map(
    (k) => [new RegExp(`conf\\[\\s*"${k}"\\s*\\]`), `conf["${k}"] read`]
  ),
  [/json\.dumps\([^)]*indent\s*=\s*4/, "the config written by json.dumps(indent=4)"],
  [/store paths: \{/, 'history comments "store paths: [...]"']
];
var CONF_KEYS = ["architecture", "config", "store_dir", "from_image", "store_layers", "customisation_layer", "repo_tag", "created", "mtime", "uid", "gid", "uname", "gname"];
var CONF_OPTIONAL = ["os"];
function commandOf(drv) {
  if (drv.env.buildCommand !== void 0) return drv.env.buildCommand;
  if (drv.env.__json !== void 0) {
    try {
      const attrs = JSON.parse(drv.env.__json);
      if (typeof attrs.buildCommand === "string") return attrs.buildCommand;
    } catch {
      return void 0;
    }
  }
  const c = drv.args.indexOf("-c");
  return c >= 0 ? drv.args[c + 1] : void 0;
}
function resolveToken(token, drv) {
  const unquoted = token.replace(/^"(.*)"$/, "$1").replace(/^'(.*)'$/, "$1");
  const ref = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(unquoted);
  return ref ? drv.env[ref[1]] ?? "" : unquoted;
}
async function producerOf(drv, path2) {
  for (const [input, outs] of Object.entries(drv.inputDrvs)) {
    const d = await readDerivation(input).catch(() => void 0);
    if (d && outs.some((o) => d.outputs[o] === path2)) return d;
  }
  return void 0;
}
function singleLine(command) {
  const lines = command.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  return lines.length === 1 ? lines[0] : void 0;
}
function missingMarkers(script) {
  return SCRIPT_MARKERS.filter(([re]) => !re.test(script)).map(([, what]) => what);
}
async function scriptSource(drv) {
  const isSource = (p) => /^[0-9a-z]{32}-stream_layered_image\.py$/.test(basename2(p));
  const direct = drv.inputSrcs.find(isSource);
  if (direct) return direct;
  for (const input of Object.keys(drv.inputDrvs)) {
    const d = await readDerivation(input).catch(() => void 0);
    const found = d?.inputSrcs.find(isSource);
    if (found) return found;
  }
  return void 0;
}
async function recogniseStream(drv) {
  const command = commandOf(drv);
  const line = command === void 0 ? void 0 : singleLine(command);
  const m = line ? WRAPPER.exec(line) : null;
  if (!m) return { reason: `${drv.env.name ?? drv.path} is not a streamLayeredImage wrapper (makeWrapper <script> $out --add-flags <conf>)` };
  const scriptPath = resolveToken(m[1], drv);
  const confPath = resolveToken(m[2], drv);
  const scriptDrv = await producerOf(drv, scriptPath);
  const confDrv = await producerOf(drv, confPath);
  if (!scriptDrv || !confDrv) return { reason: `the wrapper's script and conf are not outputs of its input derivations` };
  if (!/-conf\.json$/.test(confDrv.env.name ?? "")) return { reason: `the wrapper's flags are not a dockerTools conf (${confDrv.env.name ?? confDrv.path})` };
  const source = await scriptSource(scriptDrv);
  if (!source) return { reason: `the wrapper's script ${scriptPath} is not made from nixpkgs' stream_layered_image.py` };
  let text;
  try {
    text = await readFile2(source, "utf8");
  } catch {
    return { reason: `the script source ${source} is not in the store` };
  }
  const missing = missingMarkers(text);
  if (missing.length > 0) return { reason: `${source} is a stream_layered_image.py this action does not know (it lacks: ${missing.join("; ")})` };
  return { ok: { streamDrv: drv.path, confDrv: confDrv.path, confPath, script: source } };
}
async function recogniseImage(drvPath) {
  let drv;
  try {
    drv = await readDerivation(drvPath);
  } catch (e) {
    return { reason: `cannot read the derivation ${drvPath}: ${e.message}` };
  }
  const outPath = drv.outputs.out ?? "";
  const name = drv.env.name ?? basename2(drvPath);
  const command = commandOf(drv);
  const line = command === void 0 ? void 0 : singleLine(command);
  if (line && WRAPPER.test(line)) {
    const s2 = await recogniseStream(drv);
    if ("reason" in s2) return s2;
    return { image: { drvPath, outPath, kind: "stream", ...s2.ok }, reason: `${name} is a dockerTools streamLayeredImage` };
  }
  const piped = line ? PIPE.exec(line) ?? REDIRECT.exec(line) : null;
  if (!piped) return { reason: `${name} is not a dockerTools layered image (no stream script piped into $out)` };
  const streamPath = resolveToken(piped[1], drv);
  const streamDrv = await producerOf(drv, streamPath);
  if (!streamDrv) return { reason: `${name} pipes ${streamPath}, which none of its input derivations makes` };
  const s = await recogniseStream(streamDrv);
  if ("reason" in s) return s;
  const compressor = piped[2]?.trim() ?? "none";
  return {
    image: { drvPath, outPath, kind: "archive", compressor, ...s.ok },
    reason: `${name} is a dockerTools buildLayeredImage (the stream ${basename2(streamPath)} piped into ${compressor})`
  };
}
var isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
function planFromConf(confText, image) {
  let conf;
  try {
    conf = JSON.parse(confText);
  } catch {
    return { reason: `the conf ${image.confPath} is not JSON` };
  }
  if (!isObject(conf)) return { reason: "the conf is not a JSON object" };
  const keys = Object.keys(conf);
  const unknown = keys.filter((k) => !CONF_KEYS.includes(k) && !CONF_OPTIONAL.includes(k));
  const absent = CONF_KEYS.filter((k) => !keys.includes(k));
  if (unknown.length || absent.length) {
    return { reason: `the conf has a shape this action does not know (${[unknown.length ? `unknown: ${unknown.join(", ")}` : "", absent.length ? `missing: ${absent.join(", ")}` : ""].filter(Boolean).join("; ")})` };
  }
  if (conf.from_image !== null) return { reason: "the image has a fromImage base, whose layers come from its archive" };
  const storeDir = conf.store_dir;
  if (typeof storeDir !== "string" || !storeDir.startsWith("/")) return { reason: "the conf has no valid store_dir" };
  const inStore = (p) => typeof p === "string" && STORE_PATH.exec(p)?.[1] === storeDir;
  const layers = conf.store_layers;
  if (!Array.isArray(layers) || !layers.every((l) => Array.isArray(l) && l.length > 0 && l.every(inStore))) {
    return { reason: `the conf's store_layers are not lists of store paths under ${storeDir}` };
  }
  if (!inStore(conf.customisation_layer)) return { reason: "the conf has no valid customisation_layer" };
  const ids = {};
  for (const k of ["uid", "gid"]) {
    const v = conf[k];
    const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]{1,10}$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < 0) return { reason: `the conf's ${k} is not a whole number: ${JSON.stringify(v)}` };
    ids[k] = n;
  }
  for (const k of ["uname", "gname", "architecture", "created", "mtime"]) if (typeof conf[k] !== "string") return { reason: `the conf's ${k} is not a string` };
  if (!isObject(conf.config)) return { reason: "the conf's config is not an object" };
  return {
    ok: {
      image,
      storeLayers: layers,
      customisationLayer: conf.customisation_layer,
      storeDir,
      created: conf.created,
      mtime: conf.mtime,
      uid: ids.uid,
      gid: ids.gid,
      uname: conf.uname,
      gname: conf.gname,
      architecture: conf.architecture,
      confText
    }
  };
}
async function realisePlan(image, nix, env, onLine) {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1e3;
  const store = nixStoreBinary(nix);
  const built = await realiseDerivation({ nix, env, ...onLine ? { onLine } : {} }, image.confDrv, `the image's conf ${basename2(image.confDrv)}`);
  const confPath = built.outPaths.at(-1) ?? image.confPath;
  const confText = await readFile2(confPath, "utf8");
  const step = planFromConf(confText, { ...image, confPath });
  if ("reason" in step) return { reason: step.reason, seconds: seconds(), ignoredSubstituters: built.ignoredSubstituters };
  const plan = step.ok;
  const needed = [.../* @__PURE__ */ new Set([...plan.storeLayers.flat(), plan.customisationLayer])];
  const absent = [];
  for (const p of needed) if (!await lstat(p).then(() => true, () => false)) absent.push(p);
  if (absent.length > 0) await nixOutput(store, ["--realise", ...absent], env);
  for (const f of ["layer.tar", "checksum"]) {
    const ok2 = await stat(join4(plan.customisationLayer, f)).then((s) => s.isFile(), () => false);
    if (!ok2) return { reason: `the customisation layer ${plan.customisationLayer} has no ${f}`, seconds: seconds(), ignoredSubstituters: built.ignoredSubstituters };
  }
  const kind = image.kind === "stream" ? "streamLayeredImage" : `buildLayeredImage (${image.compressor})`;
  return {
    plan,
    reason: `${basename2(image.drvPath, ".drv")} is a dockerTools ${kind}: ${plan.storeLayers.length} store layers and the customisation layer, from ${basename2(confPath)}`,
    seconds: seconds(),
    ignoredSubstituters: built.ignoredSubstituters
  };
}
async function producerDerivation(drvPath, layersFrom) {
  if (layersFrom === "archive") return drvPath;
  const recognised = await recogniseImage(drvPath);
  return recognised.image?.confDrv ?? drvPath;
}

// src/nix/resolve.ts
async function resolveImage(opts) {
  const started = Date.now();
  const evaluation = opts.drvPath ? { drvPath: opts.drvPath, realised: [] } : await derivationOf(opts);
  const { drvPath, realised: evaluated } = evaluation;
  if (drvPath) opts.onDerivation?.(drvPath, evaluated);
  let plan;
  let ignored = [];
  let reason = "the installable could not be evaluated to a derivation without building";
  if (drvPath) {
    const recognised = await recogniseImage(drvPath);
    reason = recognised.reason;
    if (recognised.image) {
      const realised = await realisePlan(recognised.image, opts.nix, opts.env, opts.onLine);
      reason = realised.reason;
      plan = realised.plan;
      ignored = realised.ignoredSubstituters;
      const refused = plan ? opts.checkPlan?.(plan) : void 0;
      if (refused) {
        reason = `the layers cannot be made exactly from the plan: ${refused}`;
        plan = void 0;
      }
    }
  }
  if (plan && opts.layersFrom === "auto") {
    info(`image: layers made from the store, the archive is not built (${reason})`);
    return { drvPath, evaluated, outPath: plan.image.outPath, plan, reason, seconds: (Date.now() - started) / 1e3, ignoredSubstituters: ignored };
  }
  const why = plan ? `layers-from: archive (${reason})` : reason;
  info(`image: building the output and reading its archive: ${why}`);
  const built = await buildImageOutput(opts);
  return {
    drvPath: built.drvPath,
    evaluated,
    outPath: built.storePath,
    built,
    ...plan ? { archivePlan: plan } : {},
    reason: why,
    seconds: (Date.now() - started) / 1e3,
    ignoredSubstituters: [.../* @__PURE__ */ new Set([...ignored, ...built.ignoredSubstituters])]
  };
}

// src/image/format.ts
import { open, readdir, stat as stat2 } from "node:fs/promises";
import { join as join5 } from "node:path";
var NotAnImageError = class extends Error {
  name = "NotAnImageError";
};
var GZIP = Buffer.from([31, 139]);
var ZSTD = Buffer.from([40, 181, 47, 253]);
async function head(path2, n) {
  const fh = await open(path2, "r");
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
async function sniffFile(path2) {
  const info2 = await stat2(path2);
  const bytes = await head(path2, 512);
  if (bytes.subarray(0, 2).equals(GZIP)) return { format: "docker-archive+gzip", found: "gzip data" };
  if (bytes.subarray(0, 4).equals(ZSTD)) return { format: "docker-archive+zstd", found: "zstd data" };
  if (bytes.length >= 262 && bytes.subarray(257, 262).toString("latin1") === "ustar") {
    return { format: "docker-archive", found: "a tar archive" };
  }
  if (bytes.subarray(0, 2).toString("latin1") === "#!") {
    if (info2.mode & 73) return { format: "stream", found: "an executable script" };
    return { found: "a script that is not executable" };
  }
  if (bytes.subarray(0, 4).toString("latin1") === "\x7FELF") return { found: "an ELF executable" };
  return { found: info2.size === 0 ? "an empty file" : `a ${info2.size}-byte file of unknown type` };
}
var ARCHIVE_NAME = /\.(tar|tar\.gz|tgz|tar\.zst)$/;
async function detectSource(storePath) {
  const info2 = await stat2(storePath).catch(() => void 0);
  if (!info2) throw new NotAnImageError(`${storePath} is not a container image: the path does not exist`);
  let path2 = storePath;
  if (info2.isDirectory()) {
    const entries = await readdir(storePath);
    const archives = entries.filter((e) => ARCHIVE_NAME.test(e));
    if (archives.length !== 1) {
      const listing = entries.slice(0, 5).join(", ") + (entries.length > 5 ? ", \u2026" : "");
      throw new NotAnImageError(
        `${storePath} is not a container image: expected a docker-archive (.tar, .tar.gz, .tar.zst) or a streamLayeredImage script, found a directory with ${entries.length ? listing : "nothing in it"}`
      );
    }
    path2 = join5(storePath, archives[0]);
  }
  const { format, found } = await sniffFile(path2);
  if (!format) {
    throw new NotAnImageError(
      `${path2} is not a container image: expected a docker-archive (.tar, .tar.gz, .tar.zst) or a streamLayeredImage script, found ${found}`
    );
  }
  return { format, path: path2 };
}

// src/image/store-layer.ts
import { isUtf8 } from "node:buffer";
import * as fs2 from "node:fs";
import { readdir as readdir2, readlink } from "node:fs/promises";
import { Readable } from "node:stream";
var LAYER_MAKER_VERSION = "2";
var UnsupportedImageError = class extends Error {
  name = "UnsupportedImageError";
};
var BLOCK = 512;
var RECORD = 20 * BLOCK;
var ZEROS = Buffer.alloc(RECORD);
var SLASH = Buffer.from("/");
function isAscii(s) {
  return /^[\x00-\x7f]*$/.test(s);
}
function asciiReplace(s) {
  let out = "";
  for (const ch of s) out += ch.charCodeAt(0) < 128 ? ch : "?";
  return Buffer.from(out, "latin1");
}
function octal(n, digits) {
  return n.toString(8).padStart(digits - 1, "0") + "\0";
}
function ustarHeader(f) {
  const b = Buffer.alloc(BLOCK);
  const str = (s, at, len) => asciiReplace(s).copy(b, at, 0, len);
  str(f.name, 0, 100);
  b.write(octal(f.mode & 4095, 8), 100, "latin1");
  b.write(octal(f.uid, 8), 108, "latin1");
  b.write(octal(f.gid, 8), 116, "latin1");
  b.write(octal(f.size, 12), 124, "latin1");
  b.write(octal(f.mtime, 12), 136, "latin1");
  b.write("        ", 148, "latin1");
  b.write(f.type, 156, "latin1");
  str(f.linkname, 157, 100);
  b.write("ustar\x0000", 257, "latin1");
  str(f.uname, 265, 32);
  str(f.gname, 297, 32);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, "0") + "\0", 148, "latin1");
  return b;
}
function paxRecord(key, value) {
  const body = Buffer.byteLength(key) + value.length + 3;
  let p = 0;
  for (; ; ) {
    const n = body + String(p).length;
    if (n === p) break;
    p = n;
  }
  return Buffer.concat([Buffer.from(`${p} ${key}=`, "latin1"), value, Buffer.from("\n")]);
}
var LONE_SURROGATE = new RegExp("\\p{Cs}", "u");
function fsEncode(s) {
  if (!LONE_SURROGATE.test(s)) return Buffer.from(s, "utf8");
  const parts = [];
  let run3 = "";
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 55296 && c <= 57343) {
      if (c < 56448 || c > 56575) throw new UnsupportedImageError(`${JSON.stringify(s)} holds U+${c.toString(16).toUpperCase()}, which Python cannot encode`);
      parts.push(Buffer.from(run3, "utf8"), Buffer.of(c - 56320));
      run3 = "";
    } else run3 += ch;
  }
  parts.push(Buffer.from(run3, "utf8"));
  return Buffer.concat(parts);
}
function utf8SequenceAt(raw, i) {
  const b = raw[i];
  if (b < 128) return 1;
  const cont = (k, lo = 128, hi = 191) => i + k < raw.length && raw[i + k] >= lo && raw[i + k] <= hi;
  if (b >= 194 && b <= 223) return cont(1) ? 2 : 0;
  if (b >= 224 && b <= 239) {
    const [lo, hi] = b === 224 ? [160, 191] : b === 237 ? [128, 159] : [128, 191];
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b >= 240 && b <= 244) {
    const [lo, hi] = b === 240 ? [144, 191] : b === 244 ? [128, 143] : [128, 191];
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}
function fsName(raw) {
  if (isUtf8(raw)) return { text: raw.toString("utf8"), key: raw };
  let text = "";
  const key = [];
  for (let i = 0; i < raw.length; ) {
    const n = utf8SequenceAt(raw, i);
    if (n > 0) {
      text += raw.toString("utf8", i, i + n);
      for (let k = 0; k < n; k++) key.push(raw[i + k]);
      i += n;
    } else {
      const c = 56320 + raw[i];
      text += String.fromCharCode(c);
      key.push(237, 128 | c >> 6 & 63, 128 | c & 63);
      i += 1;
    }
  }
  return { text, key: Buffer.from(key) };
}
function padLength(n) {
  return (BLOCK - n % BLOCK) % BLOCK;
}
function tarHeader(m) {
  const f = { ...m };
  const pax = [];
  for (const [field, key, len] of [["name", "path", 100], ["linkname", "linkpath", 100], ["uname", "uname", 32], ["gname", "gname", 32]]) {
    const v = f[field];
    if (!isAscii(v) || v.length > len) pax.push([key, v]);
  }
  for (const [field, digits] of [["uid", 8], ["gid", 8], ["size", 12], ["mtime", 12]]) {
    const v = f[field];
    if (!Number.isSafeInteger(v)) throw new UnsupportedImageError(`tar ${field} ${v} is not an integer`);
    if (v < 0 || v >= 8 ** (digits - 1)) {
      f[field] = 0;
      pax.push([field, String(v)]);
    }
  }
  const ustar = ustarHeader(f);
  if (pax.length === 0) return ustar;
  const binary = pax.some(([, v]) => LONE_SURROGATE.test(v));
  const records = Buffer.concat([
    ...binary ? [Buffer.from("21 hdrcharset=BINARY\n")] : [],
    ...pax.map(([k, v]) => paxRecord(k, binary ? fsEncode(v) : Buffer.from(v, "utf8")))
  ]);
  const xh = ustarHeader({ name: "././@PaxHeader", mode: 0, uid: 0, gid: 0, size: records.length, mtime: 0, type: "x", linkname: "", uname: "", gname: "" });
  return Buffer.concat([xh, records, ZEROS.subarray(0, padLength(records.length)), ustar]);
}
function tarEnd(offset) {
  const end = offset + 2 * BLOCK;
  return Buffer.alloc(2 * BLOCK + (RECORD - end % RECORD) % RECORD);
}
function checkParams(tar) {
  for (const k of ["mtime", "uid", "gid"]) {
    if (!Number.isSafeInteger(tar[k])) throw new UnsupportedImageError(`tar ${k} ${tar[k]} is not an integer`);
  }
  for (const k of ["uname", "gname"]) {
    if (typeof tar[k] !== "string") throw new UnsupportedImageError(`tar ${k} is not a string`);
    fsEncode(tar[k]);
  }
}
function checkPath(path2, storeDir) {
  if (!path2.startsWith(storeDir)) throw new Error(`${path2} is not under the store ${storeDir}`);
  const dir = storeDir.endsWith("/") ? storeDir : storeDir + "/";
  if (!path2.startsWith(dir)) throw new UnsupportedImageError(`${path2} is not a path inside ${dir}`);
  const parts = path2.split("/");
  if (parts[0] !== "" || parts.slice(1).some((c) => c === "" || c === "." || c === "..") || path2.includes("\0") || new RegExp("\\p{Cs}", "u").test(path2)) {
    throw new UnsupportedImageError(`${path2} is not a normalized absolute path`);
  }
}
var SMALL = 256 * 1024;
var LOOKAHEAD = 32;
function lstat3(path2) {
  return new Promise((resolve, reject) => fs2.lstat(path2, (e, st) => e ? reject(e) : resolve(st)));
}
function openRead(path2) {
  return new Promise((resolve, reject) => fs2.open(path2, "r", (e, fd) => e ? reject(e) : resolve(fd)));
}
function readInto(fd, buf, at) {
  return new Promise((resolve, reject) => fs2.read(fd, buf, at, buf.length - at, null, (e, n) => e ? reject(e) : resolve(n)));
}
function closeFd(fd) {
  return new Promise((resolve, reject) => fs2.close(fd, (e) => e ? reject(e) : resolve()));
}
async function fill(fd, buf, path2) {
  for (let got = 0; got < buf.length; ) {
    const n = await readInto(fd, buf, got);
    if (n === 0) throw shortRead(path2);
    got += n;
  }
}
function node(path2, name) {
  const st = lstat3(path2);
  st.catch(() => void 0);
  return { path: path2, name, st };
}
function readAhead(n) {
  if (n.data) return;
  n.data = n.st.then((st) => st.isFile() && st.size <= SMALL ? readExact(n.path, st.size) : null);
  n.data.catch(() => void 0);
}
function shortRead(path2) {
  return new Error(`${path2.toString()}: unexpected end of data (it changed while being read)`);
}
async function readExact(path2, size) {
  const fd = await openRead(path2);
  try {
    const buf = Buffer.allocUnsafe(size);
    await fill(fd, buf, path2);
    return buf;
  } finally {
    await closeFd(fd);
  }
}
async function* readChunks(path2, size) {
  const fd = await openRead(path2);
  try {
    for (let left = size; left > 0; ) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
      await fill(fd, buf, path2);
      left -= buf.length;
      yield buf;
    }
  } finally {
    await closeFd(fd);
  }
}
async function member(n, st, tar) {
  const base = { uid: tar.uid, gid: tar.gid, mtime: tar.mtime, uname: tar.uname, gname: tar.gname, mode: st.mode & 4095, linkname: "" };
  if (st.isFile()) return { ...base, name: n.name, type: "0", size: st.size };
  if (st.isDirectory()) return { ...base, name: n.name + "/", type: "5", size: 0 };
  if (st.isSymbolicLink()) {
    const target = fsName(await readlink(n.path, { encoding: "buffer" })).text;
    return { ...base, name: n.name, type: "2", size: 0, linkname: target };
  }
  throw new UnsupportedImageError(`${n.path.toString()} is neither a regular file, a directory nor a symlink`);
}
var Gather = class {
  parts = [];
  pending = 0;
  /** Bytes of the tar so far (TarFile.offset). */
  offset = 0;
  push(b) {
    this.parts.push(b);
    this.pending += b.length;
    this.offset += b.length;
  }
  get full() {
    return this.pending >= READ_CHUNK;
  }
  get empty() {
    return this.pending === 0;
  }
  take() {
    const b = Buffer.concat(this.parts, this.pending);
    this.parts = [];
    this.pending = 0;
    return b;
  }
};
function checkLayerInputs(paths, tar) {
  checkParams(tar);
  for (const path2 of paths) checkPath(path2, tar.storeDir);
}
async function* layer(paths, tar) {
  checkLayerInputs(paths, tar);
  const out = new Gather();
  const root = { mode: 493, uid: tar.uid, gid: tar.gid, size: 0, mtime: tar.mtime, type: "5", linkname: "", uname: tar.uname, gname: tar.gname };
  out.push(tarHeader({ ...root, name: "/nix/" }));
  out.push(tarHeader({ ...root, name: "/nix/store/" }));
  for (const top of paths) {
    const stack = [node(Buffer.from(top, "utf8"), top)];
    while (stack.length > 0) {
      const n = stack.pop();
      for (let i = stack.length - 1; i >= Math.max(0, stack.length - LOOKAHEAD); i--) readAhead(stack[i]);
      const st = await n.st;
      const m = await member(n, st, tar);
      out.push(tarHeader(m));
      if (m.type === "0") {
        const small = n.data ? await n.data : null;
        if (small) out.push(small);
        else if (m.size > 0) {
          if (!out.empty) yield out.take();
          for await (const chunk of readChunks(n.path, m.size)) {
            out.offset += chunk.length;
            yield chunk;
          }
        }
        const pad = padLength(m.size);
        if (pad) out.push(ZEROS.subarray(0, pad));
      } else if (m.type === "5") {
        const children = (await readdir2(n.path, { encoding: "buffer" })).map((raw) => ({ raw, ...fsName(raw) }));
        children.sort((a, b) => Buffer.compare(a.key, b.key));
        for (let i = children.length - 1; i >= 0; i--) {
          const c = children[i];
          stack.push(node(Buffer.concat([n.path, SLASH, c.raw]), `${n.name}/${c.text}`));
        }
      }
      if (out.full) yield out.take();
    }
  }
  out.push(tarEnd(out.offset));
  yield out.take();
}
function storeLayerTar(paths, tar) {
  return Readable.from(layer([...paths], { ...tar }), { objectMode: false, highWaterMark: READ_CHUNK });
}

// src/image/pyjson.ts
var JsonNumber = class {
  constructor(lexeme) {
    this.lexeme = lexeme;
  }
  lexeme;
  /** True for what Python's json reads as int. */
  get isInteger() {
    return /^-?\d+$/.test(this.lexeme);
  }
  /** The exact value of an int; throws for a float. */
  toBigInt() {
    if (!this.isInteger) throw new UnsupportedImageError(`${this.lexeme} is a float, not an int`);
    return BigInt(this.lexeme);
  }
  /** The value as a JS number (a float's value; an int's when it is a safe integer, else throws). */
  toNumber() {
    if (!this.isInteger) return Number(this.lexeme);
    const n = Number(this.lexeme);
    if (!Number.isSafeInteger(n)) throw new UnsupportedImageError(`${this.lexeme} is too large for a JS number`);
    return n === 0 ? 0 : n;
  }
  /** What Python's json.dumps writes for it: int repr, or float repr (NaN, Infinity, -Infinity for those). */
  toPython() {
    return this.isInteger ? BigInt(this.lexeme).toString() : pyFloatRepr(Number(this.lexeme));
  }
};
function isJsonObject(v) {
  return v instanceof Map;
}
var MAX_INT_DIGITS = 4300;
function parsePythonJson(text) {
  const p = new Parser(text);
  p.ws();
  const v = p.value();
  p.ws();
  if (p.i !== text.length) p.fail("extra data");
  return v;
}
var Parser = class {
  constructor(s) {
    this.s = s;
  }
  s;
  i = 0;
  fail(what) {
    throw new UnsupportedImageError(`JSON not read as Python would: ${what} at offset ${this.i}`);
  }
  ws() {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++;
      else break;
    }
  }
  value() {
    const s = this.s;
    const c = s[this.i];
    if (c === '"') return this.string();
    if (c === "{") return this.object();
    if (c === "[") return this.array();
    if (s.startsWith("null", this.i)) return this.i += 4, null;
    if (s.startsWith("true", this.i)) return this.i += 4, true;
    if (s.startsWith("false", this.i)) return this.i += 5, false;
    if (s.startsWith("NaN", this.i)) return this.i += 3, new JsonNumber("NaN");
    if (s.startsWith("Infinity", this.i)) return this.i += 8, new JsonNumber("Infinity");
    if (s.startsWith("-Infinity", this.i)) return this.i += 9, new JsonNumber("-Infinity");
    const m = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(s);
    if (!r) this.fail("expecting value");
    this.i += r[0].length;
    if (r[1] === void 0 && r[2] === void 0 && r[0].replace("-", "").length > MAX_INT_DIGITS) this.fail("int too long for Python");
    return new JsonNumber(r[0]);
  }
  object() {
    const s = this.s;
    const out = /* @__PURE__ */ new Map();
    this.i++;
    this.ws();
    if (s[this.i] === "}") return this.i++, out;
    for (; ; ) {
      if (s[this.i] !== '"') this.fail("expecting property name");
      const key = this.string();
      this.ws();
      if (s[this.i] !== ":") this.fail("expecting ':'");
      this.i++;
      this.ws();
      out.set(key, this.value());
      this.ws();
      if (s[this.i] === ",") {
        this.i++;
        this.ws();
        continue;
      }
      if (s[this.i] === "}") return this.i++, out;
      this.fail("expecting ',' or '}'");
    }
  }
  array() {
    const s = this.s;
    const out = [];
    this.i++;
    this.ws();
    if (s[this.i] === "]") return this.i++, out;
    for (; ; ) {
      out.push(this.value());
      this.ws();
      if (s[this.i] === ",") {
        this.i++;
        this.ws();
        continue;
      }
      if (s[this.i] === "]") return this.i++, out;
      this.fail("expecting ',' or ']'");
    }
  }
  hex4(at) {
    const h = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail("invalid \\uXXXX escape");
    return parseInt(h, 16);
  }
  // Python's scanstring (strict): no raw control characters; \u escapes of a high then a low surrogate
  // make one character, which in a JS string is the same pair of code units, so the text is kept as is.
  string() {
    const s = this.s;
    let out = "";
    let start = ++this.i;
    for (; ; ) {
      if (this.i >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(this.i);
      if (c === 34) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 32) this.fail("invalid control character in string");
      if (c !== 92) {
        this.i++;
        continue;
      }
      out += s.slice(start, this.i);
      const e = s[this.i + 1];
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "	" };
      if (e !== void 0 && e in simple) {
        out += simple[e];
        this.i += 2;
      } else if (e === "u") {
        out += String.fromCharCode(this.hex4(this.i + 2));
        this.i += 6;
      } else this.fail("invalid escape");
      start = this.i;
    }
  }
};
function pyFloatRepr(x) {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mant, expText] = Math.abs(x).toExponential().split("e");
  const digits = mant.replace(".", "");
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, "0");
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
  }
  const point = exp + 1;
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}
function pyJsonString(s) {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 32 && c <= 126 && c !== 34 && c !== 92) continue;
    out += s.slice(start, i);
    start = i + 1;
    switch (c) {
      case 34:
        out += '\\"';
        break;
      case 92:
        out += "\\\\";
        break;
      case 10:
        out += "\\n";
        break;
      case 13:
        out += "\\r";
        break;
      case 9:
        out += "\\t";
        break;
      case 8:
        out += "\\b";
        break;
      case 12:
        out += "\\f";
        break;
      default:
        out += `\\u${c.toString(16).padStart(4, "0")}`;
    }
  }
  return `${out}${s.slice(start)}"`;
}
function dumpsIndent4(value) {
  const parts = [];
  write(value, 0, parts);
  return parts.join("");
}
function write(v, level, out) {
  if (v === null) out.push("null");
  else if (v === true) out.push("true");
  else if (v === false) out.push("false");
  else if (typeof v === "string") out.push(pyJsonString(v));
  else if (v instanceof JsonNumber) out.push(v.toPython());
  else if (Array.isArray(v)) {
    if (v.length === 0) return void out.push("[]");
    const inner = "\n" + " ".repeat(4 * (level + 1));
    out.push("[");
    v.forEach((item, i) => {
      out.push(i === 0 ? inner : "," + inner);
      write(item, level + 1, out);
    });
    out.push("\n" + " ".repeat(4 * level) + "]");
  } else {
    if (v.size === 0) return void out.push("{}");
    const inner = "\n" + " ".repeat(4 * (level + 1));
    out.push("{");
    let first = true;
    for (const [k, item] of v) {
      out.push(first ? inner : "," + inner);
      first = false;
      out.push(pyJsonString(k), ": ");
      write(item, level + 1, out);
    }
    out.push("\n" + " ".repeat(4 * level) + "}");
  }
}

// src/image/labels.ts
function withLabels(configBytes, labels) {
  if (labels.length === 0) return configBytes;
  const root = parsePythonJson(configBytes.toString("utf8"));
  if (!isJsonObject(root)) throw new Error("the image config is not a JSON object");
  let config = root.get("config");
  if (!isJsonObject(config)) {
    config = /* @__PURE__ */ new Map();
    root.set("config", config);
  }
  let current = config.get("Labels");
  if (!isJsonObject(current)) {
    current = /* @__PURE__ */ new Map();
    config.set("Labels", current);
  }
  for (const [k, v] of labels) current.set(k, v);
  return Buffer.from(dumpsIndent4(root), "utf8");
}
function labelled(input, labels) {
  if (labels.length === 0) return input;
  return {
    description: `${input.description}, with ${labels.length} label(s)`,
    async readLayers(visit) {
      const listing = await input.readLayers(visit);
      return {
        order: listing.order,
        config: (diffIDs) => withLabels(listing.config(diffIDs), labels),
        ...listing.keys ? { keys: listing.keys } : {},
        get storePaths() {
          return listing.storePaths;
        }
      };
    }
  };
}

// src/image/plan.ts
import { createReadStream } from "node:fs";
import { readFile as readFile3 } from "node:fs/promises";
import { join as join6 } from "node:path";

// src/image/docker-config.ts
function pyStrRepr(s) {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new UnsupportedImageError(`cannot reproduce Python's repr() of ${JSON.stringify(s)}`);
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = s.replace(/\\/g, "\\\\");
  if (quote === "'") out = out.replace(/'/g, "\\'");
  return quote + out + quote;
}
function pyListRepr(items) {
  return `[${items.map(pyStrRepr).join(", ")}]`;
}
var ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/;
function daysInMonth(y, m) {
  if (m === 2) return y % 4 === 0 && y % 100 !== 0 || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}
function daysFromCivil(y, m, d) {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
function parseTime(value) {
  if (value === "now") throw new UnsupportedImageError('the time "now" is only known when the stream script runs');
  const r = ISO.exec(value);
  if (!r) throw new UnsupportedImageError(`time ${JSON.stringify(value)} is not in a form we reproduce (YYYY-MM-DDTHH:MM:SS[.ffffff] with Z or \xB1HH:MM)`);
  const [, Y, M, D, h, m, s, frac, tz] = r;
  const [year, month, day, hour, minute, second] = [Y, M, D, h, m, s].map(Number);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new UnsupportedImageError(`time ${JSON.stringify(value)} is not a valid date and time`);
  }
  const micro = frac === void 0 ? 0 : Number(frac.padEnd(6, "0"));
  let offsetSeconds = 0;
  let offsetText = "+00:00";
  if (tz !== "Z") {
    const oh = Number(tz.slice(1, 3));
    const om = Number(tz.slice(4, 6));
    if (oh > 23 || om > 59) throw new UnsupportedImageError(`time ${JSON.stringify(value)} has an invalid UTC offset`);
    offsetSeconds = (tz[0] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
    offsetText = offsetSeconds === 0 ? "+00:00" : tz;
  }
  const iso = `${Y}-${M}-${D}T${h}:${m}:${s}${micro ? "." + String(micro).padStart(6, "0") : ""}${offsetText}`;
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  if (micro === 0) return { iso, epochSeconds: seconds };
  const totalMicros = BigInt(seconds) * 1000000n + BigInt(micro);
  if (totalMicros > 2n ** 53n || totalMicros < -(2n ** 53n)) throw new UnsupportedImageError(`time ${JSON.stringify(value)} is too far from 1970 to reproduce its float timestamp`);
  return { iso, epochSeconds: Math.trunc(Number(totalMicros) / 1e6) || 0 };
}
function imageConfigBytes(src, diffIDs) {
  if (diffIDs.length !== src.storeLayers.length + 1) throw new Error(`expected ${src.storeLayers.length + 1} diff ids, got ${diffIDs.length}`);
  for (const d of diffIDs) if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw new Error(`not a sha256 diff id: ${d}`);
  const created = parseTime(src.created).iso;
  const layerPaths = [...src.storeLayers, [src.customisationLayer]];
  const image = /* @__PURE__ */ new Map([
    ["created", created],
    ["architecture", src.architecture],
    ["os", "linux"],
    ["config", src.config],
    ["rootfs", /* @__PURE__ */ new Map([["diff_ids", [...diffIDs]], ["type", "layers"]])],
    ["history", layerPaths.map((paths) => /* @__PURE__ */ new Map([["created", created], ["comment", `store paths: ${pyListRepr(paths)}`]]))]
  ]);
  return Buffer.from(dumpsIndent4(image), "utf8");
}
var utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// src/image/plan.ts
function tarParams(plan) {
  return { mtime: parseTime(plan.mtime).epochSeconds, uid: plan.uid, gid: plan.gid, uname: plan.uname, gname: plan.gname, storeDir: plan.storeDir };
}
function configSource(plan) {
  parseTime(plan.created);
  const conf = parsePythonJson(plan.confText);
  const config = isJsonObject(conf) ? conf.get("config") : void 0;
  if (!isJsonObject(config)) throw new UnsupportedImageError("the conf's config is not an object");
  return { created: plan.created, architecture: plan.architecture, config, storeLayers: plan.storeLayers, customisationLayer: plan.customisationLayer };
}
function digestOf(value) {
  return sha256Digest(JSON.stringify(value));
}
function storeLayerKey(paths, tar, compression) {
  return digestOf({ maker: `store-layer/${LAYER_MAKER_VERSION}`, compressor: compressorID(compression), paths, tar });
}
function customisationLayerKey(path2, compression) {
  return digestOf({ maker: "customisation-layer/1", compressor: compressorID(compression), path: path2 });
}
async function customisationDiffID(path2) {
  const checksum = (await readFile3(join6(path2, "checksum"), "utf8")).trim();
  if (!/^[0-9a-f]{64}$/.test(checksum)) throw new Error(`${path2}/checksum does not hold a sha256: "${checksum.slice(0, 80)}"`);
  return `sha256:${checksum}`;
}
function planKeys(plan, compression) {
  const tar = tarParams(plan);
  return [...plan.storeLayers.map((paths) => storeLayerKey(paths, tar, compression)), customisationLayerKey(plan.customisationLayer, compression)];
}
function planInput(plan, opts = {}) {
  const tar = tarParams(plan);
  for (const paths of plan.storeLayers) checkLayerInputs(paths, tar);
  const source = configSource(plan);
  const names = plan.storeLayers.map((_, i) => `layer ${i + 1}`);
  const custName = `layer ${plan.storeLayers.length + 1} (customisation)`;
  const keys = planKeys(plan, opts.compression);
  return {
    description: `${plan.storeLayers.length + 1} layers made from the store (dockerTools layer plan)`,
    async readLayers(visit) {
      for (const [i, paths] of plan.storeLayers.entries()) {
        await visit({ name: names[i], key: keys[i], storePaths: paths, seekable: true }, () => storeLayerTar(paths, tar));
      }
      const custTar = join6(plan.customisationLayer, "layer.tar");
      await visit(
        { name: custName, key: keys.at(-1), diffIDHint: await customisationDiffID(plan.customisationLayer), storePaths: [plan.customisationLayer], seekable: true },
        () => createReadStream(custTar, { highWaterMark: READ_CHUNK })
      );
      return {
        order: [...names, custName],
        config: (diffIDs) => imageConfigBytes(source, diffIDs),
        keys,
        storePaths: [...plan.storeLayers, [plan.customisationLayer]]
      };
    }
  };
}

// src/image/from-build.ts
function planRefusal(plan) {
  try {
    planInput(plan);
    return void 0;
  } catch (error) {
    if (error instanceof UnsupportedImageError) return error.message;
    throw error;
  }
}
async function imageToPush(built, labels, compression, opts = {}) {
  if (built.plan) return { input: labelled(planInput(built.plan, { compression }), labels), format: "layers from the store" };
  const source = await detectSource(built.outPath);
  const keys = built.archivePlan && !planRefusal(built.archivePlan) ? planKeys(built.archivePlan, compression) : void 0;
  return { input: labelled(archiveInput(source, { keys, scanStorePaths: opts.scanStorePaths }), labels), format: source.format, source };
}

// src/image/settings.ts
var PRODUCER_ANNOTATIONS = {
  derivation: "io.github.nix-image-action.derivation",
  settings: "io.github.nix-image-action.settings"
};
var WRITER_VERSIONS = {
  customisationLayer: "customisation-layer/1",
  config: "docker-config/pyjson-indent4/1",
  labels: "labels/1",
  manifest: "oci-image-manifest/layer-keys/1"
};
function settingsDigest(s = {}) {
  const shaping = {
    compressor: compressorID(s.compression),
    storeLayer: `store-layer/${LAYER_MAKER_VERSION}`,
    ...WRITER_VERSIONS,
    layersFrom: s.layersFrom ?? "auto",
    labels: s.labels ?? [],
    annotations: s.annotations ?? []
  };
  return sha256Digest(JSON.stringify(shaping));
}
function producerAnnotations(drvPath, s = {}) {
  return { [PRODUCER_ANNOTATIONS.derivation]: drvPath, [PRODUCER_ANNOTATIONS.settings]: settingsDigest(s) };
}
var SOURCE_ANNOTATION = "org.opencontainers.image.source";
function manifestAnnotations(user, env = process.env) {
  const out = /* @__PURE__ */ new Map();
  if (env.GITHUB_REPOSITORY) out.set(SOURCE_ANNOTATION, `${(env.GITHUB_SERVER_URL || "https://github.com").replace(/\/+$/, "")}/${env.GITHUB_REPOSITORY}`);
  for (const [k, v] of user) out.set(k, v);
  return [...out].filter(([, v]) => v !== "");
}

// src/registry/client.ts
import { createHash } from "node:crypto";
import { Readable as Readable2 } from "node:stream";

// src/registry/constants.ts
var DOCKER_HUB = ["docker.io", "index.docker.io", "registry-1.docker.io"];
var DOCKER_HUB_API = "registry-1.docker.io";
function isDockerHub(registry) {
  return DOCKER_HUB.includes(registry.toLowerCase());
}
var REDIRECTS = [301, 302, 303, 307, 308];
var MAX_HOPS = 5;

// src/registry/transport/abort.ts
var AbortError = class extends Error {
  name = "AbortError";
  constructor(what, reason) {
    super(`${what}: aborted`, reason === void 0 ? void 0 : { cause: reason });
  }
};
function isAbortError(error) {
  return error instanceof Error && error.name === "AbortError";
}
function throwIfAborted(signal, what) {
  if (signal?.aborted) throw new AbortError(what, signal.reason);
}
function abortable(promise, signal, what) {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => void 0);
    return Promise.reject(new AbortError(what, signal.reason));
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new AbortError(what, signal.reason));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      }
    );
  });
}
function sleep(ms, signal, what) {
  throwIfAborted(signal, what);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError(what, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// src/registry/transport/basic.ts
function basicHeader(c) {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

// src/registry/transport/origin.ts
function originOf(url) {
  return new URL(url).origin;
}
function sameOrigin(a, b) {
  return originOf(a) === originOf(b);
}
function hostnameOf(registry) {
  return new URL(`https://${registry}/`).hostname;
}
function cleartextAllowed(url, registry, insecure, plainHosts = []) {
  if (url.protocol === "https:") return true;
  if (url.protocol !== "http:") return false;
  if (plainHosts.some((h) => h === url.host || h === url.hostname)) return true;
  return insecure && url.hostname === hostnameOf(registry);
}
function cleartextRule(registry) {
  return `over plain HTTP only to the registry's own host (${hostnameOf(registry)}), with insecure: true, or to a host insecure-registries names`;
}

// src/registry/transport/bearer.ts
var DEFAULT_TOKEN_SECONDS = 60;
function realmOf(t) {
  const { challenge, registry } = t;
  const realm = challenge.params.realm;
  if (!realm) throw new AuthError(`registry ${registry} asked for a bearer token but named no realm to get it from`);
  let url;
  try {
    url = new URL(realm);
  } catch {
    throw new AuthError(`registry ${registry} named a token realm that is not a URL: ${realm}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new AuthError(`registry ${registry} named a token realm that is not HTTP(S): ${realm}`);
  refusePlain(url, t, "names the token realm");
  return url;
}
function refusePlain(hop, t, how) {
  if (cleartextAllowed(hop, t.registry, t.insecure, t.plainHosts)) return;
  if (hop.protocol !== "http:") throw new AuthError(`registry ${t.registry} ${how} ${hop.protocol}//${hop.host}${hop.pathname}, which is not HTTP(S)`);
  const where = `registry ${t.registry} ${how} ${hop.origin}${hop.pathname} over plain HTTP`;
  if (hop.hostname === hostnameOf(t.registry)) throw new AuthError(`${where}: set insecure: true to get a token there`);
  throw new AuthError(`${where}: refused, credentials go ${cleartextRule(t.registry)}`);
}
var FORM = "application/x-www-form-urlencoded";
async function fetchToken(transport, t) {
  const { challenge, credentials, registry } = t;
  let url = realmOf(t);
  let res;
  if (credentials?.identityToken) {
    const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: credentials.identityToken, client_id: CLIENT_ID });
    if (challenge.params.service) form.set("service", challenge.params.service);
    if (t.scopes.length > 0) form.set("scope", t.scopes.join(" "));
    res = await transport.request({ method: "POST", url, headers: { "content-type": FORM }, body: Buffer.from(form.toString()), signal: t.signal });
  } else {
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    for (const scope of t.scopes) url.searchParams.append("scope", scope);
    const realmUrl = url;
    const auth = credentials ? { authorization: basicHeader(credentials) } : {};
    res = await transport.request({ method: "GET", url, headers: auth, signal: t.signal });
    let left = false;
    for (let hops = 0; REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
      const location = res.headers.location;
      if (!location) break;
      url = new URL(location, url);
      refusePlain(url, t, "sent the token request on to");
      left ||= !sameOrigin(url, realmUrl);
      res = await transport.request({ method: "GET", url, headers: left ? {} : auth, signal: t.signal });
    }
  }
  const failure = () => httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"], headers: res.headers });
  if (res.status === 401 || res.status === 403) {
    const err = failure();
    if (!(err instanceof AuthError)) throw err;
    const who = credentials ? `the credentials of ${credentials.username}` : "anonymous access";
    throw new AuthError(`registry ${registry} rejected ${who}: ${err.message}`, res.status, err.code);
  }
  if (res.status !== 200) throw failure();
  let body;
  try {
    body = JSON.parse(res.body.toString("utf8"));
  } catch {
    throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered with something that is not JSON`);
  }
  const token = body.token ?? body.access_token;
  if (!token) throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered without a token`);
  const expiresIn = typeof body.expires_in === "number" && Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
  return { value: token, expiresInS: expiresIn, receivedAt: Date.now(), ...typeof body.refresh_token === "string" && body.refresh_token ? { refreshToken: body.refresh_token } : {} };
}
var CLIENT_ID = "nix-image-action";
function jwtClaims(token) {
  const part = token.split(".")[1];
  if (!part) return void 0;
  try {
    const claims = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return claims && typeof claims === "object" ? claims : void 0;
  } catch {
    return void 0;
  }
}
var ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000";
async function exchangeAadToken(transport, t) {
  const { credentials, registry } = t;
  if (!credentials?.identityToken || credentials.username !== ACR_TOKEN_USER) return void 0;
  const claims = jwtClaims(credentials.identityToken);
  if (!claims || typeof claims.tid !== "string" || claims.iss === "Azure Container Registry") return void 0;
  const url = new URL("/oauth2/exchange", realmOf(t));
  const form = new URLSearchParams({ grant_type: "access_token", access_token: credentials.identityToken, tenant: claims.tid });
  if (t.challenge.params.service) form.set("service", t.challenge.params.service);
  const res = await transport.request({ method: "POST", url, headers: { "content-type": FORM }, body: Buffer.from(form.toString()), signal: t.signal });
  const what = `the exchange of an Azure AD token for a refresh token (${url.host}${url.pathname})`;
  if (res.status !== 200) {
    const err = httpError({ registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"], headers: res.headers });
    if (err instanceof AuthError) throw new AuthError(`registry ${registry} rejected the Azure AD token of the Docker config: ${err.message}`, res.status, err.code);
    throw err;
  }
  let body;
  try {
    body = JSON.parse(res.body.toString("utf8"));
  } catch {
    throw new AuthError(`registry ${registry}: ${what} answered with something that is not JSON`);
  }
  if (typeof body.refresh_token !== "string" || body.refresh_token === "") throw new AuthError(`registry ${registry}: ${what} answered without a refresh_token`);
  return body.refresh_token;
}

// src/registry/transport/budget.ts
var RetryBudget = class {
  constructor(ms, now = Date.now) {
    this.ms = ms;
    this.now = now;
  }
  ms;
  now;
  failingSince;
  counts = { total: 0, causes: {} };
  /** A request got an answer it wanted: the registry is working, the count starts again. */
  progress() {
    this.failingSince = void 0;
  }
  /** After a retryable failure: whether waiting `waitMs` and trying again stays within the budget. */
  allows(waitMs) {
    const now = this.now();
    this.failingSince ??= now;
    return now + waitMs - this.failingSince <= this.ms;
  }
  count(cause) {
    this.counts.total++;
    this.counts.causes[cause] = (this.counts.causes[cause] ?? 0) + 1;
  }
  /** A copy of the counts so far. */
  stats() {
    return { total: this.counts.total, causes: { ...this.counts.causes } };
  }
};

// src/registry/transport/challenge.ts
function parseChallenge(header2) {
  if (!header2) return void 0;
  const m = /^\s*(\S+)\s*(.*)$/.exec(header2);
  if (!m) return void 0;
  const scheme = m[1].toLowerCase();
  const params = {};
  for (const p of m[2].matchAll(/([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  }
  return { scheme: scheme === "basic" ? "basic" : scheme === "bearer" ? "bearer" : "other", params };
}

// src/registry/transport/http.ts
import * as http from "node:http";
import * as https from "node:https";
import { rootCertificates } from "node:tls";
var MAX_BODY = 64 * 1024 * 1024;
var STALL_MS = 6e4;
var HttpTransport = class {
  constructor(opts) {
    this.opts = opts;
    this.stallMs = opts.stallMs ?? STALL_MS;
    const ca = opts.ca?.length ? [...rootCertificates, ...opts.ca] : void 0;
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, ...ca ? { ca } : {}, ...proxyOptions() });
    if (opts.insecure) this.registryAgent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false, ...proxyOptions() });
    this.registryOrigin = originOf(`https://${opts.registry}/`);
    this.registryHost = new URL(`https://${opts.registry}/`).host;
  }
  opts;
  httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16, ...proxyOptions() });
  httpsAgent;
  /** Only for the registry's https origin, when insecure. */
  registryAgent;
  registryOrigin;
  /** host[:port] as URL#host spells it, for messages. */
  registryHost;
  stallMs;
  warnedCleartext = false;
  agent(url) {
    if (url.protocol !== "https:") return this.httpAgent;
    return this.registryAgent && url.origin === this.registryOrigin ? this.registryAgent : this.httpsAgent;
  }
  request(req) {
    const secure = req.url.protocol === "https:";
    const headers = { "user-agent": "nix-image-action", ...req.headers };
    if (Buffer.isBuffer(req.body)) headers["content-length"] = String(req.body.length);
    const what = `${req.method} ${req.url.host}${req.url.pathname}`;
    const { signal } = req;
    if (signal?.aborted) return Promise.reject(new AbortError(what, signal.reason));
    if (!cleartextAllowed(req.url, this.opts.registry, this.opts.insecure, this.opts.plainHosts)) {
      const over = req.url.protocol === "http:" ? "plain HTTP" : `${req.url.protocol} (not HTTP(S))`;
      return Promise.reject(new CleartextError(`refused to send ${what} over ${over}: requests go ${cleartextRule(this.opts.registry)}`));
    }
    return new Promise((resolve, reject) => {
      let body;
      let response;
      let settled = false;
      const finish = (fn) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => {
        const error = new AbortError(what, signal?.reason);
        finish(() => reject(error));
        response?.destroy(error);
        r.destroy(error);
        body?.destroy();
      };
      const options = {
        method: req.method,
        headers,
        agent: this.agent(req.url),
        timeout: this.stallMs
      };
      const r = (secure ? https : http).request(req.url, options, (res) => {
        response = res;
        const chunks = [];
        let size = 0;
        res.on("data", (c) => {
          size += c.length;
          if (size > MAX_BODY) {
            res.destroy(new RegistryError(`${req.method} ${req.url.pathname}: response body over ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on(
          "end",
          () => finish(() => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", headers: res.headers, body: Buffer.concat(chunks) }))
        );
        res.on("error", (e) => finish(() => reject(e instanceof RegistryError ? e : new NetworkError(`${req.url.host}: ${e.message}`))));
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      r.on("timeout", () => {
        const error = new StallError(`no bytes moved for ${this.stallMs / 1e3} s (${req.url.host})`);
        response?.destroy(error);
        r.destroy(error);
      });
      r.on("error", (e) => finish(() => reject(this.classify(req.url, e))));
      if (!secure && headers.authorization && /^http:\/\//.test(r.path) && !this.warnedCleartext) {
        this.warnedCleartext = true;
        this.opts.warn?.(
          `${req.url.host} is plain HTTP and reached through the runner's proxy (HTTP_PROXY): its credentials cross the proxy unencrypted; add the host to NO_PROXY, or serve it over HTTPS`
        );
      }
      r.on("close", () => body?.destroy());
      if (req.body === void 0) r.end();
      else if (Buffer.isBuffer(req.body)) r.end(req.body);
      else {
        body = req.body();
        body.on("error", (e) => r.destroy(e));
        body.pipe(r);
      }
    });
  }
  close() {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.registryAgent?.destroy();
  }
  classify(url, e) {
    if (e instanceof RegistryError || e instanceof AbortError) return e;
    const code = e.code ?? "";
    const registryHost = url.host === this.registryHost;
    if (TLS_CODES.test(code)) {
      if (!registryHost) {
        return new TlsError(
          `cannot verify the TLS certificate of ${url.host} (${code}), where registry ${this.opts.registry} sent us: insecure: true applies to the registry's own host only`
        );
      }
      return new TlsError(`cannot verify the TLS certificate of ${url.host} (${code}): set insecure: true for a registry with a self-signed certificate`);
    }
    if (code === "EPROTO" || /wrong version number|packet length too long/i.test(e.message)) {
      if (!registryHost) return new TlsError(`${url.host}, where registry ${this.opts.registry} sent us, does not speak HTTPS (${e.message.split("\n")[0]})`);
      return new TlsError(`${url.host} does not speak HTTPS (${e.message.split("\n")[0]}): set insecure: true for a plain-HTTP registry`);
    }
    const refused = tunnelRefusal(url.host, e);
    if (refused) return new TunnelError(refused);
    const reaching = CONNECT_CODES.has(code);
    return new NetworkError(`${reaching ? "cannot reach" : "lost the connection to"} ${registryHost ? "registry " : ""}${url.host}: ${e.message}`);
  }
};
var TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/;
var CONNECT_CODES = /* @__PURE__ */ new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);
var TunnelError = class extends RegistryError {
  name = "TunnelError";
};
var TlsError = class extends RegistryError {
  name = "TlsError";
};
var CleartextError = class extends RegistryError {
  name = "CleartextError";
};

// src/registry/transport/retry.ts
var defaultRetry = { attempts: 8, baseMs: 500, maxMs: 3e4, budgetMs: 12e4 };
function isRetryable(error) {
  if (error instanceof QuotaSpentError) return false;
  if (error instanceof RateLimitError) return true;
  if (error instanceof AuthError) return false;
  if (error instanceof NetworkError) return true;
  if (error instanceof RegistryError) return error.status !== void 0 && isRetryableStatus(error.status);
  return false;
}
function retryCause(error) {
  if (error instanceof StallError) return "stall";
  if (error instanceof NetworkError) return "connection";
  if (error instanceof RegistryError && error.status !== void 0) return String(error.status);
  return "other";
}
function backoff(attempt, policy, retryAfterMs, random = Math.random) {
  if (retryAfterMs !== void 0) return Math.min(retryAfterMs, policy.maxMs);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
function tries(n) {
  return `${n} ${n === 1 ? "try" : "tries"}`;
}
async function withRetry(what, fn, policy, logger2, signal, opts = {}) {
  const retryable = opts.retryable ?? isRetryable;
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal, what);
    try {
      const result = await fn(attempt);
      opts.budget?.progress();
      return result;
    } catch (error) {
      if (signal?.aborted) throw isAbortError(error) ? error : new AbortError(what, signal.reason);
      if (!retryable(error) || !(error instanceof Error)) throw error;
      if (attempt >= policy.attempts) {
        if (attempt > 1) error.message += ` (after ${tries(attempt)})`;
        throw error;
      }
      const wait = backoff(attempt, policy, error instanceof RegistryError ? error.retryAfterMs : void 0);
      if (opts.budget && !opts.budget.allows(wait)) {
        error.message += ` (after ${tries(attempt)}; retrying would pass the retry budget of ${formatSeconds(opts.budget.ms)})`;
        throw error;
      }
      opts.budget?.count(retryCause(error));
      logger2?.info(`${what}: ${error.message}; retrying in ${(wait / 1e3).toFixed(1)} s (try ${attempt + 1} of ${policy.attempts})`);
      await sleep(wait, signal, what);
    }
  }
}
function formatSeconds(ms) {
  const s = ms / 1e3;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

// src/registry/transport/scheme.ts
async function pickScheme(host, insecure, probe) {
  const https2 = new URL(`https://${host}/`);
  try {
    return { base: https2, response: await probe(https2) };
  } catch (error) {
    if (!insecure || !(error instanceof TlsError || error instanceof TunnelError)) throw error;
  }
  const http2 = new URL(`http://${host}/`);
  return { base: http2, response: await probe(http2) };
}

// src/registry/transport/token.ts
function refreshAt(token) {
  const life = token.expiresInS * 1e3;
  return token.receivedAt + life - Math.min(3e4, life / 3);
}
var TokenHolder = class {
  constructor(fetch, onToken = () => {
  }, now = Date.now) {
    this.fetch = fetch;
    this.onToken = onToken;
    this.now = now;
  }
  fetch;
  onToken;
  now;
  token;
  pending;
  /** Tokens fetched so far. */
  fetched = 0;
  /** The token to send now: the one held, or a fresh one when it is due. */
  async get(signal) {
    const held = this.token;
    if (held && this.now() < refreshAt(held)) return held.value;
    return (await this.refresh(signal)).value;
  }
  /** Fetches a token (joining a fetch already under way). */
  refresh(signal) {
    this.pending ??= this.fetch().then(
      (token) => {
        this.pending = void 0;
        this.token = token;
        this.fetched++;
        this.onToken(token);
        return token;
      },
      (error) => {
        this.pending = void 0;
        throw error;
      }
    );
    return abortable(this.pending, signal, "fetching a registry token");
  }
  /** Forget the token held (refused by the registry, or its scopes changed): the next request fetches one. */
  invalidate(value) {
    if (value === void 0 || this.token?.value === value) this.token = void 0;
  }
};

// src/registry/client.ts
var MAX_SESSIONS = 3;
var BLOB_CATCH_UP_TRIES = 3;
var MOUNT_REFUSED = [401, 403, 404];
var GHCR_CHUNK_LIMIT = 4 * 1024 * 1024;
var BLOB_PIECE = 8 * 1024 * 1024;
var MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json"
].join(", ");
var RegistryClient = class {
  constructor(opts) {
    this.opts = opts;
    this.credentials = opts.credentials;
    this.transport = new HttpTransport({ registry: opts.registry, insecure: opts.insecure ?? false, plainHosts: opts.plainHosts, ca: opts.ca, stallMs: opts.stallMs, warn: (m) => opts.logger.warning(m) });
    this.retry = { ...defaultRetry, ...opts.retry };
    this.budget = new RetryBudget(this.retry.budgetMs);
    for (const r of opts.pullFrom ?? []) if (r !== opts.repository) this.pullFrom.add(r);
  }
  opts;
  transport;
  retry;
  budget;
  ready;
  base;
  auth = { kind: "none" };
  pullFrom = /* @__PURE__ */ new Set();
  /** Scopes a registry's challenge asked for that we had not (as go-containerregistry adds them). */
  extraScopes = /* @__PURE__ */ new Set();
  sessions = 0;
  /** Source repositories the registry refused a mount from (401, 403): not asked again. */
  mountRefused = /* @__PURE__ */ new Map();
  /** from@digest → the status of a refused mount. */
  mountRefusals = /* @__PURE__ */ new Map();
  /** The credentials in use: those given, with an identity token exchanged or renewed, or a helper's
   *  fresh answer. */
  credentials;
  /** The credentials have worked (the basic check at ping, or a token). */
  worked = false;
  /** The helper was asked again since the credentials last worked: not again until they do. */
  reasked = false;
  /** An Azure AD identity token has been exchanged (or found not to need it). */
  exchanged = false;
  get registry() {
    return this.opts.registry;
  }
  get repository() {
    return this.opts.repository;
  }
  /** Retries so far, by cause; tokens fetched; upload sessions reopened (the push's report). */
  get stats() {
    const tokens = this.auth.kind === "bearer" ? this.auth.tokens.fetched : 0;
    const { total, causes } = this.budget.stats();
    return { retries: total, causes, tokens, sessions: this.sessions };
  }
  /** Lets this client read (and mount blobs) from other repositories of the registry: a bearer token held
   *  without pull on them is dropped, and the next request fetches one with it. */
  allowPull(repositories) {
    let added = false;
    for (const r of repositories) {
      if (r === this.opts.repository || this.pullFrom.has(r)) continue;
      this.pullFrom.add(r);
      added = true;
    }
    if (added && this.auth.kind === "bearer") this.auth.tokens.invalidate();
  }
  scopes() {
    const own = `repository:${this.opts.repository}:pull,push`;
    return [.../* @__PURE__ */ new Set([own, ...[...this.pullFrom].map((r) => `repository:${r}:pull`), ...this.extraScopes])];
  }
  /**
   * Reaches the registry, picks the scheme and the auth method, and checks the credentials,
   * so that a typo fails before a long build. Every other method calls it first.
   */
  ping() {
    this.ready ??= this.doPing();
    return this.ready;
  }
  async doPing() {
    const { registry, insecure } = this.opts;
    const credentials = this.credentials;
    let unreachable = 0;
    const firstContact = (error) => error instanceof NetworkError && !(error instanceof StallError) ? ++unreachable < 3 : isRetryable(error);
    const { base, response } = await withRetry(
      `reaching ${registry}`,
      () => pickScheme(registry, insecure ?? false, async (b) => {
        const res = await this.transport.request({ method: "GET", url: new URL("/v2/", b) });
        if (isRetryableStatus(res.status)) {
          throw httpError({ registry, what: "GET /v2/", status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"], headers: res.headers });
        }
        return res;
      }),
      this.retry,
      this.opts.logger,
      void 0,
      { budget: this.budget, retryable: firstContact }
    );
    this.base = base;
    if (response.status === 200) return;
    if (response.status !== 401) {
      throw httpError({ registry, what: "GET /v2/ (is this a container registry?)", status: response.status, statusText: response.statusText, body: response.body });
    }
    const challenge = parseChallenge(header(response, "www-authenticate"));
    if (challenge?.scheme === "bearer") {
      const auth = {
        kind: "bearer",
        challenge,
        tokens: new TokenHolder(
          () => this.fetchToken(auth.challenge),
          (token) => this.opts.onSecret?.(token.value)
        )
      };
      this.auth = auth;
      await withRetry(`a token for ${registry}`, () => auth.tokens.refresh(), this.retry, this.opts.logger, void 0, { budget: this.budget });
      return;
    }
    if (challenge?.scheme === "basic") {
      if (!credentials) throw new AuthError(`registry ${registry} requires a user name and password: ${this.opts.credentialsHint ?? "set the username and password inputs"}`, 401);
      if (credentials.identityToken) throw new AuthError(`registry ${registry} asks for a user name and password (basic auth), but its credentials are an identity token, which only a token server takes`, 401);
      this.auth = { kind: "basic", header: basicHeader(credentials) };
      const check = await this.transport.request({ method: "GET", url: new URL("/v2/", base), headers: { authorization: this.auth.header } });
      if (check.status === 401 || check.status === 403) {
        throw new AuthError(`registry ${registry} rejected the credentials of ${credentials.username} (${check.status})`, check.status);
      }
      this.worked = true;
      return;
    }
    throw new AuthError(`registry ${registry} asks for an authentication scheme we do not speak: ${header(response, "www-authenticate") ?? "none given"}`, 401);
  }
  /** A token for our scopes, with the credentials in use. Credentials that worked before and are now
   *  rejected (401) come from the credential helper again, once; an identity token the token server
   *  renews is used from then on. */
  async fetchToken(challenge) {
    let token;
    try {
      token = await this.scopedToken(challenge);
    } catch (error) {
      if (!(error instanceof AuthError && error.status === 401 && this.worked && this.askAgain())) throw error;
      token = await this.scopedToken(challenge);
    }
    this.worked = true;
    this.reasked = false;
    if (token.refreshToken && this.credentials?.identityToken && token.refreshToken !== this.credentials.identityToken) {
      this.opts.onSecret?.(token.refreshToken);
      this.credentials = { ...this.credentials, identityToken: token.refreshToken };
    }
    return token;
  }
  /** The credentials from the credential helper again (masked), after the registry rejected those that
   *  had worked: false when there is no helper to ask, it was asked already, or it has none now. */
  askAgain() {
    const again = this.opts.reloadCredentials;
    if (!again || this.reasked) return false;
    this.reasked = true;
    const fresh = again();
    if (!fresh) return false;
    for (const secret of [fresh.password, fresh.identityToken]) if (secret) this.opts.onSecret?.(secret);
    this.credentials = fresh;
    this.exchanged = false;
    if (this.auth.kind === "basic") this.auth.header = basicHeader(fresh);
    this.opts.logger.info(`registry ${this.opts.registry} rejected the credentials that had worked (401): asked their credential helper again`);
    return true;
  }
  /** A token for our scopes. A token server that refuses the pull scopes on other repositories (rather
   *  than granting less, as the spec has it) is asked again for this repository alone: reuse from there
   *  then finds nothing, and the push goes on. An Azure AD identity token is exchanged first (ACR). */
  async scopedToken(challenge) {
    const { registry, insecure } = this.opts;
    if (!this.exchanged) {
      const refresh = await exchangeAadToken(this.transport, { challenge, credentials: this.credentials, registry, insecure: insecure ?? false, plainHosts: this.opts.plainHosts });
      this.exchanged = true;
      if (refresh) {
        this.opts.onSecret?.(refresh);
        this.credentials = { ...this.credentials, identityToken: refresh };
        this.opts.logger.info(`registry ${registry}: exchanged the Azure AD token of the Docker config for a registry refresh token`);
      }
    }
    const credentials = this.credentials;
    const scopes = this.scopes();
    const request = (s) => fetchToken(this.transport, { challenge, scopes: s, credentials, registry, insecure: insecure ?? false, plainHosts: this.opts.plainHosts });
    try {
      return await request(scopes);
    } catch (error) {
      if (!(error instanceof AuthError) || scopes.length === 1) throw error;
      this.opts.logger.info(`registry ${registry} refused a token for ${scopes.slice(1).join(" ")} (${error.message}): asking for ${scopes[0]} alone`);
      this.pullFrom.clear();
      this.extraScopes.clear();
      return request(this.scopes());
    }
  }
  url(path2, repository = this.opts.repository) {
    return new URL(`/v2/${repository}/${path2}`, this.base);
  }
  toRegistry(url) {
    return this.base !== void 0 && sameOrigin(url, this.base);
  }
  /** The registry's Authorization, for a request to `url`: nothing unless it goes to the registry's origin.
   *  A bearer token due for renewal is fetched again first. */
  async authHeaders(url, signal) {
    if (!this.toRegistry(url)) return {};
    if (this.auth.kind === "basic") return { authorization: this.auth.header };
    if (this.auth.kind === "bearer") return { authorization: `Bearer ${await this.auth.tokens.get(signal)}` };
    return {};
  }
  /**
   * One request, with the registry's credentials if it goes to the registry's origin; a 401 from the
   * registry under a bearer token (revoked, or short of a scope its challenge names) fetches a fresh token
   * once; under basic auth that had worked, asks the credential helper again once. Follows redirects for
   * reads, each hop judged against the registry's origin (not the previous hop): blob storage gets no
   * credentials, and once a hop has left the registry's origin no later hop of the chain gets them, one
   * back at the registry included (the other origin chose where it sends us). A hop to plain HTTP that
   * insecure does not cover is refused (sentTo).
   */
  async send(req) {
    await abortable(this.ping(), req.signal, `${req.method} ${req.url.pathname}`);
    const withAuth = async (r) => ({ ...r, headers: { ...r.headers, ...await this.authHeaders(r.url, r.signal) } });
    const first = await withAuth(req);
    let res = await this.transport.request(first);
    if (res.status === 401 && this.auth.kind === "bearer" && this.toRegistry(req.url)) {
      const fresh = parseChallenge(header(res, "www-authenticate"));
      if (fresh?.scheme === "bearer") {
        this.auth.challenge = fresh;
        for (const scope of (fresh.params.scope ?? "").split(" ").filter(Boolean)) {
          if (!this.scopes().includes(scope)) this.extraScopes.add(scope);
        }
      }
      this.auth.tokens.invalidate(first.headers?.authorization?.slice("Bearer ".length));
      res = await this.transport.request(await withAuth(req));
    } else if (res.status === 401 && this.auth.kind === "basic" && this.toRegistry(req.url) && this.worked && this.askAgain()) {
      res = await this.transport.request(await withAuth(req));
      if (res.status !== 401) this.reasked = false;
    }
    let left = !this.toRegistry(req.url);
    for (let hops = 0; (req.method === "GET" || req.method === "HEAD") && REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
      const location = header(res, "location");
      if (!location) break;
      req = { ...req, url: this.sentTo(location, req.url, `redirected ${req.method} ${req.url.pathname} to`) };
      left ||= !this.toRegistry(req.url);
      res = await this.transport.request(left ? req : await withAuth(req));
    }
    return res;
  }
  /**
   * A Location the registry sent (a redirect, an upload session), resolved against `from`. Refused in one
   * line when it is plain HTTP that insecure does not cover (another host, or a registry not insecure) or
   * not HTTP at all: layers and secrets never cross in cleartext where the user did not allow it.
   * `how` reads "registry <host> <how> <where>", e.g. "sent the upload of sha256:… to".
   */
  sentTo(location, from, how) {
    const url = new URL(location, from);
    const { registry } = this.opts;
    if (cleartextAllowed(url, registry, this.opts.insecure ?? false, this.opts.plainHosts)) return url;
    if (url.protocol !== "http:") throw new CleartextError(`registry ${registry} ${how} ${url.protocol}//${url.host}${url.pathname}, which is not HTTP(S): refused`);
    throw new CleartextError(`registry ${registry} ${how} plain-HTTP ${url.origin}: refused, bytes and credentials go ${cleartextRule(registry)}`);
  }
  /** Cancels an upload session we will not use: best effort, once (a registry purges abandoned sessions anyway). */
  async cancelUpload(location, signal) {
    try {
      await this.send({ method: "DELETE", url: this.sentTo(location, this.base, "sent an upload session to cancel to"), signal });
    } catch {
    }
  }
  fail(what, res) {
    return httpError({ registry: this.opts.registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"], headers: res.headers });
  }
  /** A 403 without a body to a HEAD in this repository, which the credentials were checked to push to: a
   *  HEAD's answer cannot say it is a rate limit (ghcr.io's secondary one), and a refusal is unlikely
   *  there, so it is retried as a rate limit (a real refusal still fails, after the retries). */
  rateLimitedHead(what, r, res) {
    if (r.method !== "HEAD" || res.status !== 403 || res.body.length > 0 || !isInRepository(r.url.pathname, this.opts.repository)) return void 0;
    const error = this.fail(what, res);
    if (error instanceof RateLimitError) return error;
    return new RateLimitError(
      `registry ${this.opts.registry} answered 403${res.statusText ? ` ${res.statusText}` : ""} to ${what} (no body to say why: taken for a rate limit and retried)`,
      403,
      void 0,
      error.retryAfterMs
    );
  }
  /** One request with its retries; `ok` lists the statuses that are answers rather than failures. */
  async call(what, req, ok2, signal, retryable) {
    await abortable(this.ping(), signal, what);
    return withRetry(
      what,
      async () => {
        const res = await this.send({ ...req(), signal }).catch((error) => {
          if (error instanceof NetworkError) throw new error.constructor(`${what}: ${error.message}`);
          throw error;
        });
        const r = req();
        if (!ok2.includes(res.status)) throw this.rateLimitedHead(what, r, res) ?? this.fail(what, res);
        if (res.status === 403) {
          const error = this.fail(what, res);
          if (error instanceof RateLimitError) throw error;
        }
        return res;
      },
      this.retry,
      this.opts.logger,
      signal,
      { budget: this.budget, ...retryable ? { retryable } : {} }
    );
  }
  async hasBlob(digest, opts = {}) {
    const res = await this.call(`HEAD blob ${digest}${this.from(opts)}`, () => ({ method: "HEAD", url: this.url(`blobs/${digest}`, opts.repository) }), [200, 404], opts.signal);
    return res.status === 200;
  }
  async getBlob(digest, opts = {}) {
    const res = await this.call(`GET blob ${digest}${this.from(opts)}`, () => ({ method: "GET", url: this.url(`blobs/${digest}`, opts.repository) }), [200], opts.signal);
    const got = sha256Digest(res.body);
    if (got !== digest) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} with content hashing to ${got}`);
    return res.body;
  }
  /**
   * A blob's bytes, in order, read with ranged GETs (each piece retried on its own); a registry that
   * ignores Range sends it whole, and that is taken as it comes. After the last piece the content must
   * hash to `digest` and be `size` bytes long, or the iteration throws.
   */
  async *blobPieces(digest, size, opts = {}) {
    const hash = createHash("sha256");
    let at = 0;
    while (at < size) {
      const end = Math.min(size, at + BLOB_PIECE) - 1;
      const res = await this.call(
        `GET blob ${digest}${this.from(opts)} (bytes ${at}-${end})`,
        () => ({ method: "GET", url: this.url(`blobs/${digest}`, opts.repository), headers: { range: `bytes=${at}-${end}` } }),
        [200, 206],
        opts.signal
      );
      const piece = res.status === 206 ? res.body : res.body.subarray(at);
      if (piece.length === 0 || res.status === 206 && piece.length !== end - at + 1) {
        throw new RegistryError(`registry ${this.opts.registry} sent ${piece.length} bytes of blob ${digest} for bytes ${at}-${end}`);
      }
      hash.update(piece);
      at += piece.length;
      yield piece;
    }
    const got = `sha256:${hash.digest("hex")}`;
    if (got !== digest || at !== size) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} (${size} bytes) as ${at} bytes hashing to ${got}`);
  }
  async getManifest(ref, opts = {}) {
    const res = await this.call(
      `GET manifest ${ref}${this.from(opts)}`,
      () => ({ method: "GET", url: this.url(`manifests/${ref}`, opts.repository), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404],
      opts.signal
    );
    if (res.status === 404) return void 0;
    const digest = sha256Digest(res.body);
    const asked = /^(sha256|sha512):[0-9a-f]+$/.exec(ref);
    const got = asked?.[1] === "sha512" ? `sha512:${createHash("sha512").update(res.body).digest("hex")}` : digest;
    if (asked && got !== ref) throw new RegistryError(`registry ${this.opts.registry} answered GET manifest ${ref}${this.from(opts)} with other bytes (${got})`);
    return { mediaType: header(res, "content-type") ?? "", digest, bytes: res.body };
  }
  /**
   * HEAD of a manifest: whether `ref` exists and the digest the registry gives for it
   * (Docker-Content-Digest; undefined when it gives none). Never counted as a pull by Docker Hub.
   */
  async headManifest(ref, opts = {}) {
    const res = await this.call(
      `HEAD manifest ${ref}${this.from(opts)}`,
      () => ({ method: "HEAD", url: this.url(`manifests/${ref}`, opts.repository), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404],
      opts.signal
    );
    if (res.status === 404) return { exists: false };
    const digest = header(res, "docker-content-digest");
    return { exists: true, ...digest && /^sha256:[0-9a-f]{64}$/.test(digest) ? { digest } : {} };
  }
  /** Whether the repository holds the manifest `ref` (a HEAD: nothing downloaded). */
  async hasManifest(ref, opts = {}) {
    return (await this.headManifest(ref, opts)).exists;
  }
  /**
   * Puts `manifest` under `tag`. The tag is read first (one HEAD, unless the caller knows what it holds:
   * `held`, null for absent): a tag that already names this digest is left as it is, nothing PUT, so a
   * registry with immutable tags (ECR, Harbor) takes a push that changes nothing. A PUT refused for
   * immutability fails in one line naming the setting and the tag. Returns the digest the tag names now,
   * as the registry filed it.
   */
  /**
   * The digest a tag names, for putTag to skip a PUT that would change nothing. Only a help: a 401/403 (a
   * push-only policy without manifest reads, e.g. ECR's minimal one) or any other failure means "unknown",
   * and the PUT is sent, as it would be without this HEAD.
   */
  async tagDigest(tag, signal) {
    try {
      const res = await this.call(
        `HEAD manifest ${tag}`,
        () => ({ method: "HEAD", url: this.url(`manifests/${tag}`), headers: { accept: MANIFEST_ACCEPT } }),
        [200, 404, 401, 403],
        signal
      );
      if (res.status === 404) return null;
      if (res.status !== 200) return void 0;
      const digest = header(res, "docker-content-digest");
      return digest && /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : void 0;
    } catch (error) {
      if (signal?.aborted) throw error;
      return void 0;
    }
  }
  async putTag(tag, manifest, opts = {}) {
    const held = opts.held !== void 0 ? opts.held : await this.tagDigest(tag, opts.signal);
    if (held === manifest.digest) return held;
    try {
      return await this.putManifest(tag, manifest.bytes, manifest.mediaType, opts);
    } catch (error) {
      if (error instanceof RegistryError && isImmutableTag(error)) {
        const now = await this.tagDigest(tag, opts.signal).catch(() => void 0);
        if (now === manifest.digest) return now;
        throw new RegistryError(
          `registry ${this.opts.registry} will not move tag ${tag} of ${this.opts.repository} to ${manifest.digest}: the repository has tag immutability on${held ? `, and ${tag} holds ${held}` : ""} (push under a tag not used yet, or turn tag immutability off; ${error.status}${error.code ? ` ${error.code}` : ""})`,
          error.status,
          error.code
        );
      }
      throw error;
    }
  }
  /**
   * The OCI 1.1 referrers API: the index of the manifests whose subject is `digest`. Undefined when the
   * registry does not serve the API (404, 400, 405; Distribution 2.8 answers 404), so the caller falls
   * back to the sha256-<digest> tag.
   */
  async getReferrers(digest, opts = {}) {
    const res = await this.call(
      `GET referrers ${digest}${this.from(opts)}`,
      () => ({ method: "GET", url: this.url(`referrers/${digest}`, opts.repository), headers: { accept: MediaTypes.ociIndex } }),
      [200, 400, 404, 405],
      opts.signal
    );
    if (res.status !== 200) return void 0;
    const mediaType = header(res, "content-type") ?? "";
    if (!mediaType.startsWith(MediaTypes.ociIndex)) return void 0;
    return { mediaType, bytes: res.body };
  }
  /** " of <repository>" for a read from another repository, for messages. */
  from(opts) {
    return opts.repository && opts.repository !== this.opts.repository ? ` of ${opts.repository}` : "";
  }
  /**
   * PUTs a manifest under a tag; returns the digest the registry filed it under. Every blob it names was
   * confirmed before: a registry that still answers MANIFEST_BLOB_UNKNOWN has not caught up with a blob
   * just committed (an eventually consistent store, or another writer committing the same blob at that
   * moment), so the PUT is sent again a little later, a few times at most.
   */
  async putManifest(ref, bytes, mediaType, opts = {}) {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.call(
          `PUT manifest ${ref}`,
          () => ({ method: "PUT", url: this.url(`manifests/${ref}`), headers: { "content-type": mediaType }, body: bytes }),
          [200, 201],
          opts.signal
        );
        return header(res, "docker-content-digest") ?? sha256Digest(bytes);
      } catch (error) {
        if (!(error instanceof RegistryError && error.status === 400 && /BLOB_UNKNOWN/.test(error.message)) || attempt >= BLOB_CATCH_UP_TRIES) throw error;
        this.opts.logger.info(`registry ${this.opts.registry} does not see a blob of manifest ${ref} yet: sending it again`);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
  /**
   * Cross-repository mount: asks the registry to link a blob of `from` (same registry) into this
   * repository, nothing uploaded. True when mounted (201); false when the registry opened an upload
   * session instead (202: it does not mount, or cannot see the blob there), which is cancelled, or
   * refused the mount (401, 403, 404: Harbor and others when the credentials may not read `from`, or
   * the blob is not visible there): the caller uploads the blob the usual way. A refusal of the source
   * repository (401, 403) is said in one info line, and no further mount from there is asked for.
   */
  async mountBlob(digest, from, opts = {}) {
    const refused = this.mountRefused.get(from);
    if (refused !== void 0) {
      this.mountRefusals.set(`${from}@${digest}`, refused);
      return false;
    }
    const res = await this.call(
      `POST blob mount of ${digest} from ${from}`,
      () => {
        const url = this.url("blobs/uploads/");
        url.searchParams.set("mount", digest);
        url.searchParams.set("from", from);
        return { method: "POST", url, headers: { "content-length": "0" } };
      },
      [201, 202, ...MOUNT_REFUSED],
      opts.signal
    );
    if (res.status === 201) return true;
    if (MOUNT_REFUSED.includes(res.status)) {
      this.mountRefusals.set(`${from}@${digest}`, res.status);
      if (res.status !== 404) {
        this.mountRefused.set(from, res.status);
        const { text } = describeBody(res.body);
        this.opts.logger.info(`registry ${this.opts.registry} refused to mount blobs from ${from} into ${this.opts.repository} (${res.status}${text ? `: ${text}` : ""}): they are uploaded instead`);
      }
      return false;
    }
    const location = header(res, "location");
    if (location) await this.cancelUpload(location, opts.signal);
    return false;
  }
  /**
   * Whether the repository takes pushes, before anything is built: opens an upload session and cancels
   * it (one POST, one DELETE). A registry that creates no repository on push (ECR), a missing project or
   * namespace (Harbor answers 401), or a name the registry refuses (too many path components) fails
   * here, in one line saying what to do.
   */
  async checkPush(opts = {}) {
    const { registry, repository } = this.opts;
    const res = await this.call(
      `POST blob upload (checking that ${repository} takes pushes)`,
      () => ({ method: "POST", url: this.url("blobs/uploads/"), headers: { "content-length": "0" } }),
      [201, 202, 400, 401, 403, 404],
      opts.signal
    );
    if (res.status === 201 || res.status === 202) {
      const location = header(res, "location");
      if (location) await this.cancelUpload(location, opts.signal);
      return;
    }
    const { code, text } = describeBody(res.body);
    const said = `${res.status}${text ? `: ${text}` : ""}`;
    if (res.status === 404) {
      throw new RegistryError(
        isEcr(registry) || /does not exist in the registry with id/.test(text) ? `registry ${registry} has no repository ${repository} (ECR creates none on push: create it first, e.g. aws ecr create-repository --repository-name ${repository}; ${said})` : `registry ${registry} has no repository ${repository} (${said}): this registry creates none on push, so create it first, or check the image and tags inputs`,
        res.status,
        code
      );
    }
    if (res.status === 400) {
      throw new RegistryError(
        `registry ${registry} refuses the repository name ${repository} (${said}): check the image and tags inputs; some registries take only so many path components (Docker Hub: namespace/name)`,
        res.status,
        code
      );
    }
    if (registry === "ghcr.io") throw httpError({ registry, what: `a push to ${repository}`, status: res.status, statusText: res.statusText, body: res.body });
    const why = this.credentials ? `the credentials were accepted, so its project or namespace may not exist (Harbor: create the project first), or they may not push there` : `no credentials were found for it (${this.opts.credentialsHint ?? "set the username and password inputs"}), and its project or namespace must exist`;
    throw new AuthError(`registry ${registry} refuses pushes to ${repository} (${said}): ${why}`, res.status, code);
  }
  /** The status a mount of `digest` from `from` was refused with (401, 403, 404), if it was. */
  mountRefusal(digest, from) {
    return this.mountRefusals.get(`${from}@${digest}`);
  }
  async uploadBlobBytes(bytes, opts = {}) {
    const digest = sha256Digest(bytes);
    await this.uploadBlob({ digest, size: bytes.length }, () => Readable2.from([bytes]), opts);
    return digest;
  }
  /**
   * Uploads a blob the way docker, skopeo and go-containerregistry do, the shape every registry takes:
   * POST opens a session, one PATCH streams the whole body, PUT with ?digest= closes it. No Content-Range
   * (to ghcr.io a ranged request is a chunk, refused over 4 MiB, as is a body in the PUT), unless the
   * registry asks for chunks (OCI-Chunk-Min-Length on the POST's answer): then the body goes in ranged
   * PATCHes of the largest size the registry takes in one chunk (chunkLimit; ghcr.io's 4 MiB), never
   * under its minimum (the last excepted), or as one ranged chunk when no limit is known. The session's
   * Location may be on another host (blob storage): the PATCH and PUT then carry no registry credentials;
   * on plain HTTP only as insecure allows it (sentTo), or the upload fails before a byte is sent.
   *
   * Each request retries on its own: the POST; the PATCH on the same session, with the body opened
   * afresh (a chunk: the same bytes), when the registry answered 408, 429 or 5xx; the PUT. A new session
   * is opened only when the one we had is gone: the registry answers 404 / BLOB_UPLOAD_UNKNOWN (or says
   * the session no longer matches what we sent: BLOB_UPLOAD_INVALID, DIGEST_INVALID, 416), or the
   * connection dropped or stalled mid-PATCH, leaving the session in a state we cannot know. Before a new
   * session, HEAD: the blob may have landed anyway (the PUT went through and only its answer was lost),
   * and then nothing is sent again.
   */
  async uploadBlob(blob, open3, opts = {}) {
    const { signal } = opts;
    for (let session = 1; ; session++) {
      const opened = await this.openUpload(blob.digest, signal);
      if (!opened) return;
      const lost = await this.sendThrough(opened, blob, open3, signal);
      if (!lost) return;
      this.budget.count(retryCause(lost));
      if (await this.hasBlob(blob.digest, { signal })) {
        this.opts.logger.info(`${lost.message}; the registry has blob ${blob.digest} all the same: not sent again`);
        return;
      }
      if (session >= MAX_SESSIONS) {
        lost.message += ` (after ${session} upload sessions)`;
        throw lost;
      }
      this.sessions++;
      this.opts.logger.info(`${lost.message}; the upload session is lost: opening a new one (${session + 1} of ${MAX_SESSIONS})`);
    }
  }
  /** POST: a new upload session (with the registry's minimum chunk size, when it asks for chunks), or
   *  undefined when the registry says the blob is already complete. */
  async openUpload(digest, signal) {
    const start = await this.call(`POST blob upload for ${digest}`, () => ({ method: "POST", url: this.url("blobs/uploads/"), headers: { "content-length": "0" } }), [201, 202], signal);
    if (start.status === 201) return void 0;
    const min = header(start, "oci-chunk-min-length");
    if (min === void 0) return { url: this.location(start, digest) };
    const n = /^\s*\d+\s*$/.test(min) ? Number(min) : 0;
    return { url: this.location(start, digest), minChunk: n > 0 ? n : 1 };
  }
  /** Bytes per ranged PATCH for a session that asks for chunks: the largest the registry takes in one, but
   *  never under its minimum; undefined (one chunk, streamed) when no limit is known. */
  chunkSize(session) {
    const limit = this.opts.chunkLimit ?? (this.opts.registry === "ghcr.io" ? GHCR_CHUNK_LIMIT : void 0);
    return limit === void 0 ? void 0 : Math.max(limit, session.minChunk ?? 1);
  }
  /** PATCH(es) then PUT on one session: undefined when the blob is in, the error when the session is lost. */
  async sendThrough(session, blob, open3, signal) {
    const chunk = session.minChunk !== void 0 ? this.chunkSize(session) : void 0;
    let next;
    try {
      if (chunk !== void 0 && chunk < blob.size) next = await this.sendChunks(session.url, blob, open3, chunk, signal);
      else {
        const headers = { "content-type": "application/octet-stream", "content-length": String(blob.size) };
        if (session.minChunk !== void 0) headers["content-range"] = `0-${Math.max(0, blob.size - 1)}`;
        const patch = await this.call(`PATCH blob ${blob.digest}`, () => ({ method: "PATCH", url: session.url, headers, body: open3 }), [201, 202, 204], signal, retryableStatus);
        next = header(patch, "location") ? this.location(patch, blob.digest) : session.url;
      }
    } catch (error) {
      if (error instanceof NetworkError || sessionLost(error)) return error;
      throw error;
    }
    try {
      await this.call(`PUT blob ${blob.digest}`, () => ({ method: "PUT", url: withDigest(next, blob.digest), headers: { "content-length": "0" } }), [201], signal);
      return void 0;
    } catch (error) {
      if (sessionLost(error)) return error;
      throw error;
    }
  }
  /** The body in ranged PATCHes of `chunk` bytes (the last shorter), each held in memory while it goes (and
   *  sent again as it is when the registry refuses it whole); each to the Location the last one gave.
   *  Returns where the session is after the last. */
  async sendChunks(url, blob, open3, chunk, signal) {
    const body = open3();
    let at = 0;
    try {
      for await (const piece of pieces(body, chunk)) {
        const range = `${at}-${at + piece.length - 1}`;
        const patch = await this.call(
          `PATCH blob ${blob.digest} (bytes ${range})`,
          () => ({ method: "PATCH", url, headers: { "content-type": "application/octet-stream", "content-length": String(piece.length), "content-range": range }, body: piece }),
          [201, 202, 204],
          signal,
          retryableStatus
        );
        if (header(patch, "location")) url = this.location(patch, blob.digest);
        at += piece.length;
      }
    } finally {
      body.destroy();
    }
    if (at !== blob.size) throw new RegistryError(`blob ${blob.digest} is ${blob.size} bytes, but ${at} were read to upload it`);
    return url;
  }
  location(res, digest) {
    const loc = header(res, "location");
    if (!loc) throw new RegistryError(`registry ${this.opts.registry} opened an upload for ${digest} without a Location`);
    return this.sentTo(loc, this.base, `sent the upload of ${digest} to`);
  }
  close() {
    this.transport.close();
  }
};
function isInRepository(pathname, repository) {
  const rest = pathname.startsWith(`/v2/${repository}/`) ? pathname.slice(`/v2/${repository}/`.length) : void 0;
  return rest !== void 0 && /^(blobs|manifests)\/[^/]+$/.test(rest);
}
function retryableStatus(error) {
  return error instanceof RegistryError && !(error instanceof NetworkError) && isRetryable(error);
}
function sessionLost(error) {
  if (!(error instanceof RegistryError) || error instanceof AuthError) return false;
  if (error.status === 404 || error.status === 416) return true;
  return error.code === "BLOB_UPLOAD_UNKNOWN" || error.code === "BLOB_UPLOAD_INVALID" || error.code === "DIGEST_INVALID";
}
function isEcr(registry) {
  return /\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?(?::\d+)?$/i.test(registry) || /^public\.ecr\.aws$/i.test(registry);
}
function isImmutableTag(error) {
  if (error.status === void 0 || error.status < 400 || error.status >= 500) return false;
  return /immutab|cannot be overwritten/i.test(error.message) || error.code === "TAG_INVALID" && /exist/i.test(error.message);
}
async function* pieces(stream2, size) {
  let held = [];
  let n = 0;
  for await (const data of stream2) {
    let b = Buffer.isBuffer(data) ? data : Buffer.from(data);
    while (n + b.length >= size) {
      const take = size - n;
      held.push(b.subarray(0, take));
      yield Buffer.concat(held);
      held = [];
      n = 0;
      b = b.subarray(take);
    }
    if (b.length > 0) {
      held.push(b);
      n += b.length;
    }
  }
  if (n > 0) yield Buffer.concat(held);
}
function header(res, name) {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
function withDigest(session, digest) {
  const url = new URL(session);
  url.searchParams.set("digest", digest);
  return url;
}

// src/registry/credentials.ts
import { existsSync as existsSync4, readFileSync } from "node:fs";
import { homedir as homedir2 } from "node:os";
import { join as join7 } from "node:path";

// src/registry/credential-helper.ts
import { execFileSync } from "node:child_process";
var CredentialHelperError = class extends Error {
  name = "CredentialHelperError";
};
var HELPER_TIMEOUT_MS = 6e4;
var IDENTITY_TOKEN_USER = "<token>";
function helperGet(helper, serverUrl, where, env = process.env) {
  if (!/^[\w.-]+$/.test(helper)) throw new CredentialHelperError(`${where} names credential helper "${helper}", which is not a helper name`);
  const program = `docker-credential-${helper}`;
  let stdout;
  try {
    stdout = execFileSync(program, ["get"], { input: serverUrl, env, encoding: "utf8", timeout: HELPER_TIMEOUT_MS, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 1 << 20 });
  } catch (error) {
    const e = error;
    if (e.code === "ENOENT") throw new CredentialHelperError(`${where} names credential helper ${helper}, but ${program} is not on PATH`);
    const said = `${e.stdout ?? ""} ${e.stderr ?? ""}`.trim().replace(/\s+/g, " ");
    if (/credentials not found/i.test(said)) return void 0;
    if (e.code === "ETIMEDOUT" || e.signal === "SIGTERM") throw new CredentialHelperError(`${program} get (${where}) gave no answer within ${HELPER_TIMEOUT_MS / 1e3} s`);
    throw new CredentialHelperError(`${program} get (${where}) failed${e.status != null ? ` with exit code ${e.status}` : ""}${said ? `: ${said.slice(0, 200)}` : ""}`);
  }
  let parsed;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new CredentialHelperError(`${program} get (${where}) answered with something that is not JSON`);
  }
  const { Username: username, Secret: password } = parsed;
  if (typeof username !== "string" || typeof password !== "string" || password === "") {
    throw new CredentialHelperError(`${program} get (${where}) answered without a Username and Secret`);
  }
  if (username === IDENTITY_TOKEN_USER) return { username, password: "", identityToken: password };
  return { username, password };
}

// src/registry/credentials.ts
function helperServer(registry) {
  return isDockerHub(registry) ? "https://index.docker.io/v1/" : registry;
}
function configKeys(registry) {
  const keys = [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
  if (isDockerHub(registry)) keys.push("https://index.docker.io/v1/", "index.docker.io", "docker.io");
  return keys;
}
function dockerConfigSource(registry, env) {
  const dir = env.DOCKER_CONFIG || join7(env.HOME || homedir2(), ".docker");
  const file = join7(dir, "config.json");
  if (!existsSync4(file)) return {};
  let config;
  try {
    config = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return {};
  }
  const keys = configKeys(registry);
  const where = `${file}`;
  const fromHelper = (helper2, what) => {
    const get = () => helperGet(helper2, helperServer(registry), what, env);
    const credentials = get();
    return credentials ? { credentials, reload: get } : {};
  };
  const helper = keys.map((k) => config.credHelpers?.[k]).find((h) => typeof h === "string" && h !== "");
  if (helper) return fromHelper(helper, `credHelpers of ${where} for ${registry}`);
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    let user;
    let password;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const at = decoded.indexOf(":");
      if (at > 0) [user, password] = [decoded.slice(0, at), decoded.slice(at + 1)];
    }
    user ??= entry.username;
    password ||= entry.password;
    if (entry.identitytoken) return { credentials: { username: user || "<token>", password: "", identityToken: entry.identitytoken } };
    if (user && password) return { credentials: { username: user, password } };
  }
  if (typeof config.credsStore === "string" && config.credsStore !== "") return fromHelper(config.credsStore, `credsStore of ${where}`);
  return {};
}
function resolveCredentialSource(s) {
  if (s.password !== "") {
    if (s.username === "") throw new InputError("username", "is empty but password is set: give the user name the password belongs to");
    return { credentials: { username: s.username, password: s.password } };
  }
  if (s.registry === "ghcr.io" && s.githubToken !== "") {
    return { credentials: { username: s.username || "github-actions", password: s.githubToken } };
  }
  return dockerConfigSource(s.registry, s.env ?? process.env);
}

// src/registry/reference.ts
var HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$/;
var IPV6 = /^\[[0-9a-fA-F:.]+\](?::[0-9]{1,5})?$/;
var COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
var TAG = /^[\w][\w.-]{0,127}$/;
var DIGEST = /^sha256:[0-9a-f]{64}$/;
var DIGEST_ALGORITHM = /^(?:sha256|sha384|sha512):/i;
function isRegistryHost(component) {
  return component.includes(".") || component.includes(":") || component === "localhost";
}
function splitReference(value) {
  const at = value.indexOf("@");
  const name = at >= 0 ? value.slice(0, at) : value;
  const colon = name.lastIndexOf(":");
  const tagged = colon > name.lastIndexOf("/");
  const path2 = tagged ? name.slice(0, colon) : name;
  const slash = path2.indexOf("/");
  const first = slash >= 0 ? path2.slice(0, slash) : void 0;
  const hasRegistry = first !== void 0 && isRegistryHost(first);
  return {
    ...hasRegistry ? { registry: first } : {},
    repository: hasRegistry ? path2.slice(slash + 1) : path2,
    ...tagged ? { tag: name.slice(colon + 1) } : {},
    ...at >= 0 ? { digest: value.slice(at + 1) } : {}
  };
}
function sameRegistry(a, b) {
  return a.toLowerCase() === b.toLowerCase() || isDockerHub(a) && isDockerHub(b);
}
function inRegistry(registry, path2) {
  return isDockerHub(registry) && !path2.includes("/") ? `library/${path2}` : path2;
}
function badPart(path2) {
  return path2.split("/").find((p) => !COMPONENT.test(p));
}
function validateRegistry(registry) {
  if (/^[a-z]+:\/\//i.test(registry)) {
    throw new InputError("registry", `expected a host name such as ghcr.io or localhost:5000, without a scheme, got "${registry}"`);
  }
  if (registry.includes("/")) {
    throw new InputError("registry", `expected a host name without a path (put the path in image), got "${registry}"`);
  }
  if (!HOST.test(registry) && !IPV6.test(registry)) {
    throw new InputError("registry", `expected a host name such as ghcr.io or localhost:5000, got "${registry}"`);
  }
}
function parseImageName(registry, image) {
  validateRegistry(registry);
  if (image === "") throw new InputError("image", "expected a repository path such as owner/app, got an empty value");
  const parts = splitReference(image);
  if (parts.registry !== void 0 && (sameRegistry(parts.registry, registry) || !COMPONENT.test(parts.registry))) {
    throw new InputError("image", `expected the repository path without the registry (it is set by the registry input), got "${image}"`);
  }
  if (parts.tag !== void 0 || parts.digest !== void 0) {
    throw new InputError("image", `expected a repository path without a tag or digest (use the tags input), got "${image}"`);
  }
  return imageName(registry, image);
}
function imageName(given, path2) {
  const registry = given.toLowerCase();
  const bad = badPart(path2);
  if (bad !== void 0) {
    throw new InputError(
      "image",
      `expected lower-case path components of letters, digits and . _ - separated by /, got "${path2}" (bad part "${bad}")`
    );
  }
  if (path2.length > 255) throw new InputError("image", `expected at most 255 characters, got ${path2.length}`);
  const hub = isDockerHub(registry);
  return { registry, apiHost: hub ? DOCKER_HUB_API : registry, repository: inRegistry(registry, path2) };
}
function validateTag(tag, input = "tags") {
  if (tag.length > 128) throw new InputError(input, `a tag has at most 128 characters; "${tag.slice(0, 20)}\u2026" has ${tag.length}`);
  if (!TAG.test(tag)) {
    throw new InputError(input, `expected tags of letters, digits, _ . - (not starting with . or -), got "${tag}"`);
  }
}
function validateDigest(digest, input, value) {
  if (!DIGEST.test(digest)) throw new InputError(input, `expected a digest sha256:<64 lower-case hex digits>, got "${value}"`);
}
function parseReuseTags(values, target) {
  const seen = /* @__PURE__ */ new Set();
  const refs = [];
  for (const value of values) {
    const ref = parseReuseTag(value, target);
    const key = `${ref.repository}:${ref.tag}`;
    if (seen.has(key)) continue;
    seen.add(key);
    refs.push(ref);
  }
  return refs;
}
function parseReuseTag(value, target) {
  const input = "reuse-tags";
  const parts = splitReference(value);
  if (parts.digest !== void 0) {
    throw new InputError(input, `expected a tag or repository:tag, not a digest, got "${value}"`);
  }
  if (parts.tag === void 0) {
    if (value.includes("/")) throw new InputError(input, `expected repository:tag for another repository (the tag is missing), got "${value}"`);
    validateReuseTag(value, value);
    return { repository: target.repository, tag: value };
  }
  validateReuseTag(parts.tag, value);
  if (parts.registry !== void 0) {
    throw new InputError(input, `expected a repository of the same registry without its host (layers are mounted within one registry), got "${value}"`);
  }
  const bad = badPart(parts.repository);
  if (bad !== void 0) {
    throw new InputError(
      input,
      `expected repository:tag with a lower-case repository path of letters, digits and . _ - separated by /, got "${value}" (bad part "${bad}")`
    );
  }
  if (parts.repository.length > 255) {
    throw new InputError(input, `expected a repository path of at most 255 characters, got ${parts.repository.length} in "${value}"`);
  }
  return { repository: inRegistry(target.registry, parts.repository), tag: parts.tag };
}
function validateReuseTag(tag, value) {
  if (tag.length > 128) throw new InputError("reuse-tags", `a tag has at most 128 characters; "${value.slice(0, 40)}\u2026" has one of ${tag.length}`);
  if (!TAG.test(tag)) {
    throw new InputError("reuse-tags", `expected tags of letters, digits, _ . - (not starting with . or -), or repository:tag, got "${value}"`);
  }
}
function tagsOf(refs, repository) {
  return refs.filter((r) => r.repository === repository).map((r) => r.tag);
}
function parseTagTargets(values, defaultTarget) {
  const groups = /* @__PURE__ */ new Map();
  const add = (target, tag) => {
    const key = `${target.apiHost}/${target.repository}`;
    const group = groups.get(key) ?? { target, tags: [] };
    if (!group.tags.includes(tag)) group.tags.push(tag);
    groups.set(key, group);
  };
  for (const value of values) {
    if (!value.includes("/") && !value.includes(":") && !value.includes("@")) {
      validateTag(value);
      add(defaultTarget(), value);
      continue;
    }
    add(...parseReference(value));
  }
  return [...groups.values()];
}
function parseReference(value) {
  const expected = `expected a tag, or a reference [registry/]repository:tag, got "${value}"`;
  const parts = splitReference(value);
  if (parts.digest !== void 0) throw new InputError("tags", `${expected} (a digest cannot be a tag)`);
  if (parts.tag === void 0) throw new InputError("tags", `${expected} (the tag is missing)`);
  validateTag(parts.tag);
  try {
    const registry = parts.registry ?? "docker.io";
    validateRegistry(registry);
    return [imageName(registry, parts.repository), parts.tag];
  } catch (error) {
    throw new InputError("tags", `${expected}: ${error instanceof Error ? error.message.replace(/^input \w+: /, "") : String(error)}`);
  }
}
function parseMergeEntry(entry, home) {
  const input = "merge";
  if (!entry.includes("/") && !entry.includes("@") && DIGEST_ALGORITHM.test(entry)) {
    validateDigest(entry, input, entry);
    return { entry, repository: home.repository, reference: entry };
  }
  const parts = splitReference(entry);
  if (parts.registry !== void 0 && !sameRegistry(parts.registry, home.registry)) {
    throw new InputError(
      input,
      `"${entry}" is in registry ${parts.registry}, not ${home.registry}: an index can only list images of its own registry (copy the image there first)`
    );
  }
  if (parts.digest !== void 0) validateDigest(parts.digest, input, entry);
  else if (parts.tag !== void 0) validateTag(parts.tag, input);
  else if (parts.registry === void 0 && !parts.repository.includes("/")) {
    validateTag(entry, input);
    return { entry, repository: home.repository, reference: entry };
  } else {
    throw new InputError(input, `expected a digest, a tag, repository:tag or repository@sha256:\u2026, got "${entry}" (it names neither a tag nor a digest)`);
  }
  const reference = parts.digest ?? parts.tag;
  if (parts.repository === "" && parts.digest !== void 0 && parts.registry === void 0) return { entry, repository: home.repository, reference };
  const bad = badPart(parts.repository);
  if (bad !== void 0) {
    throw new InputError(input, `expected a lower-case repository path of letters, digits and . _ - separated by /, got "${entry}" (bad part "${bad}")`);
  }
  if (parts.repository.length > 255) throw new InputError(input, `expected a repository path of at most 255 characters, got ${parts.repository.length} in "${entry}"`);
  return { entry, repository: inRegistry(home.registry, parts.repository), reference };
}

// src/registry/connect.ts
async function connectRegistries(inputs, opts) {
  const primary = parseImageName(inputs.registry, inputs.image);
  const groups = parseTagTargets(inputs.tags, () => primary);
  const targets = [];
  const names = (h, t) => sameRegistry(h, t.registry) || sameRegistry(h, t.apiHost);
  for (const host of inputs.insecureRegistries) checkHost(host);
  const plainHosts = inputs.insecureRegistries.filter((h) => !groups.some((g) => names(h, g.target)));
  const insecure = (t) => inputs.insecure && t.apiHost === primary.apiHost || inputs.insecureRegistries.some((h) => names(h, t));
  const reuse = groups.map((g) => parseReuseTags(inputs.reuseTags, g.target));
  for (const entry of inputs.merge ?? []) parseMergeEntry(entry, groups[0].target);
  if (!inputs.push) return { primary, groups, targets };
  try {
    for (const [i, group] of groups.entries()) await connectGroup(group, reuse[i]);
  } catch (error) {
    for (const t of targets) t.client.close();
    throw error;
  }
  return { primary, groups, targets };
  async function connectGroup(group, reuseRefs) {
    const ours = group.target.apiHost === primary.apiHost;
    const { credentials, reload } = resolveCredentialSource({
      registry: group.target.registry,
      username: ours ? inputs.username : "",
      password: ours ? inputs.password : "",
      githubToken: inputs.githubToken
    });
    for (const secret of [credentials?.password, credentials?.identityToken]) if (secret) opts.onSecret(secret);
    const client = new RegistryClient({
      registry: group.target.apiHost,
      repository: group.target.repository,
      insecure: insecure(group.target),
      plainHosts,
      credentials,
      ...reload ? { reloadCredentials: reload } : {},
      logger: opts.logger,
      onSecret: opts.onSecret,
      ...ours ? {} : { credentialsHint: `log in to it before this step (docker/login-action with registry: ${group.target.registry}): its Docker config entry is used` }
    });
    try {
      await client.ping();
      await client.checkPush();
      targets.push({ client, tags: inputs.pushByDigest ? [] : group.tags, reuse: reuseRefs, known: [] });
    } catch (error) {
      client.close();
      throw error;
    }
  }
}
function checkHost(host) {
  try {
    validateRegistry(host);
  } catch (error) {
    if (error instanceof InputError) throw new InputError("insecure-registries", error.message.replace(/^input registry: /, ""));
    throw error;
  }
}
function repositoryTags(d, i, pushByDigest) {
  return pushByDigest ? [] : d.targets[i]?.tags ?? d.groups[i].tags;
}

// src/registry/merge.ts
import { Readable as Readable4 } from "node:stream";

// src/registry/targets.ts
import { createReadStream as createReadStream2 } from "node:fs";
import { Readable as Readable3 } from "node:stream";

// src/registry/existing.ts
async function findExisting(client, tags, wanted, logger2) {
  const alternatives = Array.isArray(wanted) ? wanted : [wanted];
  const misses = [];
  const held = {};
  for (const tag of [...new Set(tags)]) {
    let got;
    try {
      got = await client.getManifest(tag);
    } catch (error) {
      logger2.info(`cannot read the manifest under ${tag}: ${error instanceof Error ? error.message : String(error)}`);
      misses.push(`${tag}: unreadable`);
      continue;
    }
    held[tag] = got?.digest ?? null;
    if (!got) {
      misses.push(`${tag}: absent`);
      continue;
    }
    let parsed;
    try {
      parsed = JSON.parse(got.bytes.toString("utf8"));
    } catch {
      misses.push(`${tag}: not JSON`);
      continue;
    }
    const matches = alternatives.some((w) => Object.entries(w).every(([k, v]) => parsed.annotations?.[k] === v));
    if (parsed.mediaType !== MediaTypes.ociManifest || !parsed.config?.digest || !Array.isArray(parsed.layers) || !matches) {
      misses.push(`${tag}: made from something else`);
      continue;
    }
    const config = parsed.config;
    const configBytes = await client.getBlob(config.digest).catch(() => void 0);
    const layers = configBytes ? knownLayers(got.bytes, configBytes) : [];
    if (!configBytes || layers.length !== parsed.layers.length) {
      misses.push(`${tag}: its config is gone or does not match its layers`);
      continue;
    }
    const present = await Promise.all(layers.map((l) => client.hasBlob(l.desc.digest)));
    if (!present.every(Boolean)) {
      misses.push(`${tag}: ${present.filter((p) => !p).length} of its layers are gone`);
      continue;
    }
    return {
      existing: {
        foundUnder: tag,
        manifest: { mediaType: MediaTypes.ociManifest, bytes: got.bytes, digest: got.digest },
        config: { mediaType: config.mediaType ?? MediaTypes.ociConfig, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ ...l.desc, diffID: l.diffID, action: "reused", ...l.key ? { key: l.key } : {} })),
        held
      },
      reason: `the manifest under ${tag} was made from the same derivation with the same settings, and the registry holds its config and every layer`
    };
  }
  return { reason: misses.length ? `no tag holds this image (${misses.join("; ")})` : "no tag to look under" };
}
async function retag(client, tags, existing, started = Date.now()) {
  if (sha256Digest(existing.manifest.bytes) !== existing.manifest.digest) throw new Error("manifest digest mismatch");
  await tagAll(client, tags, existing.manifest, existing.held);
  return {
    digest: existing.manifest.digest,
    manifest: existing.manifest,
    config: existing.config,
    layers: existing.layers,
    pushed: true,
    bytesUploaded: 0,
    bytesSkipped: existing.layers.reduce((n, l) => n + l.size, existing.config.size),
    layersMade: 0,
    seconds: (Date.now() - started) / 1e3,
    input: `already in the registry under ${existing.foundUnder}`
  };
}

// src/registry/targets.ts
var COPIES = 4;
var recordKey = (t) => `${t.client.registry}/${t.client.repository}`;
async function knownFromRecord(dir, target, pin) {
  if (!dir) return [];
  const recordedFor = recordKey(target);
  return (await readLayerRecord(dir, recordedFor, pin)).map((l) => ({
    diffID: l.diffID,
    desc: { mediaType: l.mediaType ?? MediaTypes.ociLayerGzip, digest: l.digest, size: l.size },
    ...l.key ? { key: l.key } : {},
    recordedFor
  }));
}
async function recordPushed(dir, target, result, pin) {
  return recordLayers(
    dir,
    recordKey(target),
    result.layers.map((l) => ({ diffID: l.diffID, digest: l.digest, size: l.size, ...l.key ? { key: l.key } : {}, ...l.mediaType === MediaTypes.ociLayerGzip ? {} : { mediaType: l.mediaType } })),
    pin
  );
}
async function pushToAll(input, targets, opts) {
  const [first] = targets;
  if (!first) throw new Error("pushToAll needs a target");
  const common = { logger: opts.logger, tmpDir: opts.tmpDir, annotations: opts.annotations, compression: opts.compression };
  if (targets.length === 1) {
    return [await pushImage({ ...common, input, client: first.client, tags: first.tags, byDigest: opts.byDigest, reuseTags: first.reuse, known: first.known })];
  }
  opts.logger.info(`pushing to ${recordKey(first)} (by digest; tags once every repository has the image)`);
  const placers = targets.slice(1).map((t, i) => blobPlacer(first.client, t.client, targets.slice(0, i + 1).map((x) => x.client), opts.logger));
  const sameAsFirst = targets.slice(1).map((t) => t.client.registry === first.client.registry);
  const onMade = async (desc, file, inFirst, signal) => {
    await Promise.all(placers.map(async (p, i) => sameAsFirst[i] ? inFirst.then(() => p.place(desc, file, signal)) : p.place(desc, file, signal)));
  };
  const made = await pushImage({ ...common, input, client: first.client, tags: [], byDigest: true, reuseTags: [...first.tags, ...first.reuse], known: first.known, onMade });
  const results = [made];
  for (const [i, target] of targets.slice(1).entries()) {
    opts.logger.info(`copying ${made.digest} to ${recordKey(target)} (by digest)`);
    results.push(await copyImage(made, first.client, target.client, targets.slice(0, i + 1).map((t) => t.client), opts.logger, placers[i]));
  }
  if (!opts.byDigest) await tagEverywhere(targets, results);
  return results;
}
function blobPlacer(source, target, before, logger2) {
  const mountFrom = [...new Set(before.filter((c) => c.registry === target.registry && c.repository !== target.repository).map((c) => c.repository))];
  target.allowPull(mountFrom);
  const slots = limiter(COPIES);
  const bytes = { uploaded: 0, skipped: 0 };
  const placed = /* @__PURE__ */ new Map();
  const place = (blob, file, signal) => {
    const known = placed.get(blob.digest);
    if (known) return known;
    const action = slots(async () => {
      signal?.throwIfAborted();
      if (await target.hasBlob(blob.digest, { signal })) {
        bytes.skipped += blob.size;
        return "reused";
      }
      for (const from of mountFrom) {
        if (await target.mountBlob(blob.digest, from, { signal })) {
          bytes.skipped += blob.size;
          return "mounted";
        }
      }
      await target.uploadBlob(blob, () => file ? createReadStream2(file, { highWaterMark: READ_CHUNK }) : Readable3.from(source.blobPieces(blob.digest, blob.size, { signal })), { signal });
      bytes.uploaded += blob.size;
      logger2.info(`${file ? "uploaded" : "copied"} ${blob.digest} (${blob.size} bytes) ${file ? "as made" : `from ${source.registry}/${source.repository}`} to ${target.registry}/${target.repository}`);
      return "uploaded";
    });
    placed.set(blob.digest, action);
    action.catch(() => void 0);
    return action;
  };
  return { place, bytes };
}
async function copyImage(made, source, target, before, logger2, placer = blobPlacer(source, target, before, logger2)) {
  const started = Date.now();
  const actions = /* @__PURE__ */ new Map();
  const run3 = new FailFast();
  for (const blob of [made.config, ...made.layers]) if (!actions.has(blob.digest)) actions.set(blob.digest, run3.track(placer.place(blob, void 0, run3.signal)));
  await run3.settle();
  const layers = [];
  for (const l of made.layers) layers.push({ ...l, action: await actions.get(l.digest) });
  const digest = await target.putManifest(made.digest, made.manifest.bytes, made.manifest.mediaType);
  if (digest !== made.digest) throw new ImageMismatchError(`${target.registry}/${target.repository} stored the manifest ${made.digest} as ${digest}`);
  return {
    digest: made.digest,
    manifest: made.manifest,
    config: made.config,
    layers,
    pushed: true,
    bytesUploaded: placer.bytes.uploaded,
    bytesSkipped: placer.bytes.skipped,
    layersMade: 0,
    seconds: (Date.now() - started) / 1e3,
    input: `${made.input}, as pushed to ${source.registry}/${source.repository}`,
    retries: target.stats
  };
}
async function inTurn(targets, step) {
  const done = [];
  for (const [i, target] of targets.entries()) {
    try {
      done.push(await step(target, i));
    } catch (error) {
      if (error instanceof Error && targets.length > 1) {
        const moved = targets.slice(0, i).map((t) => `${recordKey(t)} (${t.tags.length ? t.tags.join(", ") : "no tag"})`);
        const partly = error.tagsMoved;
        const rest = targets.slice(partly ? i + 1 : i).map((t) => recordKey(t));
        error.message += ` (repositories tagged already: ${moved.length ? moved.join("; ") : "none"};` + (partly ? ` partly tagged: ${recordKey(targets[i])} (${partly.join(", ")});` : "") + ` not tagged: ${rest.length ? rest.join(", ") : "none"})`;
      }
      throw error;
    }
  }
  return done;
}
async function tagEverywhere(targets, results) {
  await inTurn(targets, (target, i) => tagAll(target.client, target.tags, results[i].manifest));
}
async function findEverywhere(targets, wanted, logger2) {
  const found = [];
  for (const target of targets) {
    const r = await findExisting(target.client, [...target.tags, ...tagsOf(target.reuse, target.client.repository)], wanted, logger2);
    if (!r.existing) return { reason: targets.length > 1 ? `${target.client.registry}/${target.client.repository}: ${r.reason}` : r.reason };
    if (found[0] && r.existing.manifest.digest !== found[0].manifest.digest) return { reason: `the repositories hold different images made from it` };
    found.push(r.existing);
  }
  const reason = found.length === 1 ? "the manifest under " + found[0].foundUnder + " was made from the same derivation with the same settings, and the registry holds its config and every layer" : `every repository holds it (${found.map((f) => f.foundUnder).join(", ")}), made from the same derivation with the same settings`;
  return { existing: found, reason };
}
async function retagEverywhere(targets, existing, started) {
  return inTurn(targets, async (target, i) => ({ ...await retag(target.client, target.tags, existing[i], started), retries: target.client.stats }));
}

// src/registry/merge.ts
var MergeError = class extends Error {
  name = "MergeError";
};
var PLACES = 4;
var platformName = (p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
function platformOf(config, ref) {
  const c = config;
  if (typeof c?.os !== "string" || typeof c.architecture !== "string") throw new MergeError(`merge: the config of ${ref} names no os and architecture`);
  return { architecture: c.architecture, os: c.os, ...typeof c.variant === "string" && c.variant ? { variant: c.variant } : {} };
}
var elsewhere = (d) => /foreign|nondistributable/.test(d.mediaType) || Array.isArray(d.urls);
async function readImages(client, entries) {
  client.allowPull([...new Set(entries.map((e) => e.repository))]);
  const images = [];
  for (const { entry, repository, reference } of entries) {
    const from = { repository };
    const got = await client.getManifest(reference, from);
    if (!got) throw new MergeError(`merge: ${entry} is not in ${repository}`);
    const manifest = JSON.parse(got.bytes.toString("utf8"));
    const mediaType = manifest.mediaType ?? got.mediaType;
    if (mediaType !== MediaTypes.ociManifest && mediaType !== MediaTypes.dockerManifest || !manifest.config?.digest) {
      throw new MergeError(`merge: ${entry} is ${mediaType || "not an image manifest"}, not a single image`);
    }
    const platform = platformOf(JSON.parse((await client.getBlob(manifest.config.digest, from)).toString("utf8")), entry);
    const same = images.find((i) => platformName(i.descriptor.platform) === platformName(platform));
    if (same) throw new MergeError(`merge: ${entry} and ${same.ref} are both ${platformName(platform)}`);
    const blobs = /* @__PURE__ */ new Map();
    for (const b of [manifest.config, ...manifest.layers ?? []]) if (!elsewhere(b) && !blobs.has(b.digest)) blobs.set(b.digest, { mediaType: b.mediaType, digest: b.digest, size: b.size });
    images.push({
      ref: entry,
      repository,
      descriptor: { mediaType, digest: got.digest, size: got.bytes.length, platform },
      manifest: { bytes: got.bytes, mediaType },
      blobs: [...blobs.values()]
    });
  }
  return images;
}
function indexOf(images, annotations, logger2) {
  const docker = images.filter((i) => i.descriptor.mediaType === MediaTypes.dockerManifest);
  const oci = images.filter((i) => i.descriptor.mediaType !== MediaTypes.dockerManifest);
  if (docker.length > 0 && oci.length > 0) {
    throw new MergeError(
      `merge: ${oci.map((i) => i.ref).join(", ")} ${oci.length === 1 ? "is an OCI image" : "are OCI images"} and ${docker.map((i) => i.ref).join(", ")} ${docker.length === 1 ? "a Docker image" : "Docker images"}: one index lists one kind (an OCI index, or a Docker manifest list), and an image cannot change kind without its digest changing: push them all as one kind`
    );
  }
  const mediaType = docker.length > 0 ? MediaTypes.dockerManifestList : MediaTypes.ociIndex;
  const keep = annotations && Object.keys(annotations).length > 0 ? annotations : void 0;
  if (keep && mediaType === MediaTypes.dockerManifestList) {
    logger2?.info(`merge: the images are Docker manifests, so the index is a Docker manifest list, which has no annotations: ${Object.keys(keep).join(", ")} left out`);
  }
  const body = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((i) => i.descriptor),
    ...keep && mediaType === MediaTypes.ociIndex ? { annotations: keep } : {}
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return { mediaType, bytes, digest: sha256Digest(bytes) };
}
async function placeImage(image, source, target, before, logger2) {
  const inSource = sameRegistry(target.registry, source.registry);
  if (inSource && target.repository === image.repository) return "present";
  if (await target.hasManifest(image.descriptor.digest)) return "present";
  const where = `${target.registry}/${target.repository}`;
  const mountFrom = inSource ? [image.repository] : [...new Set(before.filter((c) => sameRegistry(c.registry, target.registry) && c.repository !== target.repository).map((c) => c.repository))];
  target.allowPull(mountFrom);
  const slots = limiter(PLACES);
  let copied = false;
  const place = (blob) => slots(async () => {
    if (await target.hasBlob(blob.digest)) return;
    for (const from of mountFrom) if (await target.mountBlob(blob.digest, from)) return;
    if (inSource) {
      const refused = target.mountRefusal(blob.digest, image.repository);
      throw new MergeError(
        `merge: ${target.registry} would not mount blob ${blob.digest} of ${image.ref} from ${image.repository} into ${target.repository} (${refused ? `it refused with ${refused}` : "it opened an upload instead"}): an image goes into another repository of its registry by a cross-repository mount only`
      );
    }
    await target.uploadBlob(blob, () => Readable4.from(source.blobPieces(blob.digest, blob.size, { repository: image.repository })));
    copied = true;
    logger2.info(`copied ${blob.digest} (${blob.size} bytes) of ${image.ref} from ${source.registry}/${image.repository} to ${where}`);
  });
  const settled = await Promise.allSettled(image.blobs.map(place));
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  const digest = await target.putManifest(image.descriptor.digest, image.manifest.bytes, image.manifest.mediaType);
  if (digest !== image.descriptor.digest) throw new ImageMismatchError(`${where} stored the manifest ${image.descriptor.digest} of ${image.ref} as ${digest}`);
  return copied ? "copied" : "mounted";
}
async function mergeToAll(targets, entries, annotations, logger2) {
  const [first] = targets;
  if (!first) throw new Error("mergeToAll needs a target");
  if (entries.length === 0) throw new MergeError("merge: expected at least one image digest or reference");
  const source = first.client;
  const parsed = entries.map((e) => parseMergeEntry(e, { registry: source.registry, repository: source.repository }));
  const found = await readImages(source, parsed);
  const index = indexOf(found, annotations, logger2);
  const repositories = [];
  for (const [i, target] of targets.entries()) {
    const before = targets.slice(0, i).map((t) => t.client);
    const placed = [];
    for (const image of found) {
      const action = await placeImage(image, source, target.client, before, logger2);
      if (action !== "present") logger2.info(`${action} ${image.ref} (${image.descriptor.digest}) into ${recordKey(target)}`);
      placed.push({ digest: image.descriptor.digest, action });
    }
    const digest = await target.client.putManifest(index.digest, index.bytes, index.mediaType);
    if (digest !== index.digest) throw new ImageMismatchError(`${recordKey(target)} stored the index ${index.digest} as ${digest}`);
    repositories.push({ registry: target.client.registry, repository: target.client.repository, tags: target.tags, images: placed });
  }
  await inTurn(targets, (target) => tagAll(target.client, target.tags, index));
  return { index, images: found.map(({ ref, repository, descriptor }) => ({ ref, repository, descriptor })), repositories };
}

// src/registry/shortcut.ts
async function retagIfPushed(targets, producer, logger2, started = Date.now()) {
  if (targets.length === 0) return { reason: "nothing is pushed" };
  const found = await findEverywhere(targets, producer, logger2);
  if (!found.existing) return { reason: found.reason };
  const results = await retagEverywhere(targets, found.existing, started);
  return { results, foundUnder: found.existing[0].foundUnder, reason: found.reason };
}

// src/report/phases.ts
var PhaseClock = class {
  phases = {};
  mark = Date.now();
  /** Ends the current phase: its time goes to `phase`, or nowhere (time that belongs to no phase). */
  lap(phase) {
    const now = Date.now();
    const seconds = (now - this.mark) / 1e3;
    this.mark = now;
    if (phase) this.phases[phase] = seconds;
    return seconds;
  }
};

// src/cancel.ts
import { rmSync } from "node:fs";
function stopOnCancel(dirs) {
  const stop = (signal) => {
    for (const dir of dirs()) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
      }
    }
    setFailed(`the step was cancelled (${signal}): it stopped where it was, and nothing more was pushed or tagged`);
    process.exit(1);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

// src/main.ts
var logger = actionLogger();
function readInputs() {
  const inputs = parseInputs(envInputReader());
  if (inputs.password) setSecret(inputs.password);
  if (inputs.githubToken) setSecret(inputs.githubToken);
  maskNixSecrets({ ...inputs, args: splitArgs(inputs.buildArgs) });
  if (inputs.binaryCacheKey) {
    setSecret(inputs.binaryCacheKey);
    setSecret(inputs.binaryCacheKey.slice(inputs.binaryCacheKey.indexOf(":") + 1));
  }
  return inputs;
}
async function merge(inputs, to, started) {
  if (inputs.labels.length > 0) warning("labels: a merge puts them nowhere (an index has no image config); they belong to the jobs that build the images, and annotations go on the index");
  const merged = await mergeToAll(to.targets, inputs.merge, Object.fromEntries(manifestAnnotations(inputs.annotations)), logger);
  const [home, ...others] = to.groups.map((g, i) => ({ registry: g.target.registry, repository: g.target.repository, tags: g.tags, placed: merged.repositories[i].images }));
  await reportMerge({
    ...home,
    others,
    index: { digest: merged.index.digest, size: merged.index.bytes.length },
    images: merged.images.map((i) => ({ ref: i.ref, digest: i.descriptor.digest, platform: i.descriptor.platform })),
    seconds: (Date.now() - started) / 1e3
  });
  info(`merged ${merged.images.length} image(s) into ${to.groups.map((g) => `${g.target.registry}/${g.target.repository}`).join(", ")} as ${merged.index.digest}`);
}
var withStats = (p, stats) => stats ? { ...p, retries: stats } : p;
function reporter(inputs, to, clock) {
  return (pushed, r) => report({
    registry: to.groups[0].target.registry,
    repository: to.groups[0].target.repository,
    tags: repositoryTags(to, 0, inputs.pushByDigest),
    // Each repository's requests sent again as its client counts them now, its tags included.
    push: withStats(pushed[0], to.targets[0]?.client.stats),
    others: to.groups.slice(1).map((g, i) => ({ registry: g.target.registry, repository: g.target.repository, tags: repositoryTags(to, i + 1, inputs.pushByDigest), push: withStats(pushed[i + 1], to.targets[i + 1]?.client.stats) })),
    phases: clock.phases,
    ...r
  });
}
async function evaluate(inputs, nix) {
  const installable = `${inputs.flake}#${inputs.attr}`;
  const buildArgs = splitArgs(inputs.buildArgs);
  const env = { ...withoutSecrets(process.env), ...nix.env };
  const evaluation = await evaluateDerivation({ nix: nix.nix, installable, buildArgs, env });
  const settings = { labels: inputs.labels, annotations: manifestAnnotations(inputs.annotations), layersFrom: inputs.layersFrom, compression: inputs.compression };
  const producer = "drvPath" in evaluation ? await producerDerivation(evaluation.drvPath, inputs.layersFrom) : void 0;
  const wanted = producer && "drvPath" in evaluation ? [producer, ...producer !== evaluation.drvPath ? [evaluation.drvPath] : []].map((d) => producerAnnotations(d, settings)) : void 0;
  return { installable, buildArgs, env, evaluation, settings, ...wanted ? { wanted } : {} };
}
async function pushedBefore(inputs, job, to, reportPush, nix, clock) {
  if (!("drvPath" in job.evaluation)) {
    info(`image: building, the registry cannot stand in for the build: ${job.evaluation.reason}`);
    return false;
  }
  if (!job.wanted) return false;
  const shortcut = await retagIfPushed(to.targets, job.wanted, logger, Date.now());
  if (shortcut.results) clock.lap("push");
  if (!shortcut.results) {
    if (to.targets.length > 0) info(`image: building, ${shortcut.reason}`);
    return false;
  }
  const documents2 = await attachedDocuments(inputs, to, shortcut.results);
  if (inputs.sbomAttach && !documents2.docs.sbom && !documents2.docs.provenance) {
    warning(
      `sbom-attach: the image is unchanged and already in the registry, with no SBOM or provenance attached (a job without sbom-attach pushed it, or its attach failed); nothing is built just to write them, so the sbom and provenance outputs are empty`
    );
  }
  info(`image: already in the registry, nothing to build: ${shortcut.reason}`);
  const metadata = await reportPush(shortcut.results, {
    documents: documents2,
    storePath: job.evaluation.outPath,
    format: "already in the registry",
    nixVersion: nix.version,
    cacheHit: "false",
    cache: { note: "not restored: nothing to build" },
    buildSeconds: 0
  });
  info(`tagged ${metadata.image} (${shortcut.foundUnder}): nothing built, no layer sent`);
  return true;
}
async function build(inputs, nix, job, clock) {
  const state = { started: true };
  const trustedKeys = [...inputs.binaryCachePublicKeys, ...inputs.binaryCacheKey ? [publicKeyOf(inputs.binaryCacheKey)] : []];
  const cache = await restoreStoreCache({
    enabled: inputs.cache,
    keyPrefix: inputs.cacheKey || void 0,
    attr: inputs.attr,
    flake: inputs.flake,
    maxSize: inputs.cacheMaxSize,
    purge: inputs.cachePurge,
    nix: nix.nix,
    nixVersion: nix.version,
    trustedKeys,
    env: nix.env,
    buildArgs: job.buildArgs
  });
  state.cache = cache.state;
  const binary = inputs.binaryCache ? await openBinaryCache({ url: inputs.binaryCache, trustedKeys, nix: nix.nix, nixVersion: nix.version, onFailure: () => savePostState(state) }) : void 0;
  if (binary) state.binaryCache = binary.state;
  savePostState(state);
  if (inputs.cache || binary) clock.lap("restore");
  const substituted = /* @__PURE__ */ new Set();
  const nixConfig2 = [cache.env.NIX_CONFIG ?? job.env.NIX_CONFIG, binary?.nixConf].filter(Boolean).join("\n");
  const resolved = await resolveImage({
    nix: nix.nix,
    installable: job.installable,
    buildArgs: job.buildArgs,
    env: { ...job.env, ...cache.env, ...binary?.nixEnv, ...nixConfig2 ? { NIX_CONFIG: nixConfig2 } : {} },
    onLine: (line) => {
      const path2 = binary?.nixName ? substitutedFrom(line, binary.nixName) : void 0;
      if (path2) substituted.add(path2);
    },
    layersFrom: inputs.layersFrom,
    ..."drvPath" in job.evaluation ? { drvPath: job.evaluation.drvPath } : {},
    checkPlan: planRefusal,
    onDerivation: (drvPath, evaluated) => {
      state.drvPath = drvPath;
      state.evaluated = evaluated;
      savePostState(state);
    }
  }).finally(() => binary?.close());
  if (resolved.built) {
    state.storePath = resolved.built.storePath;
    state.drvPath = resolved.built.drvPath;
    info(`built ${resolved.built.storePath} in ${resolved.built.seconds.toFixed(1)} s`);
  } else if (resolved.plan) {
    state.storePath = resolved.plan.image.confPath;
    info(`built the conf ${resolved.plan.image.confPath} and what it names in ${resolved.seconds.toFixed(1)} s`);
  }
  state.evaluated = resolved.evaluated;
  savePostState(state);
  const untrusted = untrustedCacheWarning(resolved.ignoredSubstituters);
  if (untrusted) warning(untrusted);
  if (binary?.nixName && resolved.ignoredSubstituters.some((u) => u.split("?")[0] === binary.nixName)) {
    warning(`binary cache ${inputs.binaryCache}: Nix ignored it because this user is not a trusted user, so the build could not use it; add the user to trusted-users in nix.conf, or let this action install Nix`);
  }
  if (binary?.nixName) info(`binary cache ${inputs.binaryCache}: ${substituted.size} path(s) copied from it`);
  const note = binary?.nixName && binary.state.failed ? `stopped: ${binary.state.failed}` : binary?.note;
  const binaryCache = binary ? { url: inputs.binaryCache, note, substituted: [...substituted] } : void 0;
  return { cache, resolved, state, ...binaryCache ? { binaryCache } : {} };
}
async function push(inputs, job, to, built) {
  const { resolved, cache, state: postState } = built;
  const image = await imageToPush(resolved, inputs.labels, inputs.compression, { scanStorePaths: inputs.sbom !== false });
  if (!resolved.plan) info(`image format: ${image.format} (${resolved.outPath})`);
  const producer = resolved.drvPath && "drvPath" in job.evaluation ? producerAnnotations(resolved.plan ? resolved.plan.image.confDrv : resolved.drvPath, job.settings) : {};
  for (const t of to.targets) t.known = await knownFromRecord(cache.state?.dir, t, cache.state?.layerRecord);
  const spool = stepTempDir("nix-image-push-");
  stopOnCancel(() => [spool]);
  const common = { logger, tmpDir: spool, compression: inputs.compression, annotations: { ...Object.fromEntries(job.settings.annotations ?? []), ...producer } };
  const pushed = to.targets.length > 0 ? await pushToAll(image.input, to.targets, { ...common, byDigest: inputs.pushByDigest }) : computedFor(to, await pushImage({ ...common, input: image.input, tags: to.groups[0].tags }));
  if (cache.state) {
    for (const [i, t] of to.targets.entries()) {
      const written = await recordPushed(cache.state.dir, t, pushed[i], cache.state.layerRecord);
      if (cache.state.layerRecord !== void 0) cache.state.layerRecord = written;
    }
    savePostState(postState);
  }
  return { pushed, image };
}
function computedFor(to, computed) {
  return [computed, ...to.groups.slice(1).map(() => ({ ...computed, layersMade: 0, bytesUploaded: 0, bytesSkipped: 0 }))];
}
var subjectOf = (p) => ({ mediaType: p.manifest.mediaType, digest: p.digest, size: p.manifest.bytes.length });
async function documents(inputs, nix, job, to, built, startedOn) {
  const first = built.pushed[0];
  const target = to.groups[0].target;
  try {
    const storePaths = inputs.sbom === false ? void 0 : await imageStorePaths({ layers: first.layers.map((l) => l.storePaths), diffIDs: first.layers.map((l) => l.diffID), ...built.image.source ? { archive: built.image.source } : {} });
    const docs = await writeImageDocuments({
      nix: nix.nix,
      env: job.env,
      flake: inputs.flake,
      attr: inputs.attr,
      buildArgs: job.buildArgs,
      storePaths,
      subject: { registry: target.registry, repository: target.repository, digest: first.digest },
      ...built.resolved.drvPath ? { drvPath: built.resolved.drvPath } : {},
      outPath: built.resolved.outPath,
      nixVersion: nix.version,
      format: inputs.sbom,
      tmpDir: stepTempDir("nix-image-documents-"),
      startedOn
    });
    const attached = inputs.sbomAttach ? await attachImageDocuments(to.targets, subjectOf(first), docs, logger) : [];
    return { docs, attached };
  } catch (error) {
    const image = first.pushed ? `the image is pushed (${target.registry}/${target.repository}@${first.digest})` : `the image is built (${first.digest}, not pushed)`;
    const line = `${image}; ${inputs.sbomAttach ? "attaching" : "writing"} its SBOM and provenance failed: ${errorLine(error)}`;
    if (inputs.sbomAttach) throw new Error(line);
    warning(line);
    return { docs: { notes: [`no SBOM or provenance: ${errorLine(error)}`] } };
  }
}
async function attachedDocuments(inputs, to, pushed) {
  try {
    return { docs: await fetchAttachedDocuments(to.targets[0].client, subjectOf(pushed[0]), stepTempDir("nix-image-documents-"), { format: inputs.sbom }), fetched: true };
  } catch (error) {
    warning(`the image's attached SBOM and provenance could not be read: ${errorLine(error)}`);
    return { docs: { notes: [`no SBOM or provenance: ${errorLine(error)}`] } };
  }
}
async function run2() {
  const started = Date.now();
  for (const secret of proxySecrets()) setSecret(secret);
  const badProxy = proxyProblem();
  if (badProxy) throw new Error(badProxy);
  const inputs = readInputs();
  const unproxied = proxyWarning();
  if (unproxied) warning(unproxied);
  const to = await connectRegistries(inputs, { logger, onSecret: (s) => setSecret(s) });
  try {
    await (inputs.merge.length > 0 && to.targets.length > 0 ? merge(inputs, to, started) : buildAndPush(inputs, to, started));
  } finally {
    for (const t of to.targets) t.client.close();
  }
}
async function buildAndPush(inputs, to, started) {
  const clock = new PhaseClock();
  const nix = await setupNix({
    installNix: inputs.installNix,
    nixVersion: inputs.nixVersion,
    installUrl: inputs.nixInstallUrl || void 0,
    sha256: inputs.nixSha256 || void 0,
    githubToken: inputs.githubToken || void 0,
    extraNixConf: inputs.extraNixConf || void 0,
    // Flake code that reads the environment or any file gets no token: Nix is then given none.
    impure: evaluatesImpurely(splitArgs(inputs.buildArgs), [inputs.extraNixConf, process.env.NIX_CONFIG ?? ""])
  });
  clock.lap("install");
  try {
    await pushWithNix(inputs, to, started, nix, clock);
  } finally {
    forgetSecretSettings();
  }
}
async function pushWithNix(inputs, to, started, nix, clock) {
  const job = await evaluate(inputs, nix);
  clock.lap("evaluate");
  const reportPush = reporter(inputs, to, clock);
  if (await pushedBefore(inputs, job, to, reportPush, nix, clock)) return;
  clock.lap();
  const { cache, resolved, binaryCache, state } = await build(inputs, nix, job, clock);
  clock.lap();
  const { pushed, image } = await push(inputs, job, to, { resolved, cache, state });
  clock.lap("push");
  const docs = await documents(inputs, nix, job, to, { resolved, image, pushed }, new Date(started));
  const metadata = await reportPush(pushed, {
    documents: docs,
    storePath: resolved.outPath,
    format: image.format,
    nixVersion: nix.version,
    cacheHit: cache.hit,
    cache: { restored: cache.hit === "false" ? void 0 : cache.restored, note: cache.note },
    ...binaryCache ? { binaryCache } : {},
    buildSeconds: resolved.seconds
  });
  info(
    `${pushed[0].pushed ? "pushed" : "computed (push: false)"} ${metadata.image}: ${metadata.layers.uploaded} layer(s) uploaded, ${metadata.layers.skipped} already there` + (to.targets.length > 1 ? `; the same digest in ${to.targets.length} repositories` : "")
  );
}
run2().catch((error) => {
  setFailed(errorLine(error));
});
