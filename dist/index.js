import { createRequire as __nia_createRequire } from 'node:module'; const require = __nia_createRequire(import.meta.url);
import {
  HttpClient,
  LAYERS_AT_ONCE,
  __toESM,
  actionLogger,
  addPath,
  blocksInFlight,
  cp,
  debug,
  endGroup,
  errorLine,
  exec,
  info,
  isDebug,
  mkdirP,
  nixOutput,
  pushImage,
  report,
  require_semver,
  restoreStoreCache,
  rmRF,
  savePostState,
  setFailed,
  setSecret,
  sha256Digest,
  startGroup,
  untrustedCacheWarning,
  warning
} from "./chunks/chunk-SPKD5A4N.js";

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
function oneOf(name, value, allowed) {
  if (allowed.includes(value)) return value;
  throw new InputError(name, `expected one of ${allowed.join(", ")}, got "${value}"`);
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
  return {
    flake,
    attr,
    buildArgs: get("build-args"),
    registry: get("registry") || "ghcr.io",
    image,
    tags,
    reuseTags: splitList(get("reuse-tags")),
    layersFrom: oneOf("layers-from", get("layers-from") || "auto", ["auto", "archive"]),
    username: get("username"),
    password: get("password"),
    githubToken: get("github-token"),
    push: parseBoolean("push", get("push"), true),
    insecure: parseBoolean("insecure", get("insecure"), false),
    cache: parseBoolean("cache", get("cache"), true),
    cacheKey: get("cache-key"),
    cacheMaxSize: parseSize("cache-max-size", get("cache-max-size") || "4GiB"),
    installNix: oneOf("install-nix", get("install-nix") || "auto", ["auto", "true", "false"]),
    nixVersion: get("nix-version"),
    nixInstallUrl: get("nix-install-url"),
    nixSha256,
    extraNixConf: get("extra-nix-conf")
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
import { createHash } from "node:crypto";
import { accessSync, constants, createReadStream, existsSync as existsSync2, readdirSync as readdirSync2 } from "node:fs";
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { availableParallelism, homedir, tmpdir, userInfo } from "node:os";
import { delimiter, join as join2 } from "node:path";
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
function nixSettings(opts) {
  const lines = ["experimental-features = nix-command flakes", "max-jobs = auto"];
  if (opts.trustedUser) lines.push(`trusted-users = root ${opts.trustedUser}`);
  if (opts.githubToken) lines.push(`access-tokens = github.com=${opts.githubToken}`);
  if (opts.extraNixConf) lines.push(opts.extraNixConf.trimEnd());
  return `${lines.join("\n")}
`;
}
function nixConfigEnv(opts, existing) {
  const ours = nixSettings({ githubToken: opts.githubToken });
  return [ours.trimEnd(), existing?.trimEnd(), opts.extraNixConf?.trimEnd()].filter(Boolean).join("\n");
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
async function sha256File(path2) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path2)) hash.update(chunk);
  return hash.digest("hex");
}
async function publishedSha256(url) {
  let res;
  try {
    res = await fetch(`${url}.sha256`);
  } catch (e) {
    throw new NixInstallError(`cannot download ${url}.sha256: ${e.message}`);
  }
  if (!res.ok) throw new NixInstallError(`cannot download ${url}.sha256: HTTP ${res.status} (give nix-sha256 to skip it)`);
  const hex = (await res.text()).trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new NixInstallError(`${url}.sha256 does not hold a SHA-256: "${hex.slice(0, 80)}"`);
  return hex;
}
async function fetchRelease(version, system, url, sha256) {
  const tool = url === releaseUrl(version, system) ? "nix" : `nix-${createHash("sha256").update(url).digest("hex").slice(0, 12)}`;
  const cached = find(tool, version, system);
  if (cached) {
    info(`Nix ${version} tarball found in the tool cache: ${cached}`);
    return cached;
  }
  info(`downloading ${url}`);
  let file;
  try {
    file = await downloadTool(url);
  } catch (e) {
    throw new NixInstallError(`cannot download the Nix tarball ${url}: ${e.message}`);
  }
  const expected = sha256 ?? await publishedSha256(url);
  const actual = await sha256File(file);
  if (actual !== expected) {
    throw new NixInstallError(`the Nix tarball ${url} has SHA-256 ${actual}, expected ${expected}: not installing it`);
  }
  let dir;
  try {
    dir = await extractTar(file, void 0, "xJ");
  } catch (e) {
    throw new NixInstallError(`cannot unpack the Nix tarball ${url}: ${e.message}`);
  }
  return cacheDir(dir, tool, version, system);
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
  const dir = await fetchRelease(opts.nixVersion, system, url, opts.sha256);
  const installer = installerIn(dir);
  const user = env.USER || userInfo().username;
  const settings = nixSettings({ githubToken: opts.githubToken, extraNixConf: opts.extraNixConf, trustedUser: user });
  const temp = env.RUNNER_TEMP || tmpdir();
  const confFile = join2(temp, "nix-image-action.nix.conf");
  await writeFile(confFile, settings, { mode: 384 });
  const daemon = canRunDaemon(env);
  const flags = daemon ? ["--daemon", "--yes", "--daemon-user-count", String(Math.max(4, availableParallelism())), "--no-channel-add", "--nix-extra-conf-file", confFile] : ["--no-daemon", "--no-channel-add", "--nix-extra-conf-file", confFile];
  startGroup(`${installer} ${flags.join(" ")}`);
  let result;
  try {
    result = await run(installer, flags, env, true);
  } finally {
    endGroup();
  }
  if (result.code !== 0) {
    const last = result.out.trim().split("\n").slice(-2).join(" / ");
    throw new NixInstallError(`the Nix installer exited with code ${result.code}: ${last}`);
  }
  if (!daemon) {
    const confDir = join2(env.XDG_CONFIG_HOME || join2(env.HOME || homedir(), ".config"), "nix");
    await mkdir(confDir, { recursive: true });
    await appendFile(join2(confDir, "nix.conf"), settings, { mode: 384 });
  }
  for (const bin of PROFILE_BINS) {
    if (executable(join2(bin, "nix"))) {
      addPath(bin);
      return join2(bin, "nix");
    }
  }
  throw new NixInstallError(`the Nix installer succeeded but no nix is in ${PROFILE_BINS.join(" or ")}`);
}
async function setupNix(opts) {
  const env = opts.env ?? process.env;
  if (opts.githubToken) setSecret(opts.githubToken);
  const found = opts.installNix === "true" ? void 0 : findNix(env);
  let nix;
  let installed = false;
  if (found) nix = found;
  else if (opts.installNix === "false") {
    throw new InputError("install-nix", "is false but no nix is on PATH or in /nix/var/nix/profiles/default/bin: install Nix first, or use auto");
  } else {
    nix = await install(opts, env);
    installed = true;
  }
  const nixEnv = { NIX_CONFIG: nixConfigEnv({ githubToken: opts.githubToken, extraNixConf: opts.extraNixConf }, env.NIX_CONFIG) };
  const version = await nixVersion(nix, { ...env, ...nixEnv });
  info(`${installed ? "installed" : "using"} Nix ${version} (${nix})`);
  return { nix, version, installed, env: nixEnv };
}

