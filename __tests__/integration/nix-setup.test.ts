// setupNix with the real Nix (Debian's 2.8): the user's own settings are kept beside the action's, the
// token reaches Nix through a file only Nix reads and never any environment flake code can read, an
// impure evaluation gets no token at all, the version used is reported or refused, and a multi-user Nix
// is kept rather than installed over.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withoutSecrets } from '../../src/image/child-env.js';
import { setupNix, type SetupOptions } from '../../src/nix/install.js';
import { evaluatesImpurely } from '../../src/nix/secrets.js';
import { nixOutput } from '../../src/nix/store.js';
import { DEFAULT_NIX_VERSION } from '../../src/nix/version.js';
import { pathWithoutNix, testNixConfig } from '../support/nix.js';

const run = promisify(execFile);
const TOKEN = 'ghs_jobTokenForNixSetupTest0123456789';

let runnerTemp: string;
const savedTemp = process.env.RUNNER_TEMP;
beforeAll(async () => {
  runnerTemp = await mkdtemp(join(tmpdir(), 'nia-runner-temp-'));
  process.env.RUNNER_TEMP = runnerTemp;
});
afterAll(() => {
  if (savedTemp === undefined) delete process.env.RUNNER_TEMP;
  else process.env.RUNNER_TEMP = savedTemp;
});

/** Runs setupNix and returns what it printed as workflow commands (::notice::, ::warning::). */
async function setup(opts: Partial<SetupOptions> & { env: NodeJS.ProcessEnv }) {
  const lines: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    lines.push(...String(chunk).split('\n').filter((l) => /^::(notice|warning|error)/.test(l)));
    return (write as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    const nix = await setupNix({ installNix: 'auto', nixVersion: '2.8.0', ...opts });
    return { nix, commands: lines };
  } finally {
    process.stdout.write = write;
  }
}

/** A HOME whose nix.conf holds the user's own settings. */
async function userHome(conf: string): Promise<NodeJS.ProcessEnv> {
  const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
  await mkdir(join(home, '.config', 'nix'), { recursive: true });
  await writeFile(join(home, '.config', 'nix', 'nix.conf'), conf);
  return { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
}

/** Nix's settings, as a Nix process the action starts sees them (nixOutput: secret settings included). */
async function showConfig(env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const stdout = await nixOutput('nix', ['show-config'], env);
  return Object.fromEntries(stdout.split('\n').filter((l) => l.includes(' = ')).map((l) => [l.slice(0, l.indexOf(' = ')), l.slice(l.indexOf(' = ') + 3)]));
}

describe("the user's Nix settings", () => {
  it('are kept beside the action’s: features, every access token, max-jobs, a github.com token of their own', async () => {
    const env = await userHome(
      ['experimental-features = nix-command ca-derivations', 'access-tokens = github.com=ghp_userOwnPat gitlab.com=PAT:glpat-user', 'max-jobs = 0', ''].join('\n'),
    );
    const { nix } = await setup({ env, githubToken: TOKEN });
    const config = await showConfig({ ...env, ...nix.env });
    expect(config['experimental-features']!.split(' ').sort()).toEqual(['ca-derivations', 'flakes', 'nix-command']);
    // The user's own github.com token wins over the job's; the GitLab one stays.
    expect(config['access-tokens']).toBe('github.com=ghp_userOwnPat gitlab.com=PAT:glpat-user');
    expect(config['max-jobs']).toBe('0');
  });

  it('and the environment’s NIX_CONFIG too; the job token is added for github.com when the user has none', async () => {
    const env = { ...(await userHome('access-tokens = gitlab.com=PAT:glpat-user\n')), NIX_CONFIG: `${testNixConfig}\nextra-experimental-features = ca-derivations` };
    const { nix } = await setup({ env, githubToken: TOKEN, extraNixConf: 'extra-access-tokens = git.example=tok-extra\ncores = 1' });
    const config = await showConfig({ ...env, ...nix.env });
    expect(config['access-tokens']!.split(' ').sort()).toEqual(['git.example=tok-extra', `github.com=${TOKEN}`, 'gitlab.com=PAT:glpat-user']);
    expect(config['experimental-features']!.split(' ').sort()).toEqual(['ca-derivations', 'flakes', 'nix-command']);
    expect(config.substituters).toBe('');
    expect(config.cores).toBe('1');
    // No secret is in the environment, nor in any file: NIX_CONFIG's include names nothing that exists (each
    // Nix process reads the settings from a FIFO of its own, gone once read).
    expect(nix.env.NIX_CONFIG).not.toContain(TOKEN);
    expect(nix.env.NIX_CONFIG).not.toContain('tok-extra');
    const include = /^!include (\S+)$/m.exec(nix.env.NIX_CONFIG!)?.[1];
    expect(include && include.startsWith(runnerTemp)).toBe(true);
    expect(existsSync(include!)).toBe(false);
    expect(await filesHolding(runnerTemp, [TOKEN, 'tok-extra'])).toEqual([]);
    // A Nix process started otherwise (the runner's own nix) gets none of them, and does not wait for them.
    const { stdout } = await run('nix', ['show-config'], { env: { ...env, ...nix.env }, timeout: 30_000 });
    expect(stdout).not.toContain(TOKEN);
  });
});

/** Regular files under `dir` holding any of `needles` (FIFOs and other special files are not opened). */
async function filesHolding(dir: string, needles: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (!entry.isFile()) continue;
    const text = await readFile(path, 'utf8').catch(() => '');
    if (needles.some((n) => text.includes(n))) found.push(path);
  }
  return found;
}

