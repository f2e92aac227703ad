// The secret settings Nix gets (the github-token as access-tokens, the secret lines of extra-nix-conf)
// never rest in a file. A file, however private, is readable by code of the same user, and a flake is
// evaluated as that user: a `path:` input naming the file's folder is copied into the store while the flake
// is locked, in a pure evaluation. So every Nix process the action starts reads them from a FIFO of its own:
// NIX_CONFIG ends with an `!include` that spawnNix points at a fresh FIFO; the action opens the FIFO for
// writing, which waits until Nix opens it to read its settings (as it starts, before it evaluates anything),
// removes it at once (a second look finds nothing, and a missing `!include` is skipped), writes the
// settings and closes it. Nix cannot copy a FIFO into the store, and once read it holds nothing.
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/** Where the settings are, while nothing is being read: a name in a private folder that never exists. */
let secret: { text: string; dir: string; include: string } | undefined;

/**
 * Keeps `text` for the Nix processes spawnNix starts, FIFOs made in `dir` (a private step folder); returns the
 * `!include` line for NIX_CONFIG, or why it cannot be given (then Nix gets no secret setting at all).
 */
export function keepSecretSettings(text: string, dir: string): { include: string } | { problem: string } {
  // Nix splits an include line at whitespace.
  if (/\s/.test(dir)) return { problem: `the temporary path ${dir} has whitespace (RUNNER_TEMP)` };
  try {
    const probe = join(dir, 'probe');
    execFileSync('mkfifo', ['-m', '600', probe], { stdio: 'ignore', timeout: 10_000 });
    rmSync(probe, { force: true });
  } catch (error) {
    return { problem: `mkfifo failed (${error instanceof Error ? error.message.split('\n')[0] : String(error)})` };
  }
  const include = `!include ${join(dir, 'settings')}`;
  secret = { text, dir, include };
  return { include };
}

/** Main is done with Nix: no later process gets the settings. */
export function forgetSecretSettings(): void {
  secret = undefined;
}

/** Starts a Nix command; when `env.NIX_CONFIG` has the `!include` of keepSecretSettings, it reads the secret
 *  settings from a FIFO of its own. */
export function spawnNix(command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcessByStdio<null, Readable, Readable> {
  const s = secret;
  const conf = env.NIX_CONFIG;
  if (!s || conf === undefined || !conf.split('\n').includes(s.include)) return spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const fifo = join(s.dir, `settings-${randomBytes(12).toString('hex')}`);
  execFileSync('mkfifo', ['-m', '600', fifo], { stdio: 'ignore', timeout: 10_000 });
  const child = spawn(command, args, { env: { ...env, NIX_CONFIG: conf.split('\n').map((l) => (l === s.include ? `!include ${fifo}` : l)).join('\n') }, stdio: ['ignore', 'pipe', 'pipe'] });
  void feed(fifo, s.text, child);
  return child;
}

/** Writes the settings into the FIFO once Nix has opened it. Nothing is left waiting either way: a Nix that
 *  ends (or never starts) without opening it gets a reader here, held until the writer's open returns; a
 *  writer that cannot open gives a Nix already waiting an empty FIFO (no settings) instead of none. */
async function feed(fifo: string, text: string, child: { once(event: 'exit' | 'error', f: () => void): unknown }): Promise<void> {
  let connected = false;
  let standIn: number | undefined;
  const release = (): void => {
    if (connected || standIn !== undefined) return;
    try {
      standIn = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK); // the waiting open returns, now or when it starts
    } catch {
      // removed already
    }
  };
  child.once('exit', release);
  child.once('error', release);
  const writer = await open(fifo, constants.O_WRONLY).catch(() => undefined);
  connected = true;
  if (!writer) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)); // a reader waiting: it reads nothing
    } catch {
      // no reader
    }
  }
  rmSync(fifo, { force: true });
  if (standIn !== undefined) closeSync(standIn);
  if (!writer) return;
  try {
    await writer.writeFile(text);
  } catch {
    // Nix went away before reading: nothing to do
  } finally {
    await writer.close().catch(() => undefined);
  }
}
