import { spawnSync } from 'node:child_process';
// The environment of programs the action runs that it did not write: an image's stream script (code
// from the flake, run outside Nix's sandbox), a decompressor reading the archive, a downloaded
// installer. None of them gets the action's inputs (INPUT_*, holding the password and tokens), the
// runner's tokens (ACTIONS_*, GITHUB_TOKEN), the runner's AWS credentials (AWS_*), the registry credential
// files, or NIX_CONFIG (the runner's may hold access-tokens; the action's names the file that holds its own).

/** What a program from the build output needs to run; everything else is dropped. */
const KEEP = ['PATH', 'TMPDIR', 'HOME', 'LANG', 'LC_ALL', 'TZ'] as const;

/** Only PATH, TMPDIR, HOME, LANG, LC_ALL and TZ of `env`: for code from the flake. */
export function scrubbedEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const key of KEEP) if (env[key] !== undefined) out[key] = env[key];
  return out;
}

/** Variables that carry credentials, or name where they are. AWS_* (what aws-actions/configure-aws-credentials
 *  sets) go only to the action's own `nix copy` to an S3 binary cache (nix/remote-cache.ts). */
export function isSecretVariable(name: string): boolean {
  return (
    /^(INPUT_|ACTIONS_|STATE_|AWS_)/i.test(name) ||
    ['GITHUB_TOKEN', 'GH_TOKEN', 'DOCKER_CONFIG', 'DOCKER_AUTH_CONFIG', 'REGISTRY_AUTH_FILE', 'NIX_CONFIG'].includes(name.toUpperCase())
  );
}

/** `env` without the credential variables, for a program that needs the rest of the runner's environment
 *  (the Nix installer reads USER, XDG_*, NIX_INSTALLER_* and whatever its sudo needs). */
export function withoutSecrets(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !isSecretVariable(k)));
}

/** The user code from the flake runs as, where the action can choose one: nobody. */
const NOBODY = 65534;

export interface StrangerCommand {
  command: string;
  args: string[];
  /** Spawn options: the user and group to run as (root only). */
  uid?: number;
  gid?: number;
  env: NodeJS.ProcessEnv;
  /** Why it runs as the runner's own user after all, when it does. */
  sameUser?: string;
}

let sudoWorks: boolean | undefined;

/**
 * How to run code from the flake outside Nix's sandbox (an image's stream script) so that it cannot read
 * the action's secrets: an environment of its own is not enough, as a process of the same user can read
 * its parent's /proc/<pid>/environ (the action's INPUT_* variables) and the files the action keeps for
 * Nix. So it runs as nobody: directly when the action is root, through `sudo -n -u nobody` where the
 * runner user may (GitHub's hosted runners), else as the runner user, and `sameUser` says so.
 */
export function asStranger(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): StrangerCommand {
  // nobody can write no runner directory: its temporary files go to /tmp, and it has no home.
  const own = { ...scrubbedEnv(env), TMPDIR: '/tmp', HOME: '/' };
  if (process.getuid?.() === 0) return { command, args, uid: NOBODY, gid: NOBODY, env: own };
  sudoWorks ??= spawnSync('sudo', ['-n', '-u', 'nobody', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  if (sudoWorks) return { command: 'sudo', args: ['-n', '-u', 'nobody', '--', command, ...args], env: own };
  return {
    command,
    args,
    env: scrubbedEnv(env),
    sameUser: 'neither root nor passwordless sudo here, so it runs as the runner user: code of the flake could read what the action holds (its inputs, the token for Nix)',
  };
}
