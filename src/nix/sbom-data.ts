// What Nix knows of the store paths in an image, for its SBOM: each path's NAR hash and size, its
// references and deriver (`nix path-info --json`), its name and version (the deriver's pname/version, read
// from the .drv file; the store path's name, split as builtins.parseDrvName splits it, when the .drv is
// absent or has no pname), and the flake's locked inputs (`nix flake metadata --json`), for the provenance.
// Commands and output shapes of Nix 2.8 up to current 2.3x.
import { readDerivation, type Derivation } from './derivation.js';
import { nixOutput, nixStoreBinary, parsePathInfo, pathInfoArgs, sha256Bytes } from './store.js';

export interface StorePathFacts {
  path: string;
  name: string;
  /** '' when the name carries none. */
  version: string;
  /** Where name and version come from: the deriver's pname/version, or the store path's name. */
  nameFrom: 'derivation' | 'store-path';
  /** The deriver's output this path is, when not `out`. */
  output?: string;
  deriver?: string;
  /** false: not in the local store; only its name is known. */
  valid: boolean;
  /** The NAR hash as Nix records it (`sha256-<base64>`, or `sha256:<nix32>` in older forms). */
  narHash?: string;
  /** The same hash as 64 hexadecimal digits. */
  narSha256?: string;
  narSize?: number;
  /** Store paths this one references, itself excluded. */
  references: string[];
}

/** The store path's name: its base name without the 32-character hash. */
export function storePathName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return /^[0-9a-z]{32}-/.test(base) ? base.slice(33) : base;
}

/** builtins.parseDrvName: the version starts after the first `-` that is followed by a non-letter. */
export function parseDrvName(s: string): { name: string; version: string } {
  for (let i = 0; i + 1 < s.length; i++) {
    if (s[i] === '-' && !/[A-Za-z]/.test(s[i + 1]!)) return { name: s.slice(0, i), version: s.slice(i + 1) };
  }
  return { name: s, version: '' };
}

/** Name and version of a store path: its deriver's pname/version when it has a pname, else its own name parsed. */
export function pathIdentity(path: string, drv?: Derivation): Pick<StorePathFacts, 'name' | 'version' | 'nameFrom' | 'output'> {
  const output = drv ? Object.entries(drv.outputs).find(([, p]) => p === path)?.[0] : undefined;
  const named = output && output !== 'out' ? { output } : {};
  const pname = drv?.env.pname;
  if (pname) return { name: pname, version: drv.env.version ?? '', nameFrom: 'derivation', ...named };
  return { ...parseDrvName(storePathName(path)), nameFrom: 'store-path', ...named };
}

/** A SHA-256 as Nix writes it (SRI `sha256-<base64>`, `sha256:<nix32>` or `sha256:<hex>`) as 64 hex digits. */
export function sha256Hex(hash: string): string | undefined {
  return sha256Bytes(hash)?.toString('hex');
}

async function invalidPaths(nix: string, paths: string[], env: NodeJS.ProcessEnv): Promise<Set<string>> {
  const invalid = new Set<string>();
  for (let i = 0; i < paths.length; i += 500) {
    const out = await nixOutput(nixStoreBinary(nix), ['--check-validity', '--print-invalid', ...paths.slice(i, i + 500)], env);
    for (const p of out.split('\n').filter(Boolean)) invalid.add(p);
  }
  return invalid;
}

async function derivationOrNone(path: string | undefined): Promise<Derivation | undefined> {
  if (!path || !path.endsWith('.drv')) return undefined;
  // A path substituted from a cache comes without its .drv: its name is parsed instead.
  return readDerivation(path).catch(() => undefined);
}

/** The facts of each path (sorted, duplicates dropped); a path the store does not hold is named only. */
/** `nixVersion` picks the `path-info --json` form that Nix understands (store.ts pathInfoArgs). */
export async function storePathFacts(nix: string, paths: string[], env: NodeJS.ProcessEnv, nixVersion?: string): Promise<StorePathFacts[]> {
  const unique = [...new Set(paths)].sort();
  const invalid = await invalidPaths(nix, unique, env);
  const valid = unique.filter((p) => !invalid.has(p));
  const infos = new Map<string, { narHash?: string; narSize: number; references: string[]; deriver?: string }>();
  for (let i = 0; i < valid.length; i += 500) {
    const json = await nixOutput(nix, [...pathInfoArgs(nixVersion), ...valid.slice(i, i + 500)], env);
    // The NAR hash as Nix printed it, as the SBOM reports it.
    for (const info of parsePathInfo(json)) infos.set(info.path, { ...info, narHash: info.printedNarHash });
  }
  const drvs = new Map<string, Derivation | undefined>();
  const facts: StorePathFacts[] = [];
  for (const path of unique) {
    const info = infos.get(path);
    if (info?.deriver && !drvs.has(info.deriver)) drvs.set(info.deriver, await derivationOrNone(info.deriver));
    const drv = info?.deriver ? drvs.get(info.deriver) : undefined;
    const narSha256 = info?.narHash ? sha256Hex(info.narHash) : undefined;
    facts.push({
      path,
      ...pathIdentity(path, drv),
      ...(info?.deriver ? { deriver: info.deriver } : {}),
      valid: info !== undefined,
      ...(info?.narHash ? { narHash: info.narHash } : {}),
      ...(narSha256 ? { narSha256 } : {}),
      ...(info ? { narSize: info.narSize } : {}),
      references: (info?.references ?? []).filter((r) => r !== path).sort(),
    });
  }
  return facts;
}

