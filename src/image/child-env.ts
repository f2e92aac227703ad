// The environment of programs the action runs that it did not write: an image's stream script (code
// from the flake, run outside Nix's sandbox), a decompressor reading the archive, a downloaded
// installer. None of them gets the action's inputs (INPUT_*, holding the password and tokens), the
// runner's tokens (ACTIONS_*, GITHUB_TOKEN), the registry credential files, or NIX_CONFIG (the runner's may
// hold access-tokens; the action's names the file that holds its own).

/** What a program from the build output needs to run; everything else is dropped. */
const KEEP = ['PATH', 'TMPDIR', 'HOME', 'LANG', 'LC_ALL', 'TZ'] as const;

/** Only PATH, TMPDIR, HOME, LANG, LC_ALL and TZ of `env`: for code from the flake. */
export function scrubbedEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const key of KEEP) if (env[key] !== undefined) out[key] = env[key];
  return out;
}

/** Variables that carry credentials, or name where they are. */
export function isSecretVariable(name: string): boolean {
  return (
    /^(INPUT_|ACTIONS_|STATE_)/i.test(name) ||
    ['GITHUB_TOKEN', 'GH_TOKEN', 'DOCKER_CONFIG', 'DOCKER_AUTH_CONFIG', 'REGISTRY_AUTH_FILE', 'NIX_CONFIG'].includes(name.toUpperCase())
  );
}

/** `env` without the credential variables, for a program that needs the rest of the runner's environment
 *  (the Nix installer reads USER, XDG_*, NIX_INSTALLER_* and whatever its sudo needs). */
export function withoutSecrets(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !isSecretVariable(k)));
}
