// Builds <flake>#<attr> with `nix build --no-link --json --print-build-logs` (understood by Nix 2.8 up
// to current 2.3x), logs in a collapsible group, and on failure one line naming the failing derivation
// and the last lines of its log.
import * as core from '@actions/core';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { localFlakeDir } from './cache.js';
import { spawnNix } from './secret-settings.js';
import { readDerivation } from './derivation.js';
import { NixCommandError, nixOutput, nixStoreBinary } from './store.js';
import { evaluatesImpurely } from './secrets.js';

export class BuildError extends Error {
  override name = 'BuildError';
}

/** The flake does not evaluate: Nix's own message, once. */
export class EvaluationError extends BuildError {
  override name = 'EvaluationError';
}

export interface BuildOptions {
  nix: string;
  installable: string;
  buildArgs: string[];
  env: NodeJS.ProcessEnv;
  /** Hears each line of the build's log (Nix's stderr) as it comes: which cache each path came from. */
  onLine?: (line: string) => void;
}

export interface BuildResult {
  storePath: string;
  drvPath: string;
  seconds: number;
  /** Substituters Nix ignored because this user is not trusted (it says so before building). */
  ignoredSubstituters: string[];
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** The error line of a failed `nix build`: the failing derivation if Nix named one, and the log's tail. */
export function describeFailure(installable: string, code: number | null, stderr: string): string {
  const lines = stderr.replace(ANSI, '').split('\n').map((l) => l.trimEnd());
  const drv = /builder for '([^']+\.drv)' failed[^\n]*/.exec(stderr.replace(ANSI, ''));
  const firstError = lines.findIndex((l) => /^error:/.test(l.trim()));
  if (drv) {
    // Nix prints the tail of the build log after "last N log lines:" as "> line"; with --print-build-logs it
    // has already printed every line as "<name>> line". Either way, keep the last three.
    const name = drv[1]!.replace(/^.*\/[0-9a-z]{32}-/, '').replace(/\.drv$/, '');
    const quoted = lines.filter((l) => /^\s*>\s?/.test(l)).map((l) => l.replace(/^\s*>\s?/, ''));
    const prefixed = lines.filter((l) => l.startsWith(`${name}> `)).map((l) => l.slice(name.length + 2));
    const tail = (quoted.length ? quoted : prefixed).map((l) => l.trim()).filter(Boolean).slice(-3);
    return `nix build ${installable} failed: ${drv[0].replace(/[;.]\s*$/, '')}${tail.length ? `; last log lines: ${tail.join(' | ')}` : ''}`;
  }
  const message = firstError >= 0
    ? lines.slice(firstError).map((l) => l.trim()).filter(Boolean).slice(0, 4).join(' ')
    : lines.map((l) => l.trim()).filter(Boolean).slice(-3).join(' ');
  return `nix build ${installable} failed (exit ${code}): ${message || 'no output'}`;
}

/** What an evaluation that may import from derivations gave: the derivation, and what it realised. */
export interface EvaluatedWithBuilds {
  drvPath?: string;
  /** Derivations import from derivation built, and paths it substituted, while evaluating. */
  realised: string[];
}

/** Nix's activity types (internal-json log) of a build and of a substitution: their first field is the path. */
const ACT_BUILD = 105;
const ACT_SUBSTITUTE = 108;

/** The store path an internal-json log line says is being built or substituted, if it says so. */
export function realisedBy(line: string): string | undefined {
  if (!line.startsWith('@nix {')) return undefined;
  try {
    const event = JSON.parse(line.slice(5)) as { action?: string; type?: number; fields?: unknown[] };
    if (event.action !== 'start' || (event.type !== ACT_BUILD && event.type !== ACT_SUBSTITUTE)) return undefined;
    const path = event.fields?.[0];
    return typeof path === 'string' && path.startsWith('/') ? path : undefined;
  } catch {
    return undefined;
  }
}

/** The installable's derivation, evaluated as the build evaluates it (import from derivation builds what it
 *  needs), and what that evaluation realised. No derivation when even that fails (the flake does not evaluate). */