// src/nix/build.ts
import { spawn as spawn2 } from "node:child_process";
var BuildError = class extends Error {
  name = "BuildError";
};
function splitArgs(value) {
  const args = [];
  let cur = "";
  let inArg = false;
  let quote;
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
  if (quote) throw new InputError("build-args", `unterminated ${quote} quote in "${value}"`);
  if (inArg) args.push(cur);
  return args;
}
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
async function derivationOf(opts) {
  try {
    const out = await nixOutput(opts.nix, ["path-info", "--derivation", opts.installable, ...opts.buildArgs], opts.env);
    const drv = out.trim().split("\n").pop();
    return drv?.endsWith(".drv") ? drv : void 0;
  } catch {
    return void 0;
  }
}
function ignoredSubstituters(log) {
  return [...log.replace(ANSI, "").matchAll(/ignoring untrusted substituter '([^']+)'/g)].map((m) => m[1]);
}
async function buildImageOutput(opts) {
  const args = ["build", "--no-link", "--json", "--print-build-logs", opts.installable, ...opts.buildArgs];
  const started = Date.now();
  startGroup(`nix ${args.join(" ")}`);
  let stdout = "";
  let stderr = "";
  let head2 = "";
  let code;
  try {
    code = await new Promise((resolve, reject) => {
      const child = spawn2(opts.nix, args, { env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
      child.stdout.on("data", (d) => stdout += d.toString());
      child.stderr.on("data", (d) => {
        const text = d.toString();
        stderr = (stderr + text).slice(-64 * 1024);
        if (head2.length < 64 * 1024) head2 += text;
        process.stdout.write(text);
      });
      child.on("error", (e) => reject(new BuildError(`cannot run ${opts.nix}: ${e.message}`)));
      child.on("close", resolve);
    });
  } finally {
    endGroup();
  }
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

// src/image/format.ts
import { open, readdir, stat } from "node:fs/promises";
import { join as join3 } from "node:path";
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
  const info2 = await stat(path2);
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
  const info2 = await stat(storePath).catch(() => void 0);
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
    path2 = join3(storePath, archives[0]);
  }
  const { format, found } = await sniffFile(path2);
  if (!format) {
    throw new NotAnImageError(
      `${path2} is not a container image: expected a docker-archive (.tar, .tar.gz, .tar.zst) or a streamLayeredImage script, found ${found}`
    );
  }
  return { format, path: path2 };
}

// src/registry/credentials.ts
import { existsSync as existsSync3, readFileSync } from "node:fs";
import { homedir as homedir2 } from "node:os";
import { join as join4 } from "node:path";
function configKeys(registry) {
  const keys = [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
  if (["docker.io", "index.docker.io", "registry-1.docker.io"].includes(registry)) keys.push("https://index.docker.io/v1/");
  return keys;
}
function fromDockerConfig(registry, env = process.env) {
  const dir = env.DOCKER_CONFIG || join4(env.HOME || homedir2(), ".docker");
  const file = join4(dir, "config.json");
  if (!existsSync3(file)) return void 0;
  let config;
  try {
    config = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return void 0;
  }
  for (const key of configKeys(registry)) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const at = decoded.indexOf(":");
      if (at > 0) return { username: decoded.slice(0, at), password: decoded.slice(at + 1) };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  }
  return void 0;
}
function resolveCredentials(s) {
  if (s.password !== "") {
    if (s.username === "") throw new InputError("username", "is empty but password is set: give the user name the password belongs to");
    return { username: s.username, password: s.password };
  }
  if (s.registry === "ghcr.io" && s.githubToken !== "") {
    return { username: s.username || "github-actions", password: s.githubToken };
  }
  return fromDockerConfig(s.registry, s.env);
}

// src/registry/client.ts
import { Readable } from "node:stream";

// src/registry/transport/basic.ts
function basicHeader(c) {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

// src/registry/transport/error.ts
var RegistryError = class extends Error {
  constructor(message, status, code, retryAfterMs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
  status;
  code;
  retryAfterMs;
  name = "RegistryError";
};
var NetworkError = class extends RegistryError {
  name = "NetworkError";
};
var AuthError = class extends RegistryError {
  name = "AuthError";
};
function describeBody(body) {
  const raw = body.toString("utf8").trim();
  if (raw === "") return { text: "" };
  try {
    const parsed = JSON.parse(raw);
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      const text = parsed.errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
      return { code: parsed.errors[0]?.code, text };
    }
  } catch {
  }
  const line = raw.replace(/\s+/g, " ");
  return { text: line.length > 200 ? `${line.slice(0, 200)}\u2026` : line };
}
function isRetryableStatus(status) {
  return status === 408 || status === 429 || status >= 500;
}
function parseRetryAfter(value, now = Date.now()) {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return void 0;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1e3;
  const date = Date.parse(v);
  return Number.isNaN(date) ? void 0 : Math.max(0, date - now);
}
function deniedHint(registry) {
  if (registry === "ghcr.io") {
    return "the token may not write this package: give the job 'permissions: packages: write', and if the package was first pushed from elsewhere, add this repository under the package's Manage Actions access";
  }
  return "the credentials were accepted but may not push to this repository";
}
function httpError(opts) {
  const { code, text } = describeBody(opts.body);
  const message = `registry ${opts.registry} answered ${opts.status}${opts.statusText ? ` ${opts.statusText}` : ""} to ${opts.what}` + (text ? `: ${text}` : "") + (opts.status === 403 ? ` (${deniedHint(opts.registry)})` : "");
  const Kind = opts.status === 401 || opts.status === 403 ? AuthError : RegistryError;
  return new Kind(message, opts.status, code, parseRetryAfter(opts.retryAfter));
}

// src/registry/transport/bearer.ts
async function fetchToken(transport, challenge, scope, credentials, registry) {
  const realm = challenge.params.realm;
  if (!realm) throw new AuthError(`registry ${registry} asked for a bearer token but named no realm to get it from`);
  const url = new URL(realm);
  if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
  url.searchParams.set("scope", scope);
  const headers = {};
  if (credentials) headers.authorization = basicHeader(credentials);
  const res = await transport.request({ method: "GET", url, headers });
  if (res.status === 401 || res.status === 403) {
    const who = credentials ? `the credentials of ${credentials.username}` : "anonymous access";
    const err = httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body });
    throw new AuthError(`registry ${registry} rejected ${who}: ${err.message}`, res.status, err.code);
  }
  if (res.status !== 200) {
    throw httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"] });
  }
  const body = JSON.parse(res.body.toString("utf8"));
  const token = body.token ?? body.access_token;
  if (!token) throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered without a token`);
  return token;
}

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
var MAX_BODY = 64 * 1024 * 1024;
var IDLE_TIMEOUT_MS = 12e4;
var HttpTransport = class {
  httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  httpsAgent;
  constructor(insecure) {
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: !insecure });
  }
  request(req) {
    const secure = req.url.protocol === "https:";
    const headers = { "user-agent": "nix-image-action", ...req.headers };
    if (Buffer.isBuffer(req.body)) headers["content-length"] = String(req.body.length);
    return new Promise((resolve, reject) => {
      const options = {
        method: req.method,
        headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        timeout: IDLE_TIMEOUT_MS
      };
      const r = (secure ? https : http).request(req.url, options, (res) => {
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
          () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", headers: res.headers, body: Buffer.concat(chunks) })
        );
        res.on("error", (e) => reject(e instanceof RegistryError ? e : new NetworkError(`${req.url.host}: ${e.message}`)));
      });
      r.on("timeout", () => r.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1e3} s`)));
      r.on("error", (e) => reject(classify(req.url, e)));
      if (req.body === void 0) r.end();
      else if (Buffer.isBuffer(req.body)) r.end(req.body);
      else {
        const body = req.body();
        body.on("error", (e) => r.destroy(e));
        body.pipe(r);
      }
    });
  }
  close() {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
};
var TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/;
var TlsError = class extends RegistryError {
  name = "TlsError";
};
function classify(url, e) {
  if (e instanceof RegistryError) return e;
  const code = e.code ?? "";
  if (TLS_CODES.test(code)) {
    return new TlsError(`cannot verify the TLS certificate of ${url.host} (${code}): set insecure: true for a registry with a self-signed certificate`);
  }
  if (code === "EPROTO" || /wrong version number|packet length too long/i.test(e.message)) {
    return new TlsError(`${url.host} does not speak HTTPS (${e.message.split("\n")[0]}): set insecure: true for a plain-HTTP registry`);
  }
  return new NetworkError(`cannot reach registry ${url.host}: ${e.message}`);
}