/** A flake input as its lock pins it. */
export interface LockedInput {
  /** The lock file's node name (`nixpkgs`, `nixpkgs_2`, …). */
  name: string;
  /** A flake reference to exactly this version. */
  url: string;
  narHash?: string;
  rev?: string;
  /** The lock's `locked` attributes as they are. */
  locked: Record<string, unknown>;
}

export interface FlakeMetadata {
  /** The flake's locked reference (`url` of `nix flake metadata`). */
  url: string;
  /** The reference as resolved before locking. */
  resolvedUrl?: string;
  narHash?: string;
  /** The flake's own commit, for a clean git tree. */
  revision?: string;
  lastModified?: number;
  inputs: LockedInput[];
}

/** A flake reference pinning what a lock's `locked` attributes pin. */
export function lockedUrl(locked: Record<string, unknown>): string {
  const s = (k: string): string | undefined => (typeof locked[k] === 'string' ? (locked[k] as string) : undefined);
  const type = s('type') ?? 'unknown';
  const query = (params: [string, string | undefined][]): string => {
    const q = params.filter((p): p is [string, string] => p[1] !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
    return q.length ? `?${q.join('&')}` : '';
  };
  switch (type) {
    case 'github':
    case 'gitlab':
    case 'sourcehut':
      return `${type}:${s('owner')}/${s('repo')}${s('rev') ? `/${s('rev')}` : ''}${query([['host', s('host')], ['narHash', s('narHash')]])}`;
    case 'git':
    case 'mercurial': {
      const url = s('url') ?? '';
      return `${type === 'git' ? 'git' : 'hg'}+${url.replace(/^(git|hg)\+/, '')}${query([['ref', s('ref')], ['rev', s('rev')], ['narHash', s('narHash')]])}`;
    }
    case 'path':
      return `path:${s('path') ?? ''}${query([['narHash', s('narHash')]])}`;
    case 'tarball':
    case 'file':
      return `${s('url') ?? ''}`;
    case 'indirect':
      return `flake:${s('id') ?? ''}`;
    default:
      return `${type}:${JSON.stringify(locked)}`;
  }
}

/** `nix flake metadata --json`: the flake's locked reference and every locked input of its lock file. */
export function parseFlakeMetadata(json: string): FlakeMetadata {
  const m = JSON.parse(json) as {
    url?: string;
    resolvedUrl?: string;
    revision?: string;
    lastModified?: number;
    locked?: Record<string, unknown>;
    locks?: { root?: string; nodes?: Record<string, { locked?: Record<string, unknown> }> };
  };
  const root = m.locks?.root ?? 'root';
  const inputs: LockedInput[] = Object.entries(m.locks?.nodes ?? {})
    .filter(([name, node]) => name !== root && node.locked)
    .map(([name, node]) => {
      const locked = node.locked!;
      return {
        name,
        url: lockedUrl(locked),
        ...(typeof locked.narHash === 'string' ? { narHash: locked.narHash } : {}),
        ...(typeof locked.rev === 'string' ? { rev: locked.rev } : {}),
        locked,
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const narHash = m.locked?.narHash;
  return {
    url: m.url ?? m.resolvedUrl ?? '',
    ...(m.resolvedUrl ? { resolvedUrl: m.resolvedUrl } : {}),
    ...(typeof narHash === 'string' ? { narHash } : {}),
    ...(m.revision ? { revision: m.revision } : {}),
    ...(typeof m.lastModified === 'number' ? { lastModified: m.lastModified } : {}),
    inputs,
  };
}

/** The `--override-input <input> <ref>` pairs of build-args: the lock the build used, not the file's. */
export function lockArgs(buildArgs: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < buildArgs.length; i++) {
    if (buildArgs[i] === '--override-input' && i + 2 < buildArgs.length) out.push(...buildArgs.slice(i, i + 3));
  }
  return out;
}

/** The flake's lock as the build used it (build-args' --override-input pairs); the lock file is never written. */
export async function flakeMetadata(nix: string, flake: string, buildArgs: string[], env: NodeJS.ProcessEnv): Promise<FlakeMetadata> {
  return parseFlakeMetadata(await nixOutput(nix, ['flake', 'metadata', '--json', '--no-write-lock-file', ...lockArgs(buildArgs), flake], env));
}
