// Assertions on a run of the bundled action (support/action.ts runAction), shared by the end-to-end tests.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { ActionRun } from './action.js';

/** Main succeeded with no error annotation, and so did post when it ran. */
export function expectSucceeded(r: ActionRun): void {
  expect(r.main.errors, r.log).toEqual([]);
  expect(r.main.code, r.log).toBe(0);
  if (r.post) expect(r.post.code, r.log).toBe(0);
}

/** Every regular file under `dir` (not following links). */
export async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/**
 * The secrets are nowhere the runner shows (log, errors, warnings, outputs, state, exported variables,
 * summary) and in no file the steps could write (the file commands, RUNNER_TEMP, the tool cache, `dirs`).
 * `unprinted`: not even printed masked (the unmasked log holds none of them but its add-mask lines).
 */
export async function expectNoSecret(run: ActionRun, secrets: string[], dirs: string[], opts: { unprinted?: boolean } = {}): Promise<void> {
  const shown = {
    log: run.log,
    errors: run.main.errors.join('\n'),
    warnings: [...run.main.warnings, ...(run.post?.warnings ?? [])].join('\n'),
    outputs: JSON.stringify(run.outputs),
    state: JSON.stringify(run.state),
    env: JSON.stringify(run.exported),
    summary: run.summary,
  };
  const unmasked = run.rawLog.split('\n').filter((l) => !l.startsWith('::add-mask::')).join('\n');
  const files = [...Object.values(run.files), ...(await filesUnder(run.runnerTemp)), ...(await filesUnder(run.toolCache))];
  for (const dir of dirs) files.push(...(await filesUnder(dir)));
  for (const secret of secrets) {
    if (opts.unprinted) expect(unmasked.includes(secret), `${secret} printed, even if masked`).toBe(false);
    for (const [where, text] of Object.entries(shown)) expect(text.includes(secret), `${secret} shown unmasked in the ${where}`).toBe(false);
    for (const file of files) {
      if ((await stat(file)).size > 64 * 1024 * 1024) continue;
      expect((await readFile(file)).toString('latin1').includes(secret), `${secret} written to ${file}`).toBe(false);
    }
  }
}
