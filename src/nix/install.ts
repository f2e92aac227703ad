// Nix on the runner: use the one present (a multi-user Nix is always kept), or install the official
// release tarball (downloaded with @actions/tool-cache, checked against its SHA-256 — shipped for known
// versions — and cached for later jobs on the same runner under that hash), and configure it for this
// action's own invocations through NIX_CONFIG. Every setting the action adds uses Nix's `extra-` form,
// so the runner's own nix.conf and NIX_CONFIG keep their values. Secrets (the GitHub token as
// extra-access-tokens, the secret lines of extra-nix-conf) are in no environment: NIX_CONFIG names
// them with `!include` of a 0600 file in a 0700 step directory, and when build-args make evaluation
// impure (flake code could read that file) Nix gets none of them.
import * as core from '@actions/core';
import * as tc from '@actions/tool-cache';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { CHECKSUM_REQUIRED, InputError, isOfficialReleaseUrl, type InstallNix } from '../inputs/index.js';
import { withoutSecrets } from '../image/child-env.js';
import { recordTempFile, stepTempDir } from '../state.js';
import { knownSha256 } from './known-hashes.js';
import { maskNixSecrets, nixConfSecrets } from './secrets.js';
import { checkVersion } from './version.js';
import { keepSecretSettings } from './secret-settings.js';
import { sha256FileHex } from '../hash.js';

export { maskNixSecrets } from './secrets.js';

export class NixInstallError extends Error {
  override name = 'NixInstallError';
}