describe('flake code in a pure evaluation', () => {
  it('finds no token in the folders it can copy into the store (a path: input of RUNNER_TEMP)', async () => {
    const env = { ...(await userHome('')), NIX_CONFIG: testNixConfig };
    const { nix } = await setup({ env, githubToken: TOKEN });
    const flake = await mkdtemp(join(tmpdir(), 'nia-pathinput-'));
    // Every regular file of the copied folder, read in the evaluation.
    await writeFile(
      join(flake, 'flake.nix'),
      [
        '{',
        `  inputs.temp = { url = "path:${runnerTemp}"; flake = false; };`,
        '  outputs = { self, temp }: let',
        '    walk = dir: builtins.concatLists (map (n: let t = (builtins.readDir dir).${n}; p = dir + "/${n}"; in',
        '      if t == "directory" then walk p else if t == "regular" then [ (builtins.readFile p) ] else [ ]) (builtins.attrNames (builtins.readDir dir)));',
        '  in { seen = builtins.concatStringsSep "\n" (walk temp); };',
        '}',
        '',
      ].join('\n'),
    );
    // The token does work for this Nix process (it reaches the settings), yet the copy holds none of it.
    expect((await showConfig({ ...env, ...nix.env }))['access-tokens']).toBe(`github.com=${TOKEN}`);
    const seen = await nixOutput('nix', ['eval', '--raw', `path:${flake}#seen`], { ...env, ...nix.env });
    expect(seen).not.toContain(TOKEN);
  });
});