export async function derivationOf(opts: BuildOptions): Promise<EvaluatedWithBuilds> {
  const realised = new Set<string>();
  try {
    const out = await nixOutput(opts.nix, ['path-info', '--derivation', '--log-format', 'internal-json', opts.installable, ...opts.buildArgs], opts.env, {
      onStderrLine: (line) => {
        const path = realisedBy(line);
        if (path) realised.add(path);
      },
    });
    const drv = out.trim().split('\n').pop();
    return { ...(drv?.endsWith('.drv') ? { drvPath: drv } : {}), realised: [...realised] };
  } catch {
    return { realised: [...realised] };
  }
}

export type Evaluation = { drvPath: string; outPath: string } | { reason: string };

/** The lines of Nix's error that say what is wrong: the error line and where (no code frame, no trace hint). */
export function nixErrorMessage(stderr: string): string {
  const lines = stderr.replace(ANSI, '').split('\n').filter((l) => !l.startsWith('@nix '));
  const first = lines.findIndex((l) => /^error:/.test(l.trim()));
  if (first < 0) return lines.map((l) => l.trim()).filter(Boolean).slice(-1)[0] ?? 'no output';
  const rest = lines.slice(first + 1).map((l) => l.trim()).filter((l) => /^at /.test(l)).slice(0, 1);
  return [lines[first]!.trim(), ...rest].join(' ');
}

/** The top of the git work tree holding `dir`, if any. */
function gitTop(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, '.git'))) return d;
    if (dirname(d) === d) return undefined;
  }
}

/**
 * A hint when a git flake's evaluation failed on a file that is in the work tree but not in what Nix
 * copied of it (a file git does not track): Nix says so (current Nix), or fails to find it in the copied
 * source (Nix 2.8 and others).
 */
export function untrackedHint(flake: string, message: string, cwd?: string): string | undefined {
  const dir = localFlakeDir(flake, cwd);
  if (!dir || flake.startsWith('path:')) return undefined;
  const top = gitTop(dir);
  if (!top) return undefined;
  const tracked = /Path '([^']+)' in the repository .* is not tracked by Git/.exec(message);
  const missing = /'\/nix\/store\/[0-9a-z]{32}-source\/([^']+)'(?::| does not exist| No such file)/.exec(message);
  const file = tracked?.[1] ?? missing?.[1];
  if (!file || (!tracked && !existsSync(join(top, file)))) return undefined;
  return `${file} is not tracked by git; git add it: flakes only see tracked files`;
}

/**
 * The installable's derivation and output path, evaluated without building anything: import from
 * derivation is switched off, so an expression that needs a build to evaluate gives a reason instead
 * (the build evaluates it, building what it imports). An impure evaluation (`--impure` and its kin, secrets.ts evaluatesImpurely) or an impure or
 * content-addressed derivation gives a reason too: its derivation path does not fix its output. Any
 * other evaluation error is an EvaluationError with Nix's message: building would fail the same way.
 */
export async function evaluateDerivation(opts: BuildOptions): Promise<Evaluation> {
  if (evaluatesImpurely(opts.buildArgs, [String(opts.env?.NIX_CONFIG ?? '')])) return { reason: 'the evaluation is impure (build-args or the Nix settings): the derivation does not fix the image' };
  let drvPath: string | undefined;
  try {
    const out = await nixOutput(opts.nix, ['path-info', '--derivation', '--option', 'allow-import-from-derivation', 'false', opts.installable, ...opts.buildArgs], opts.env);
    drvPath = out.trim().split('\n').pop();
  } catch (error) {
    const stderr = error instanceof NixCommandError ? error.stderr : String(error);
    if (/allow-import-from-derivation|import from derivation/i.test(stderr)) return { reason: 'it imports from a derivation: evaluating it needs a build' };
    const message = error instanceof NixCommandError ? nixErrorMessage(stderr) : (error as Error).message;
    const flake = opts.installable.split('#')[0]!;
    const hint = untrackedHint(flake, stderr);
    throw new EvaluationError(`nix could not evaluate ${opts.installable}: ${message}${hint ? ` (${hint})` : ''}`);
  }
  if (!drvPath?.endsWith('.drv')) return { reason: 'nix path-info --derivation named no derivation' };
  let drv;
  try {
    drv = await readDerivation(drvPath);
  } catch (error) {
    return { reason: (error as Error).message };
  }
  if (drv.env.__impure !== undefined) return { reason: `${drvPath} is an impure derivation` };
  const outPath = drv.outputs.out ?? Object.values(drv.outputs)[0];
  if (!outPath) return { reason: `${drvPath} is content-addressed: its output path is known only once built` };
  return { drvPath, outPath };
}

