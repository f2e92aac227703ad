// Temporary files of a test process go away with it. Importing this module (support/action.ts, archives.ts
// and nix.ts do, so every test file that uses one of them, flakes.ts included) points os.tmpdir() of this
// process, through TMPDIR, at one directory of its own, `<tmp>/nia-tmp-XXXXXX`, so that every
// `mkdtemp(join(tmpdir(), …))` — of the support code and of the tests themselves — lands in it. That
// directory is removed with everything in it:
// - in a vitest worker, after the last test of the file: an afterAll hook registered as this module loads,
//   before any hook of the file's own, so it runs after them (vitest runs afterAll hooks last-registered
//   first: registries are stopped before their directories go). Vitest ends its workers with a signal, so
//   an exit handler never runs there. Under vitest's default isolation every test file loads this module
//   anew and gets its own directory: one file's cleanup never removes what another file uses;
// - in a script (scripts/try.ts, bench/*), when the process exits.
// Child processes inherit TMPDIR, so what Nix, skopeo or a registry leave in their temporary directories
// goes too. The directory is 0755: Nix's build users must reach the build directories made inside it. Its
// name is short: podman refuses a --runroot longer than 50 characters (support/clients.ts makes one here).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const original = process.env.TMPDIR;
/** This process's temporary directory; os.tmpdir() returns it from now on. */
export const scratch = mkdtempSync(join(tmpdir(), 'nia-tmp-'));
chmodSync(scratch, 0o755);
process.env.TMPDIR = scratch;

let removed = false;
function removeScratch(): void {
  if (removed) return;
  removed = true;
  if (process.env.TMPDIR === scratch) {
    if (original === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = original;
  }
  try {
    rmSync(scratch, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // Copies of store paths are read-only directories, which only root may empty as they are.
    try {
      execFileSync('chmod', ['-R', 'u+w', scratch], { stdio: 'ignore' });
      rmSync(scratch, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      process.stderr.write(`test support: could not remove ${scratch}: ${(e as Error).message}\n`);
    }
  }
}

process.once('exit', removeScratch);
if (process.env.VITEST) {
  const { afterAll } = await import('vitest');
  try {
    afterAll(removeScratch);
  } catch {
    // Not inside a test file's collection (a script started from a test): the exit handler does it.
  }
}