// src/registry/transport/retry.ts
var defaultRetry = { attempts: 5, baseMs: 400, maxMs: 2e4 };
function isRetryable(error) {
  if (error instanceof AuthError) return false;
  if (error instanceof NetworkError) return true;
  if (error instanceof RegistryError) return error.status !== void 0 && isRetryableStatus(error.status);
  return false;
}
function backoff(attempt, policy, retryAfterMs, random = Math.random) {
  if (retryAfterMs !== void 0) return Math.min(retryAfterMs, policy.maxMs);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
var sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function withRetry(what, fn, policy, logger) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (!isRetryable(error) || attempt >= policy.attempts) {
        if (attempt > 1 && error instanceof Error) error.message += ` (after ${attempt} tries)`;
        throw error;
      }
      const wait = backoff(attempt, policy, error instanceof RegistryError ? error.retryAfterMs : void 0);
      logger?.info(`${what}: ${error.message}; retrying in ${(wait / 1e3).toFixed(1)} s (try ${attempt + 1} of ${policy.attempts})`);
      await sleep(wait);
    }
  }
}

// src/registry/transport/scheme.ts
async function pickScheme(host, insecure, probe) {
  const https2 = new URL(`https://${host}/`);
  try {
    return { base: https2, response: await probe(https2) };
  } catch (error) {
    if (!insecure || !(error instanceof TlsError)) throw error;
  }
  const http2 = new URL(`http://${host}/`);
  return { base: http2, response: await probe(http2) };
}

