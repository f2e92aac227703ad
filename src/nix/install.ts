// Nix on the runner: use the one present, or install the official release tarball (downloaded with
// @actions/tool-cache, checked against its SHA-256, cached for later jobs on the same runner), and
// configure it for this action's own invocations through NIX_CONFIG. Secrets (the GitHub token as
// access-tokens, extra-nix-conf) reach Nix only through NIX_CONFIG, never a file: a fresh install's
// nix.conf gets only experimental-features, max-jobs and trusted-users.
import * as core from '@actions/core';
import * as tc from '@actions/tool-cache';
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { accessSync, constants, createReadStream, existsSync, readdirSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { CHECKSUM_REQUIRED, InputError, isOfficialReleaseUrl, type InstallNix } from '../inputs/index.js';
import { withoutSecrets } from '../image/child-env.js';
import { recordTempFile } from '../state.js';
import { maskNixSecrets } from './secrets.js';

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
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface NixSetup {
  /** The nix binary to run. */
  nix: string;
  /** e.g. 2.31.2 */
  version: string;
  installed: boolean;
  /** Environment for this action's Nix invocations (NIX_CONFIG). */
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

/** The nix.conf lines a fresh install writes to disk: nothing secret, ever. */
export function nixSettings(opts: { trustedUser?: string } = {}): string {
  const lines = ['experimental-features = nix-command flakes', 'max-jobs = auto'];
  if (opts.trustedUser) lines.push(`trusted-users = root ${opts.trustedUser}`);
  return `${lines.join('\n')}\n`;
}

/** NIX_CONFIG for our invocations: our settings and the token (masked by setupNix), then what the
 *  environment already had, then extra-nix-conf (last wins). */
export function nixConfigEnv(opts: { githubToken?: string; extraNixConf?: string }, existing?: string): string {
  const ours = [nixSettings().trimEnd(), ...(opts.githubToken ? [`access-tokens = github.com=${opts.githubToken}`] : [])];
  return [...ours, existing?.trimEnd(), opts.extraNixConf?.trimEnd()].filter(Boolean).join('\n');
}

/** Appends the lines `file` does not have yet: a second run on the same runner adds nothing. */
export async function appendMissingLines(file: string, text: string): Promise<string[]> {
  const existing = existsSync(file) ? await readFile(file, 'utf8') : '';
  const have = new Set(existing.split('\n').map((l) => l.trim()));
  const missing = [...new Set(text.split('\n').map((l) => l.trim()))].filter((l) => l !== '' && !have.has(l));
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

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function publishedSha256(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${url}.sha256`);
  } catch (e) {
    throw new NixInstallError(`cannot download ${url}.sha256: ${(e as Error).message}`);
  }
  if (!res.ok) throw new NixInstallError(`cannot download ${url}.sha256: HTTP ${res.status} (give nix-sha256 to skip it)`);
  const hex = (await res.text()).trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new NixInstallError(`${url}.sha256 does not hold a SHA-256: "${hex.slice(0, 80)}"`);
  return hex;
}

/** Downloads, verifies and unpacks the tarball, or finds it in the tool cache; returns the unpacked dir.
 *  The download and the unpacked copy in `temp` are recorded for the post step and removed once cached. */
async function fetchRelease(version: string, system: string, url: string, sha256: string | undefined, temp: string): Promise<string> {
  // A custom URL gets its own tool-cache entry so it never shadows the official tarball of the same version.
  const tool = url === releaseUrl(version, system) ? 'nix' : `nix-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
  const cached = tc.find(tool, version, system);
  if (cached) {
    core.info(`Nix ${version} tarball found in the tool cache: ${cached}`);
    return cached;
  }
  core.info(`downloading ${url}`);
  const file = join(temp, `nix-image-action-${randomUUID()}.tar.xz`);
  const unpacked = join(temp, `nix-image-action-${randomUUID()}`);
  recordTempFile(file);
  recordTempFile(unpacked);
  try {
    return await unpackRelease({ version, system, url, sha256, tool, file, unpacked });
  } finally {
    await rm(file, { force: true });
    await rm(unpacked, { recursive: true, force: true });
  }
}

async function unpackRelease(o: { version: string; system: string; url: string; sha256?: string; tool: string; file: string; unpacked: string }): Promise<string> {
  const { version, system, url, sha256, tool, file } = o;
  try {
    await tc.downloadTool(url, file);
  } catch (e) {
    throw new NixInstallError(`cannot download the Nix tarball ${url}: ${(e as Error).message}`);
  }
  const expected = sha256 ?? (await publishedSha256(url));
  const actual = await sha256File(file);
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
  return tc.cacheDir(dir, tool, version, system);
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

export async function setupNix(opts: SetupOptions): Promise<NixSetup> {
  const env = opts.env ?? process.env;
  if (opts.githubToken) core.setSecret(opts.githubToken);
  maskNixSecrets({ nixInstallUrl: opts.installUrl, extraNixConf: opts.extraNixConf });
  const found = opts.installNix === 'true' ? undefined : findNix(env);
  let nix: string;
  let installed = false;
  if (found) nix = found;
  else if (opts.installNix === 'false') {
    throw new InputError('install-nix', 'is false but no nix is on PATH or in /nix/var/nix/profiles/default/bin: install Nix first, or use auto');
  } else {
    nix = await install(opts, env);
    installed = true;
  }
  const nixEnv = { NIX_CONFIG: nixConfigEnv({ githubToken: opts.githubToken, extraNixConf: opts.extraNixConf }, env.NIX_CONFIG) };
  const version = await nixVersion(nix, { ...env, ...nixEnv });
  core.info(`${installed ? 'installed' : 'using'} Nix ${version} (${nix})`);
  return { nix, version, installed, env: nixEnv };
}
