// Which Nix the action runs with: the version nix-version asks for (action.yml's default is
// DEFAULT_NIX_VERSION), and the oldest Nix the action works with.
/** action.yml's default for nix-version. */
export const DEFAULT_NIX_VERSION = '2.35.2';

/** The oldest Nix with everything the action uses: flakes, access-tokens and `extra-` settings,
 *  `nix build --json`, `nix path-info --json`, `nix-store --realise` (all in 2.4). */
export const OLDEST_NIX = '2.4';

/** The numeric parts of a version: 2.18.0pre20230101_abc → [2, 18, 0]. */
function parts(version: string): number[] {
  const m = /^(\d+(?:\.\d+)*)/.exec(version.trim());
  return m ? m[1]!.split('.').map(Number) : [];
}

/** Whether `version` is `floor` or newer (missing parts count as 0). */
export function atLeast(version: string, floor: string): boolean {
  const a = parts(version);
  const b = parts(floor);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export interface VersionCheck {
  /** The version of the Nix that will run. */
  used: string;
  /** Where it is. */
  nix: string;
  /** nix-version. */
  asked: string;
  /** Whether the action installed it (else it was on the runner already). */
  installed: boolean;
}

/**
 * What to say about the Nix used: an error when it is older than OLDEST_NIX; else, when it is not the one
 * asked for, a notice when nix-version is the default (a Nix already on the runner is the normal case)
 * and a warning when the job asked for another version. Undefined when they agree.
 */
export function checkVersion(c: VersionCheck): { level: 'error' | 'notice' | 'warning'; message: string } | undefined {
  if (!atLeast(c.used, OLDEST_NIX)) {
    return {
      level: 'error',
      message: `Nix ${c.used} (${c.nix}) is older than ${OLDEST_NIX}, the oldest this action supports: upgrade it, or set install-nix: true to install Nix ${c.asked}`,
    };
  }
  if (c.asked === '' || sameVersion(c.used, c.asked)) return undefined;
  if (c.installed) {
    return { level: 'warning', message: `nix-version is ${c.asked} but the Nix installed reports ${c.used} (${c.nix})` };
  }
  if (c.asked === DEFAULT_NIX_VERSION) {
    return { level: 'notice', message: `using the Nix ${c.used} already on the runner (${c.nix}), not ${c.asked}: set nix-version and install-nix: true to install another` };
  }
  return {
    level: 'warning',
    message: `nix-version is ${c.asked} but Nix ${c.used} is already on the runner (${c.nix}) and is used: set install-nix: true to install ${c.asked}`,
  };
}

function sameVersion(a: string, b: string): boolean {
  return a === b || parts(a).join('.') === parts(b).join('.');
}
