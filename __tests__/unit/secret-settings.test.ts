// The secret Nix settings pass through a FIFO per process (src/nix/secret-settings.ts): a reader gets them
// exactly, and a process that never reads them (or never starts) leaves nothing waiting behind.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { forgetSecretSettings, keepSecretSettings, spawnNix } from '../../src/nix/secret-settings.js';

const TEXT = 'extra-access-tokens = github.com=ghs_fifoTest123\n';

async function kept(): Promise<{ dir: string; include: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-fifo-'));
  const k = keepSecretSettings(TEXT, dir);
  if (!('include' in k)) throw new Error(k.problem);
  return { dir, include: k.include };
}

/** Runs `command` through spawnNix with the include in NIX_CONFIG; its exit code (or spawn error) and stdout. */
function run(command: string, args: string[], include: string): Promise<{ code: number | string; out: string }> {
  const child = spawnNix(command, args, { PATH: process.env.PATH, NIX_CONFIG: `cores = 1\n${include}` });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => {
    child.on('error', (e: NodeJS.ErrnoException) => resolve({ code: e.code ?? 'error', out }));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

/** FIFOs left in the folder, waited for a moment (the writer side ends just after the process). */
async function leftover(dir: string): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const names = (await readdir(dir)).filter((n) => n.startsWith('settings-'));
    if (names.length === 0) return [];
    await new Promise((r) => setTimeout(r, 20));
  }
  return (await readdir(dir)).filter((n) => n.startsWith('settings-'));
}

afterEach(() => forgetSecretSettings());

describe('secret settings through a FIFO', () => {
  it('reach a process that reads the include it names, exactly, and the FIFO is gone', async () => {
    const { dir, include } = await kept();
    // Reads what its NIX_CONFIG includes, as Nix does when it starts.
    const r = await run('sh', ['-c', 'cat "$(printf %s "$NIX_CONFIG" | sed -n "s/^!include //p")"; printf %s "$NIX_CONFIG"'], include);
    expect(r.code).toBe(0);
    expect(r.out.startsWith(TEXT)).toBe(true);
    expect(r.out).toMatch(/^cores = 1\n!include \S+\/settings-[0-9a-f]{24}$/m); // a FIFO of its own, not the kept name
    expect(await leftover(dir)).toEqual([]);
  });

  it('leave nothing waiting when the process never reads them, or never starts', async () => {
    const { dir, include } = await kept();
    expect((await run('true', [], include)).code).toBe(0);
    expect((await run('/nonexistent/nix', [], include)).code).toBe('ENOENT');
    expect(await leftover(dir)).toEqual([]);
  });

  it('are not given to a process whose NIX_CONFIG lacks the include, nor after main is done with Nix', async () => {
    const { dir, include } = await kept();
    const child = spawnNix('true', [], { PATH: process.env.PATH, NIX_CONFIG: 'cores = 1' });
    await new Promise((r) => child.on('close', r));
    forgetSecretSettings();
    const r = await run('sh', ['-c', 'printf %s "$NIX_CONFIG"'], include);
    expect(r.out).toBe(`cores = 1\n${include}`); // the kept name, which never exists: Nix skips a missing !include
    expect((await readdir(dir)).filter((n) => n.startsWith('settings'))).toEqual([]);
  });

  it('are refused for a folder whose path has whitespace (Nix splits an include line there)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia fifo '));
    expect(keepSecretSettings(TEXT, dir)).toEqual({ problem: `the temporary path ${dir} has whitespace (RUNNER_TEMP)` });
  });
});