// src/registry/client.ts
var MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json"
].join(", ");
var RegistryClient = class {
  constructor(opts) {
    this.opts = opts;
    this.transport = new HttpTransport(opts.insecure ?? false);
    this.retry = { ...defaultRetry, ...opts.retry };
  }
  opts;
  transport;
  retry;
  ready;
  base;
  auth = { kind: "none" };
  get registry() {
    return this.opts.registry;
  }
  get scope() {
    return `repository:${this.opts.repository}:pull,push`;
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
    const { registry, insecure, credentials } = this.opts;
    const { base, response } = await withRetry(
      `reaching ${registry}`,
      () => pickScheme(registry, insecure ?? false, async (b) => {
        const res = await this.transport.request({ method: "GET", url: new URL("/v2/", b) });
        if (res.status >= 500 || res.status === 429 || res.status === 408) {
          throw httpError({ registry, what: "GET /v2/", status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"] });
        }
        return res;
      }),
      this.retry,
      this.opts.logger
    );
    this.base = base;
    if (response.status === 200) return;
    if (response.status !== 401) {
      throw httpError({ registry, what: "GET /v2/ (is this a container registry?)", status: response.status, statusText: response.statusText, body: response.body });
    }
    const challenge = parseChallenge(header(response, "www-authenticate"));
    if (challenge?.scheme === "bearer") {
      this.auth = { kind: "bearer", challenge };
      this.auth.token = await fetchToken(this.transport, challenge, this.scope, credentials, registry);
      return;
    }
    if (challenge?.scheme === "basic") {
      if (!credentials) throw new AuthError(`registry ${registry} requires a user name and password: set the username and password inputs`, 401);
      this.auth = { kind: "basic", header: basicHeader(credentials) };
      const check = await this.transport.request({ method: "GET", url: new URL("/v2/", base), headers: { authorization: this.auth.header } });
      if (check.status === 401 || check.status === 403) {
        throw new AuthError(`registry ${registry} rejected the credentials of ${credentials.username} (${check.status})`, check.status);
      }
      return;
    }
    throw new AuthError(`registry ${registry} asks for an authentication scheme we do not speak: ${header(response, "www-authenticate") ?? "none given"}`, 401);
  }
  url(path2) {
    return new URL(`/v2/${this.opts.repository}/${path2}`, this.base);
  }
  authHeaders() {
    if (this.auth.kind === "basic") return { authorization: this.auth.header };
    if (this.auth.kind === "bearer" && this.auth.token) return { authorization: `Bearer ${this.auth.token}` };
    return {};
  }
  /** One request with auth; a 401 under a bearer token fetches a fresh token once. Follows redirects for reads. */
  async send(req) {
    await this.ping();
    let res = await this.transport.request({ ...req, headers: { ...req.headers, ...this.authHeaders() } });
    if (res.status === 401 && this.auth.kind === "bearer") {
      const fresh = parseChallenge(header(res, "www-authenticate"));
      if (fresh?.scheme === "bearer") this.auth.challenge = fresh;
      this.auth.token = await fetchToken(this.transport, this.auth.challenge, this.scope, this.opts.credentials, this.opts.registry);
      res = await this.transport.request({ ...req, headers: { ...req.headers, ...this.authHeaders() } });
    }
    for (let hops = 0; (req.method === "GET" || req.method === "HEAD") && [301, 302, 303, 307, 308].includes(res.status) && hops < 5; hops++) {
      const location = header(res, "location");
      if (!location) break;
      const next = new URL(location, req.url);
      const headers = next.host === req.url.host ? { ...req.headers, ...this.authHeaders() } : { ...req.headers };
      req = { ...req, url: next };
      res = await this.transport.request({ ...req, headers });
    }
    return res;
  }
  fail(what, res) {
    return httpError({ registry: this.opts.registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers["retry-after"] });
  }
  /** Sends with retries; `ok` lists the statuses that are answers rather than failures. */
  async call(what, req, ok2) {
    await this.ping();
    return withRetry(
      what,
      async () => {
        const res = await this.send(req());
        if (!ok2.includes(res.status)) throw this.fail(what, res);
        return res;
      },
      this.retry,
      this.opts.logger
    );
  }
  async hasBlob(digest) {
    const res = await this.call(`HEAD blob ${digest}`, () => ({ method: "HEAD", url: this.url(`blobs/${digest}`) }), [200, 404]);
    return res.status === 200;
  }
  async getBlob(digest) {
    const res = await this.call(`GET blob ${digest}`, () => ({ method: "GET", url: this.url(`blobs/${digest}`) }), [200]);
    const got = sha256Digest(res.body);
    if (got !== digest) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} with content hashing to ${got}`);
    return res.body;
  }
  async getManifest(ref) {
    const res = await this.call(
      `GET manifest ${ref}`,
      () => ({ method: "GET", url: this.url(`manifests/${ref}`), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404]
    );
    if (res.status === 404) return void 0;
    return { mediaType: header(res, "content-type") ?? "", digest: sha256Digest(res.body), bytes: res.body };
  }
  /** PUTs a manifest under a tag; returns the digest the registry filed it under. */
  async putManifest(ref, bytes, mediaType) {
    const res = await this.call(
      `PUT manifest ${ref}`,
      () => ({ method: "PUT", url: this.url(`manifests/${ref}`), headers: { "content-type": mediaType }, body: bytes }),
      [200, 201]
    );
    return header(res, "docker-content-digest") ?? sha256Digest(bytes);
  }
  async uploadBlobBytes(bytes) {
    const digest = sha256Digest(bytes);
    await this.uploadBlob({ digest, size: bytes.length }, () => Readable.from([bytes]));
    return digest;
  }
  /**
   * Uploads a blob the way docker, skopeo and go-containerregistry do, the shape every registry takes:
   * POST opens a session, one PATCH streams the whole body, PUT with ?digest= closes it. No Content-Range
   * (to ghcr.io a ranged request is a chunk, refused over 4 MiB, as is a body in the PUT), unless the
   * registry asks for chunks (OCI-Chunk-Min-Length): then the body goes as one ranged chunk. A failure
   * anywhere restarts from a fresh session.
   */
  async uploadBlob(blob, open2) {
    await this.ping();
    await withRetry(
      `uploading blob ${blob.digest}`,
      async () => {
        const session = await this.openUpload(blob.digest);
        if (session) await this.patchThenPut(session.url, blob, open2, session.chunked);
      },
      this.retry,
      this.opts.logger
    );
  }
  /** POST: a new upload session, or undefined when the registry says the blob is already complete. */
  async openUpload(digest) {
    const start = await this.send({ method: "POST", url: this.url("blobs/uploads/"), headers: { "content-length": "0" } });
    if (start.status === 201) return void 0;
    if (start.status !== 202) throw this.fail(`POST blob upload for ${digest}`, start);
    return { url: this.location(start, digest), chunked: header(start, "oci-chunk-min-length") !== void 0 };
  }
  async patchThenPut(session, blob, open2, ranged) {
    const headers = { "content-type": "application/octet-stream", "content-length": String(blob.size) };
    if (ranged) headers["content-range"] = `0-${Math.max(0, blob.size - 1)}`;
    const patch = await this.send({ method: "PATCH", url: session, headers, body: open2 });
    if (![201, 202, 204].includes(patch.status)) throw this.fail(`PATCH blob ${blob.digest}`, patch);
    const next = header(patch, "location") ? this.location(patch, blob.digest) : session;
    const put = await this.send({ method: "PUT", url: withDigest(next, blob.digest), headers: { "content-length": "0" } });
    if (put.status !== 201) throw this.fail(`PUT blob ${blob.digest}`, put);
  }
  location(res, digest) {
    const loc = header(res, "location");
    if (!loc) throw new RegistryError(`registry ${this.opts.registry} opened an upload for ${digest} without a Location`);
    return new URL(loc, this.base);
  }
  close() {
    this.transport.close();
  }
};
function header(res, name) {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
function withDigest(session, digest) {
  const url = new URL(session);
  url.searchParams.set("digest", digest);
  return url;
}

// src/registry/reference.ts
var HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$/;
var IPV6 = /^\[[0-9a-fA-F:.]+\](?::[0-9]{1,5})?$/;
var COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
var TAG = /^[\w][\w.-]{0,127}$/;
var DOCKER_HUB = /* @__PURE__ */ new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
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
  if (image.includes(":") || image.includes("@")) {
    throw new InputError("image", `expected a repository path without a tag or digest (use the tags input), got "${image}"`);
  }
  const parts = image.split("/");
  if (parts[0] === registry && parts.length > 1) {
    throw new InputError("image", `expected the repository path without the registry (it is set by the registry input), got "${image}"`);
  }
  const bad = parts.find((p) => !COMPONENT.test(p));
  if (bad !== void 0) {
    throw new InputError(
      "image",
      `expected lower-case path components of letters, digits and . _ - separated by /, got "${image}" (bad part "${bad}")`
    );
  }
  if (image.length > 255) throw new InputError("image", `expected at most 255 characters, got ${image.length}`);
  const hub = DOCKER_HUB.has(registry);
  return {
    registry,
    apiHost: hub ? "registry-1.docker.io" : registry,
    repository: hub && parts.length === 1 ? `library/${image}` : image
  };
}
function validateTag(tag, input = "tags") {
  if (tag.length > 128) throw new InputError(input, `a tag has at most 128 characters; "${tag.slice(0, 20)}\u2026" has ${tag.length}`);
  if (!TAG.test(tag)) {
    throw new InputError(input, `expected tags of letters, digits, _ . - (not starting with . or -), got "${tag}"`);
  }
}

// src/main.ts
async function run2() {
  const inputs = parseInputs(envInputReader());
  if (inputs.password) setSecret(inputs.password);
  if (inputs.githubToken) setSecret(inputs.githubToken);
  const target = parseImageName(inputs.registry, inputs.image);
  inputs.tags.forEach((t) => validateTag(t));
  inputs.reuseTags.forEach((t) => validateTag(t, "reuse-tags"));
  const buildArgs = splitArgs(inputs.buildArgs);
  const logger = actionLogger();
  let client;
  if (inputs.push) {
    const credentials = resolveCredentials({
      registry: target.registry,
      username: inputs.username,
      password: inputs.password,
      githubToken: inputs.githubToken
    });
    if (credentials) setSecret(credentials.password);
    client = new RegistryClient({
      registry: target.apiHost,
      repository: target.repository,
      insecure: inputs.insecure,
      credentials,
      logger
    });
    await client.ping();
  }
  const nix = await setupNix({
    installNix: inputs.installNix,
    nixVersion: inputs.nixVersion,
    installUrl: inputs.nixInstallUrl || void 0,
    sha256: inputs.nixSha256 || void 0,
    githubToken: inputs.githubToken || void 0,
    extraNixConf: inputs.extraNixConf || void 0
  });
  const state = { started: true };
  const cache = await restoreStoreCache({
    enabled: inputs.cache,
    keyPrefix: inputs.cacheKey || void 0,
    attr: inputs.attr,
    flake: inputs.flake,
    maxSize: inputs.cacheMaxSize,
    nix: nix.nix,
    env: nix.env
  });
  state.cache = cache.state;
  savePostState(state);
  const env = { ...process.env, ...nix.env, ...cache.env };
  const build = { nix: nix.nix, installable: `${inputs.flake}#${inputs.attr}`, buildArgs, env };
  const built = await buildImageOutput(build).catch(async (error) => {
    if (state.cache) {
      state.drvPath = await derivationOf(build);
      savePostState(state);
    }
    throw error;
  });
  state.storePath = built.storePath;
  state.drvPath = built.drvPath;
  savePostState(state);
  info(`built ${built.storePath} in ${built.seconds.toFixed(1)} s`);
  const untrusted = untrustedCacheWarning(built.ignoredSubstituters);
  if (untrusted) warning(untrusted);
  const source = await detectSource(built.storePath);
  info(`image format: ${source.format} (${source.path})`);
  const pushed = await pushImage({
    source,
    client,
    tags: inputs.tags,
    reuseTags: inputs.reuseTags,
    logger,
    tmpDir: process.env.RUNNER_TEMP || void 0
  });
  const metadata = await report({
    registry: target.registry,
    repository: target.repository,
    tags: inputs.tags,
    storePath: built.storePath,
    format: source.format,
    nixVersion: nix.version,
    cacheHit: cache.hit,
    cache: { restored: cache.hit === "false" ? void 0 : cache.restored, note: cache.note },
    buildSeconds: built.seconds,
    push: pushed
  });
  info(
    `${pushed.pushed ? "pushed" : "computed (push: false)"} ${metadata.image}: ${metadata.layers.uploaded} layer(s) uploaded, ${metadata.layers.skipped} already there`
  );
}
run2().catch((error) => {
  setFailed(errorLine(error));
});
