// Queries of the local Nix store, through commands both Nix 2.8 and current 2.3x understand.
import { atLeast } from './version.js';
import { spawnNix } from './secret-settings.js';

export interface PathInfo {
  path: string;
  /** The NAR's SHA-256 as a narinfo and a signature fingerprint name it: `sha256:<Nix base32>`. */
  narHash: string;
  /** The same, as this Nix printed it (SRI since 2.4): what an SBOM reports. */
  printedNarHash?: string;
  narSize: number;
  references: string[];
  deriver?: string;
  /** Signatures the path carries: of the caches it came from, and of this machine's secret-key-files. */
  signatures: string[];
  /** Built on this machine (Nix's "ultimate" trust), not substituted. */
  ultimate: boolean;
}

/** A Nix command that failed: the message is one line; stderr keeps the tail of what Nix said. */
export class NixCommandError extends Error {
  override name = 'NixCommandError';
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface NixRunOptions {
  /** Called with each line Nix writes to stderr, as it comes. */
  onStderrLine?: (line: string) => void;
}

/** Runs a Nix command and returns stdout; a failure is one line with the command and its last error line. */
export function nixOutput(command: string, args: string[], env: NodeJS.ProcessEnv, opts: NixRunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawnNix(command, args, env);
    const out: Buffer[] = [];
    let err = '';
    let partial = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      err = (err + text).slice(-16000);
      if (opts.onStderrLine) {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        lines.forEach(opts.onStderrLine);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (partial && opts.onStderrLine) opts.onStderrLine(partial);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else {
        const last = err.trim().split('\n').filter((l) => l.trim() && !/--show-trace/.test(l) && !l.startsWith('@nix ')).slice(-1)[0] ?? '';
        reject(new NixCommandError(`${command} ${args.slice(0, 2).join(' ')} … failed (exit ${code}): ${last}`, err));
      }
    });
  });
}

/** The sibling of the nix binary: nix-store lives beside nix in every installation. */
export function nixStoreBinary(nix: string): string {
  return nix.endsWith('/nix') ? `${nix}-store` : 'nix-store';
}

/** Closure of the given paths (the paths included), as the store knows it. */
export async function closure(nix: string, paths: string[], env: NodeJS.ProcessEnv, includeOutputs = false): Promise<string[]> {
  if (paths.length === 0) return [];
  const args = ['--query', '--requisites', ...(includeOutputs ? ['--include-outputs'] : []), ...paths];
  return (await nixOutput(nixStoreBinary(nix), args, env)).split('\n').filter(Boolean);
}

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** Nix's base32 (its own alphabet and bit order), as narinfo NarHash fields carry it. */
export function nixBase32(bytes: Buffer): string {
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    out += NIX_BASE32[c & 0x1f];
  }
  return out;
}

/** Nix's base-32 (least significant digit last, its own alphabet) to `size` bytes; undefined for a digit
 *  outside the alphabet or a value that does not fit. */
function fromNixBase32(text: string, size: number): Buffer | undefined {
  const bytes = Buffer.alloc(size);
  for (let n = 0; n < text.length; n++) {
    const digit = NIX_BASE32.indexOf(text[text.length - n - 1]!);
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    bytes[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < size) bytes[i + 1]! |= carry;
    else if (carry) return undefined;
  }
  return bytes;
}

/**
 * A SHA-256 as Nix prints it — SRI (`sha256-<base64>`, path-info since 2.4), `sha256:<base32>` or
 * `sha256:<hex>`, or `{ algorithm, format, hash }` — as `sha256:<Nix base32>`; undefined for anything else.
 */
export function normaliseNarHash(value: unknown): string | undefined {
  const bytes = sha256Bytes(value);
  return bytes ? `sha256:${nixBase32(bytes)}` : undefined;
}

/** The 32 bytes of a SHA-256 in any of the forms normaliseNarHash takes; undefined for anything else. */
export function sha256Bytes(value: unknown): Buffer | undefined {
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const algorithm = o.algorithm ?? o.algo;
    if (algorithm !== 'sha256' || typeof o.hash !== 'string') return undefined;
    return sha256Bytes(o.format === 'base16' || o.format === 'nix32' || o.format === 'base32' ? `sha256:${o.hash}` : `sha256-${o.hash}`);
  }
  if (typeof value !== 'string') return undefined;
  const sri = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(value);
  const colon = /^sha256:([0-9a-z]+)$/.exec(value);
  let bytes: Buffer | undefined;
  if (sri) bytes = Buffer.from(sri[1]!, 'base64');
  else if (colon && colon[1]!.length === 64 && /^[0-9a-f]+$/.test(colon[1]!)) bytes = Buffer.from(colon[1]!, 'hex');
  else if (colon && colon[1]!.length === 52) bytes = fromNixBase32(colon[1]!, 32);
  return bytes?.length === 32 ? bytes : undefined;
}

/** `nix path-info --json`: an array of objects in Nix 2.8, an object keyed by path since 2.19. */
export function parsePathInfo(json: string): PathInfo[] {
  const parsed = JSON.parse(json) as unknown;
  const rows: [string, Record<string, unknown>][] = Array.isArray(parsed)
    ? (parsed as Record<string, unknown>[]).map((r) => [String(r.path), r])
    : Object.entries(parsed as Record<string, Record<string, unknown>>);
  const storePath = (p: string) => (p.startsWith('/') ? p : `/nix/store/${p}`);
  return rows
    .filter(([, r]) => r && typeof r === 'object' && r.narSize !== undefined)
    .map(([path, r]) => ({
      path: storePath(path),
      narHash: normaliseNarHash(r.narHash) ?? '',
      ...(typeof r.narHash === 'string' ? { printedNarHash: r.narHash } : {}),
      narSize: Number(r.narSize),
      references: Array.isArray(r.references) ? (r.references as string[]).map(storePath) : [],
      ...(typeof r.deriver === 'string' ? { deriver: storePath(r.deriver) } : {}),
      signatures: Array.isArray(r.signatures) ? (r.signatures as unknown[]).map((s) => (typeof s === 'string' ? s : `${(s as { keyName?: string }).keyName}:${(s as { sig?: string }).sig}`)) : [],
      ultimate: r.ultimate === true,
    }));
}

/**
 * `nix path-info --json` as the Nix of this version takes it: 2.33 and later warn that `--json` alone
 * will become an error and take `--json-format 1` (the shape 2.19–2.32 print); older ones know no
 * `--json-format`. An unknown version is taken as an old one.
 */
export function pathInfoArgs(nixVersion: string | undefined): string[] {
  return ['path-info', '--json', ...(nixVersion && atLeast(nixVersion, '2.33') ? ['--json-format', '1'] : [])];
}

export async function pathInfo(nix: string, paths: string[], env: NodeJS.ProcessEnv, nixVersion?: string): Promise<PathInfo[]> {
  const out: PathInfo[] = [];
  // Batches keep the command line well under ARG_MAX.
  for (let i = 0; i < paths.length; i += 500) {
    out.push(...parsePathInfo(await nixOutput(nix, [...pathInfoArgs(nixVersion), ...paths.slice(i, i + 500)], env)));
  }
  return out;
}
