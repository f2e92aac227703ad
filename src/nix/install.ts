// Nix on the runner: use the one present, or install the official release tarball (downloaded with
// @actions/tool-cache, checked against its SHA-256, cached for later jobs on the same runner), and
// configure it for this action's own invocations through NIX_CONFIG.
import * as core from '@actions/core';
import * as tc from '@actions/tool-cache';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, createReadStream, existsSync, readdirSync } from 'node:fs';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { InputError, type InstallNix } from '../inputs/index.js';

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

/** The settings this action needs, as nix.conf lines. The token is masked by the caller. */
export function nixSettings(opts: { githubToken?: string; extraNixConf?: string; trustedUser?: string }): string {
  const lines = ['experimental-features = nix-command flakes', 'max-jobs = auto'];
  if (opts.trustedUser) lines.push(`trusted-users = root ${opts.trustedUser}`);
  if (opts.githubToken) lines.push(`access-tokens = github.com=${opts.githubToken}`);
  if (opts.extraNixConf) lines.push(opts.extraNixConf.trimEnd());
  return `${lines.join('\n')}\n`;
}

/** NIX_CONFIG for our invocations: our settings, then what the environment already had, then extra-nix-conf (last wins). */
export function nixConfigEnv(opts: { githubToken?: string; extraNixConf?: string }, existing?: string): string {
  const ours = nixSettings({ githubToken: opts.githubToken });
  return [ours.trimEnd(), existing?.trimEnd(), opts.extraNixConf?.trimEnd()].filter(Boolean).join('\n');
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

/** Downloads, verifies and unpacks the tarball, or finds it in the tool cache; returns the unpacked dir. */
async function fetchRelease(version: string, system: string, url: string, sha256?: string): Promise<string> {
  // A custom URL gets its own tool-cache entry so it never shadows the official tarball of the same version.
  const tool = url === releaseUrl(version, system) ? 'nix' : `nix-${createHash('sha256').update(url).digest('hex').slice(0, 12)}`;
  const cached = tc.find(tool, version, system);
  if (cached) {
    core.info(`Nix ${version} tarball found in the tool cache: ${cached}`);
    return cached;
  }
  core.info(`downloading ${url}`);
  let file: string;
  try {
    file = await tc.downloadTool(url);
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
    dir = await tc.extractTar(file, undefined, 'xJ');
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
  const dir = await fetchRelease(opts.nixVersion, system, url, opts.sha256);
  const installer = installerIn(dir);

  const user = env.USER || userInfo().username;
  const settings = nixSettings({ githubToken: opts.githubToken, extraNixConf: opts.extraNixConf, trustedUser: user });
  const temp = env.RUNNER_TEMP || tmpdir();
  const confFile = join(temp, 'nix-image-action.nix.conf');
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
    result = await run(installer, flags, env, true);
  } finally {
    core.endGroup();
  }
  if (result.code !== 0) {
    const last = result.out.trim().split('\n').slice(-2).join(' / ');
    throw new NixInstallError(`the Nix installer exited with code ${result.code}: ${last}`);
  }
  if (!daemon) {
    // The single-user installer writes no nix.conf of its own: put the settings where Nix reads them.
    const confDir = join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'nix');
    await mkdir(confDir, { recursive: true });
    await appendFile(join(confDir, 'nix.conf'), settings, { mode: 0o600 });
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