/** The substituters of Nix's "ignoring untrusted substituter '<url>', you are not a trusted user" warnings
 *  (printed by the daemon for a client that is not in trusted-users, forwarded to the client's stderr). */
export function ignoredSubstituters(log: string): string[] {
  return [...log.replace(ANSI, '').matchAll(/ignoring untrusted substituter '([^']+)'/g)].map((m) => m[1]!);
}

/** Runs a Nix command in a collapsible log group, its stderr (the build logs) shown as it comes. */
async function runLogged(command: string, args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<{ code: number | null; stdout: string; stderr: string; head: string }> {
  core.startGroup(`${basename(command)} ${args.join(' ')}`);
  let stdout = '';
  let stderr = '';
  // The start of the log, where Nix warns about settings it ignores (the tail may have lost it).
  let head = '';
  let partial = '';
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawnNix(command, args, env);
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        const text = d.toString();
        stderr = (stderr + text).slice(-64 * 1024);
        if (head.length < 64 * 1024) head += text;
        process.stdout.write(text);
        if (onLine) {
          const lines = (partial + text).split('\n');
          partial = lines.pop()!;
          lines.forEach(onLine);
        }
      });
      child.on('error', (e) => reject(new BuildError(`cannot run ${command}: ${e.message}`)));
      child.on('close', (code) => {
        if (partial && onLine) onLine(partial);
        resolve(code);
      });
    });
    return { code, stdout, stderr, head };
  } finally {
    core.endGroup();
  }
}

/** Builds one derivation's outputs (`nix-store --realise`, which Nix 2.8 and 2.3x both take for a .drv;
 *  `nix build <drv>^out` is unknown to 2.8). `what` names it in a failure. */
export async function realiseDerivation(opts: Pick<BuildOptions, 'nix' | 'env' | 'onLine'>, drvPath: string, what: string): Promise<{ outPaths: string[]; seconds: number; ignoredSubstituters: string[] }> {
  const started = Date.now();
  const { code, stdout, stderr, head } = await runLogged(nixStoreBinary(opts.nix), ['--realise', drvPath], opts.env, opts.onLine);
  if (code !== 0) throw new BuildError(describeFailure(what, code, stderr));
  return { outPaths: stdout.split('\n').filter(Boolean), seconds: (Date.now() - started) / 1000, ignoredSubstituters: ignoredSubstituters(head) };
}

export async function buildImageOutput(opts: BuildOptions): Promise<BuildResult> {
  const args = ['build', '--no-link', '--json', '--print-build-logs', opts.installable, ...opts.buildArgs];
  const started = Date.now();
  const { code, stdout, stderr, head } = await runLogged(opts.nix, args, opts.env, opts.onLine);
  if (code !== 0) throw new BuildError(describeFailure(opts.installable, code, stderr));
  let parsed: { drvPath?: string; outputs?: Record<string, string> }[];
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    throw new BuildError(`nix build ${opts.installable} printed no JSON result: ${stdout.slice(0, 200)}`);
  }
  const first = parsed[0];
  const outputs = first?.outputs ?? {};
  const storePath = outputs.out ?? Object.values(outputs)[0];
  if (!first?.drvPath || !storePath) throw new BuildError(`nix build ${opts.installable} reported no output path: ${stdout.slice(0, 200)}`);
  if (parsed.length > 1) core.warning(`nix build ${opts.installable} built ${parsed.length} results; using the first, ${storePath}`);
  return { storePath, drvPath: first.drvPath, seconds: (Date.now() - started) / 1000, ignoredSubstituters: ignoredSubstituters(head) };
}