describe('flake code under --impure', () => {
  let flake: string;
  beforeAll(async () => {
    flake = await mkdtemp(join(tmpdir(), 'nia-impure-'));
    await writeFile(
      join(flake, 'flake.nix'),
      [
        '{',
        '  outputs = { self }: {',
        '    leak = derivation {',
        '      name = "leak";',
        '      system = builtins.currentSystem;',
        '      builder = "/bin/sh";',
        '      args = [ "-c" "echo \\"$conf\\" > $out" ];',
        '      conf = builtins.getEnv "NIX_CONFIG";',
        '      home = builtins.getEnv "HOME";',
        '    };',
        '  };',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('finds no token in the environment, the .drv or the output', async () => {
    const buildArgs = ['--impure'];
    const env = { ...(await userHome('')), NIX_CONFIG: testNixConfig };
    const { nix, commands } = await setup({ env, githubToken: TOKEN, extraNixConf: 'access-tokens = gitlab.com=glpat-extra-secret', impure: evaluatesImpurely(buildArgs) });
    expect(commands).toEqual([
      '::notice::the evaluation is impure (build-args or Nix settings), so flake code can read what Nix reads: Nix gets no github-token and none of the secret lines of extra-nix-conf; evaluate purely, or configure those credentials on the runner yourself',
    ]);
    // As main.ts runs Nix: the runner's environment without its credentials, and setupNix's.
    const buildEnv = { ...withoutSecrets({ ...env, GITHUB_TOKEN: TOKEN, 'INPUT_GITHUB-TOKEN': TOKEN }), ...nix.env };
    const { stdout } = await run('nix', ['build', '--no-link', '--json', `path:${flake}#leak`, ...buildArgs], { env: buildEnv });
    const [built] = JSON.parse(stdout) as { drvPath: string; outputs: { out: string } }[];
    const drv = await readFile(built!.drvPath, 'utf8');
    const out = await readFile(built!.outputs.out, 'utf8');
    // The flake did read NIX_CONFIG: the test would see a token there.
    expect(drv).toContain('extra-experimental-features = nix-command flakes');
    for (const text of [drv, out, JSON.stringify(buildEnv)]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('glpat-extra-secret');
      expect(text).not.toContain('!include');
    }
  });
});

describe('the Nix version', () => {
  it('a notice when the Nix on the runner is not the default version, a warning when the job asked for another', async () => {
    const env = await userHome('');
    const byDefault = await setup({ env, nixVersion: DEFAULT_NIX_VERSION });
    expect(byDefault.nix.version).toBe('2.8.0');
    expect(byDefault.commands).toEqual([
      `::notice::using the Nix 2.8.0 already on the runner (/usr/bin/nix), not ${DEFAULT_NIX_VERSION}: set nix-version and install-nix: true to install another`,
    ]);
    const asked = await setup({ env, nixVersion: '2.30.1' });
    expect(asked.commands).toEqual([
      '::warning::nix-version is 2.30.1 but Nix 2.8.0 is already on the runner (/usr/bin/nix) and is used: set install-nix: true to install 2.30.1',
    ]);
    expect((await setup({ env, nixVersion: '2.8.0' })).commands).toEqual([]);
  });

  it('refuses a Nix older than the oldest the action supports', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'nia-oldnix-'));
    await writeFile(join(bin, 'nix'), '#!/bin/sh\necho "nix (Nix) 2.3.16"\n');
    await chmod(join(bin, 'nix'), 0o755);
    const env = { ...(await userHome('')), PATH: `${bin}:${await pathWithoutNix()}` };
    await expect(setup({ env, nixVersion: DEFAULT_NIX_VERSION })).rejects.toThrow(
      `Nix 2.3.16 (${bin}/nix) is older than 2.4, the oldest this action supports: upgrade it, or set install-nix: true to install Nix ${DEFAULT_NIX_VERSION}`,
    );
  });
});

describe('install-nix: true on a runner with a multi-user Nix', () => {
  it('keeps it, with a notice, and installs nothing', async () => {
    // A state directory of its own (NIX_STATE_DIR, as Nix reads it): the machine's /nix stays untouched.
    const state = await mkdtemp(join(tmpdir(), 'nia-state-'));
    await mkdir(join(state, 'daemon-socket'));
    const socketPath = join(state, 'daemon-socket', 'socket');
    const daemon = createServer();
    await new Promise<void>((r) => daemon.listen(socketPath, r));
    try {
      const bin = join(state, 'profiles', 'default', 'bin');
      await mkdir(bin, { recursive: true });
      await writeFile(join(bin, 'nix'), '#!/bin/sh\nexec /usr/bin/nix "$@"\n');
      await chmod(join(bin, 'nix'), 0o755);
      const home = await userHome('');
      const env = { ...home, PATH: await pathWithoutNix(), NIX_STATE_DIR: state };
      // No tarball anywhere: an install attempt would fail.
      const { nix, commands } = await setup({ env, installNix: 'true', installUrl: 'http://127.0.0.1:9/none.tar.xz', sha256: 'ab'.repeat(32) });
      expect(nix).toMatchObject({ nix: join(bin, 'nix'), version: '2.8.0', installed: false });
      expect(commands).toEqual([
        `::notice::install-nix is true, but a multi-user Nix is installed (its daemon's socket ${socketPath}): using it (${join(bin, 'nix')}) rather than installing over it`,
      ]);
      expect(existsSync(join(home.HOME!, '.nix-profile'))).toBe(false);
    } finally {
      daemon.close();
    }
  });
});
