// Queries of the local Nix store, through commands both Nix 2.8 and current 2.3x understand.
import { spawn } from 'node:child_process';

export interface PathInfo {
  path: string;
  narSize: number;
  references: string[];
  deriver?: string;
  /** Signatures of the caches the path came from (empty for paths built here). */
  signatures: string[];
}

/** Runs a Nix command and returns stdout; a failure is one line with the command and its last error line. */
export function nixOutput(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else {
        const last = err.trim().split('\n').filter((l) => l.trim() && !/--show-trace/.test(l)).slice(-1)[0] ?? '';
        reject(new Error(`${command} ${args.slice(0, 2).join(' ')} … failed (exit ${code}): ${last}`));
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

/** `nix path-info --json`: an array of objects in Nix 2.8, an object keyed by path since 2.19. */
export function parsePathInfo(json: string): PathInfo[] {
  const parsed = JSON.parse(json) as unknown;
  const rows: [string, Record<string, unknown>][] = Array.isArray(parsed)
    ? (parsed as Record<string, unknown>[]).map((r) => [String(r.path), r])
    : Object.entries(parsed as Record<string, Record<string, unknown>>);
  return rows
    .filter(([, r]) => r && typeof r === 'object' && r.narSize !== undefined)
    .map(([path, r]) => ({
      path,
      narSize: Number(r.narSize),
      references: Array.isArray(r.references) ? (r.references as string[]) : [],
      ...(typeof r.deriver === 'string' ? { deriver: r.deriver } : {}),
      signatures: Array.isArray(r.signatures) ? (r.signatures as string[]) : [],
    }));
}

export async function pathInfo(nix: string, paths: string[], env: NodeJS.ProcessEnv): Promise<PathInfo[]> {
  const out: PathInfo[] = [];
  // Batches keep the command line well under ARG_MAX.
  for (let i = 0; i < paths.length; i += 500) {
    out.push(...parsePathInfo(await nixOutput(nix, ['path-info', '--json', ...paths.slice(i, i + 500)], env)));
  }
  return out;
}