export interface SetupOptions {
  installNix: InstallNix;
  nixVersion: string;
  installUrl?: string;
  sha256?: string;
  githubToken?: string;
  extraNixConf?: string;
  /** Whether build-args make flake evaluation impure (evaluatesImpurely): then flake code can read any
   *  file Nix can, and Nix gets neither the token nor the secret lines of extra-nix-conf. */
  impure?: boolean;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface NixSetup {
  /** The nix binary to run. */
  nix: string;
  /** e.g. 2.31.2 */
  version: string;
  installed: boolean;
  /** Environment for this action's Nix invocations (NIX_CONFIG; its secret settings reach only the Nix
   *  processes started with spawnNix, through a FIFO each: secret-settings.ts). */
  env: Record<string, string>;
}

const PROFILE_BINS = ['/nix/var/nix/profiles/default/bin', join(homedir(), '.nix-profile', 'bin')];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A nix on PATH, else in Nix's default profile locations. */
export function findNix(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...PROFILE_BINS]) {
    const candidate = join(dir, 'nix');
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/** What the action's own invocations need on any Nix: added to the user's features, never replacing them. */
const FEATURES = 'extra-experimental-features = nix-command flakes';

/** The nix.conf lines a fresh install writes to disk: nothing secret, ever. */
export function nixSettings(opts: { trustedUser?: string } = {}): string {
  const lines = [FEATURES, 'max-jobs = auto'];
  if (opts.trustedUser) lines.push(`extra-trusted-users = ${opts.trustedUser}`);
  return `${lines.join('\n')}\n`;
}

export interface NixConfig {
  /** NIX_CONFIG for our invocations: no secret in it. */
  env: string;
  /** The nix.conf text only Nix reads (through `!include`): the token and extra-nix-conf's secret lines. */
  secret: string;
  /** Whether something secret was left out because evaluation is impure. */
  withheld: boolean;
}

/**
 * Our settings on top of the environment's: NIX_CONFIG keeps what it had, then extra-nix-conf's lines
 * without secrets (they win over the environment's), then our `extra-` settings (which clear nothing).
 * The secret lines go into `secret` (with the token as extra-access-tokens: a github.com token the
 * user's nix.conf, NIX_CONFIG or extra-nix-conf already gives wins over the job's), unless `impure`.
 */
export function nixConfig(opts: { githubToken?: string; extraNixConf?: string; impure?: boolean }, existing?: string): NixConfig {
  const plain: string[] = [];
  const secret: string[] = [];
  for (const line of (opts.extraNixConf ?? '').split(/\r?\n/)) {
    if (line.trim() === '') continue;
    (nixConfSecrets(line).length > 0 ? secret : plain).push(line);
  }
  if (opts.githubToken) secret.push(`extra-access-tokens = github.com=${opts.githubToken}`);
  const env = [existing?.trimEnd(), ...plain, FEATURES].filter(Boolean).join('\n');
  if (opts.impure) return { env, secret: '', withheld: secret.length > 0 };
  return { env, secret: secret.length > 0 ? `${secret.join('\n')}\n` : '', withheld: false };
}

/** The setting a nix.conf line sets, if any. */
function settingOf(line: string): string | undefined {
  return /^\s*([A-Za-z0-9_-]+)\s*=/.exec(line.replace(/#.*$/, ''))?.[1];
}

/** Appends the lines `file` does not have yet, and no setting the file sets already (the user's
 *  `max-jobs = 0` stays): a second run on the same runner adds nothing. */
export async function appendMissingLines(file: string, text: string): Promise<string[]> {
  const existing = existsSync(file) ? await readFile(file, 'utf8') : '';
  const lines = existing.split('\n').map((l) => l.trim());
  const have = new Set(lines);
  const set = new Set(lines.map(settingOf).filter((k): k is string => k !== undefined && !k.startsWith('extra-')));
  const missing = [...new Set(text.split('\n').map((l) => l.trim()))].filter((l) => {
    const key = settingOf(l);
    return l !== '' && !have.has(l) && !(key !== undefined && set.has(key));
  });
  if (missing.length > 0) {
    const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
    await appendFile(file, `${separator}${missing.join('\n')}\n`, { mode: 0o600 });
  }
  return missing;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, echo = false): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer) => {
      out = (out + d.toString()).slice(-32 * 1024);
      if (echo) process.stdout.write(d);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

export async function nixVersion(nix: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const { code, out } = await run(nix, ['--version'], env);
  const m = /(\d+\.\d+(?:\.\d+)?(?:[\w.+-]*)?)\s*$/m.exec(out.trim());
  if (code !== 0 || !m) throw new NixInstallError(`${nix} --version failed: ${out.trim().split('\n').pop() ?? ''}`);
  return m[1]!;
}

/** x86_64-linux or aarch64-linux, the systems Nix publishes release tarballs for that this action supports. */
export function runnerSystem(platform = process.platform, arch = process.arch): string {
  const cpu = { x64: 'x86_64', arm64: 'aarch64' }[arch as string];
  if (platform !== 'linux' || !cpu) {
    throw new NixInstallError(`cannot install Nix on a ${platform}/${arch} runner: supported are x86_64-linux and aarch64-linux`);
  }
  return `${cpu}-${platform}`;
}

export function releaseUrl(version: string, system: string): string {
  return `https://releases.nixos.org/nix/nix-${version}/nix-${version}-${system}.tar.xz`;
}

/** The published `<url>.sha256`, downloaded with tool-cache (the runner's proxy, retries) into `temp`. */
export async function publishedSha256(url: string, temp: string): Promise<string> {
  const file = join(temp, `nix-image-action-${randomUUID()}.sha256`);
  recordTempFile(file);
  let text: string;
  try {
    await tc.downloadTool(`${url}.sha256`, file);
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new NixInstallError(`cannot download ${url}.sha256: ${(e as Error).message} (give nix-sha256 to skip it)`);
  } finally {
    await rm(file, { force: true });
  }
  const hex = text.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new NixInstallError(`${url}.sha256 does not hold a SHA-256: "${hex.slice(0, 80)}"`);
  return hex;
}

/** The SHA-256 the tarball must have: nix-sha256, else the one shipped for an official release, else
 *  (official URL only) the published .sha256. */
export async function expectedSha256(url: string, sha256: string | undefined, temp: string): Promise<string> {
  if (sha256) return sha256;
  const known = knownSha256(url);
  if (known) return known;
  return publishedSha256(url, temp);
}

/** Downloads, verifies and unpacks the tarball, or finds it in the tool cache; returns the unpacked dir.
 *  The download and the unpacked copy in `temp` are recorded for the post step and removed once cached. */
async function fetchRelease(version: string, system: string, url: string, sha256: string | undefined, temp: string): Promise<string> {
  const expected = await expectedSha256(url, sha256, temp);
  // The entry is keyed by the tarball's hash: a hit is the tarball that had the expected hash, whatever
  // URL it came from, and a different nix-sha256 never finds it.
  const tool = 'nix';
  const arch = `${system}-sha256-${expected}`;
  const cached = tc.find(tool, version, arch);
  if (cached) {
    core.info(`Nix ${version} tarball (SHA-256 ${expected}) found in the tool cache: ${cached}`);
    return cached;
  }
  core.info(`downloading ${url}`);
  const file = join(temp, `nix-image-action-${randomUUID()}.tar.xz`);
  const unpacked = join(temp, `nix-image-action-${randomUUID()}`);
  recordTempFile(file);
  recordTempFile(unpacked);
  try {
    return await unpackRelease({ version, arch, url, expected, tool, file, unpacked });
  } finally {
    await rm(file, { force: true });
    await rm(unpacked, { recursive: true, force: true });
  }
}

async function unpackRelease(o: { version: string; arch: string; url: string; expected: string; tool: string; file: string; unpacked: string }): Promise<string> {
  const { version, arch, url, expected, tool, file } = o;
  try {
    await tc.downloadTool(url, file);
  } catch (e) {
    throw new NixInstallError(`cannot download the Nix tarball ${url}: ${(e as Error).message}`);
  }
  const actual = await sha256FileHex(file);
  if (actual !== expected) {
    throw new NixInstallError(`the Nix tarball ${url} has SHA-256 ${actual}, expected ${expected}: not installing it`);
  }
  let dir: string;
  try {
    // tool-cache's default flags mean gzip; the release tarballs are xz.
    dir = await tc.extractTar(file, o.unpacked, 'xJ');
  } catch (e) {
    throw new NixInstallError(`cannot unpack the Nix tarball ${url}: ${(e as Error).message}`);
  }
  return tc.cacheDir(dir, tool, version, arch);
}

function installerIn(dir: string): string {
  const direct = join(dir, 'install');
  if (existsSync(direct)) return direct;
  for (const entry of readdirSync(dir)) {
    const candidate = join(dir, entry, 'install');
    if (existsSync(candidate)) return candidate;
  }
  throw new NixInstallError(`the Nix tarball unpacked to ${dir} has no install script`);
}

function canRunDaemon(env: NodeJS.ProcessEnv): boolean {
  const root = process.getuid?.() === 0;
  const sudo = (env.PATH ?? '').split(delimiter).some((d) => executable(join(d, 'sudo')));
  return existsSync('/run/systemd/system') && (root || sudo);
}

async function install(opts: SetupOptions, env: NodeJS.ProcessEnv): Promise<string> {
  const system = runnerSystem();
  const url = opts.installUrl ?? releaseUrl(opts.nixVersion, system);
  if (!opts.sha256 && !isOfficialReleaseUrl(url)) throw new InputError('nix-install-url', CHECKSUM_REQUIRED);
  const temp = env.RUNNER_TEMP || tmpdir();
  const dir = await fetchRelease(opts.nixVersion, system, url, opts.sha256, temp);
  const installer = installerIn(dir);

  const user = env.USER || userInfo().username;
  // What must be on disk for later steps and the daemon; the token and extra-nix-conf never are.
  const settings = nixSettings({ trustedUser: user });
  const confFile = join(temp, 'nix-image-action.nix.conf');
  recordTempFile(confFile);
  await writeFile(confFile, settings, { mode: 0o600 });

  // The tarball's install script (NixOS/nix scripts/install-nix-from-tarball.sh, the same flags the
  // official https://nixos.org/nix/install passes through): --daemon | --no-daemon, --yes (no prompts),
  // --no-channel-add, --daemon-user-count N, --nix-extra-conf-file FILE.
  const daemon = canRunDaemon(env);
  const flags = daemon
    ? ['--daemon', '--yes', '--daemon-user-count', String(Math.max(4, availableParallelism())), '--no-channel-add', '--nix-extra-conf-file', confFile]
    : ['--no-daemon', '--no-channel-add', '--nix-extra-conf-file', confFile];
  core.startGroup(`${installer} ${flags.join(' ')}`);
  let result: { code: number | null; out: string };
  try {
    // The installer needs the runner's environment (USER, HOME, XDG_*, sudo's), not its credentials.
    result = await run(installer, flags, withoutSecrets(env), true);
  } finally {
    core.endGroup();
    await rm(confFile, { force: true });
  }
  if (result.code !== 0) {
    const last = result.out.trim().split('\n').slice(-2).join(' / ');
    throw new NixInstallError(`the Nix installer exited with code ${result.code}: ${last}`);
  }
  if (!daemon) {
    // The single-user installer writes no nix.conf of its own: put the settings where Nix reads them,
    // once (a self-hosted runner installing again gets no second copy).
    const confDir = join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'nix');
    await mkdir(confDir, { recursive: true });
    await appendMissingLines(join(confDir, 'nix.conf'), settings);
  }
  for (const bin of PROFILE_BINS) {
    if (executable(join(bin, 'nix'))) {
      core.addPath(bin);
      return join(bin, 'nix');
    }
  }
  throw new NixInstallError(`the Nix installer succeeded but no nix is in ${PROFILE_BINS.join(' or ')}`);
}

/** A multi-user Nix already installed (its daemon's socket, or a nix in the default profile), which the
 *  installer cannot install over: NIX_STATE_DIR and NIX_DAEMON_SOCKET_PATH as Nix reads them. */
export function multiUserNix(env: NodeJS.ProcessEnv = process.env): { nix: string; why: string } | undefined {
  const state = env.NIX_STATE_DIR || '/nix/var/nix';
  const socket = env.NIX_DAEMON_SOCKET_PATH || join(state, 'daemon-socket', 'socket');
  const profileNix = join(state, 'profiles', 'default', 'bin', 'nix');
  const why = existsSync(socket) ? `its daemon's socket ${socket}` : executable(profileNix) ? profileNix : undefined;
  if (!why) return undefined;
  const nix = executable(profileNix) ? profileNix : findNix(env);
  return nix ? { nix, why } : undefined;
}

export async function setupNix(opts: SetupOptions): Promise<NixSetup> {
  const env = opts.env ?? process.env;
  if (opts.githubToken) core.setSecret(opts.githubToken);
  maskNixSecrets({ nixInstallUrl: opts.installUrl, extraNixConf: opts.extraNixConf });
  let found: string | undefined;
  if (opts.installNix === 'true') {
    const multi = multiUserNix(env);
    if (multi) core.notice(`install-nix is true, but a multi-user Nix is installed (${multi.why}): using it (${multi.nix}) rather than installing over it`);
    found = multi?.nix;
  } else {
    found = findNix(env);
  }
  let nix: string;
  let installed = false;
  if (found) nix = found;
  else if (opts.installNix === 'false') {
    throw new InputError('install-nix', 'is false but no nix is on PATH or in /nix/var/nix/profiles/default/bin: install Nix first, or use auto');
  } else {
    nix = await install(opts, env);
    installed = true;
  }
  const config = nixConfig({ githubToken: opts.githubToken, extraNixConf: opts.extraNixConf, impure: opts.impure }, env.NIX_CONFIG);
  if (config.withheld) {
    core.notice(
      'the evaluation is impure (build-args or Nix settings), so flake code can read what Nix reads: Nix gets no github-token and none of the secret lines of extra-nix-conf; evaluate purely, or configure those credentials on the runner yourself',
    );
  }
  const version = await nixVersion(nix, { ...env, NIX_CONFIG: config.env });
  const said = checkVersion({ used: version, nix, asked: opts.nixVersion, installed });
  if (said?.level === 'error') throw new NixInstallError(said.message);
  if (said) core[said.level](said.message);
  // The secret settings reach each Nix process through a FIFO of its own (secret-settings.ts), never a file.
  const kept = config.secret === '' ? undefined : keepSecretSettings(config.secret, stepTempDir('nix-image-action-nix-'));
  if (kept && 'problem' in kept) {
    core.warning(`cannot give Nix its secret settings (github-token, the secret lines of extra-nix-conf) but through a file flake code could read: ${kept.problem}; Nix gets none of them`);
  }
  const include = kept && 'include' in kept ? kept.include : undefined;
  const nixEnv = { NIX_CONFIG: include ? `${config.env}\n${include}` : config.env };
  core.info(`${installed ? 'installed' : 'using'} Nix ${version} (${nix})`);
  return { nix, version, installed, env: nixEnv };
}
