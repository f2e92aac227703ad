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
// In a vitest worker this module also keeps libraries' stdout out of the test output: see quietLibraries.
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const original = process.env.TMPDIR;
const systemTmp = tmpdir();
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
  const { afterAll, beforeEach } = await import('vitest');
  try {
    afterAll(removeScratch);
    quietLibraries(beforeEach);
  } catch {
    // Not inside a test file's collection (a script started from a test): the exit handler does it.
  }
}

/**
 * What libraries print straight to this process's stdout — @actions/core's `::debug::` and `::add-mask::`
 * commands and its info lines, @actions/exec's `[command]` lines, from in-process calls such as
 * @actions/cache's — goes to a log file of the test file, not to the test output, where it would show
 * under no test's name. The log is `<tmp>/nia-test-logs/<test file>.log`, written anew each time the file
 * runs, each test's part headed by its name; a failing test names it. Console output (console.log) is
 * vitest's own and stays in the test output; so does stderr. NIA_TEST_OUTPUT=1 leaves stdout alone.
 */
function quietLibraries(beforeEach: typeof import('vitest').beforeEach): void {
  if (process.env.NIA_TEST_OUTPUT === '1') return;
  const logDir = join(systemTmp, 'nia-test-logs');
  let logFile: string | undefined;
  let pending = ''; // what was written before the first test named the file
  let written = 0; // characters written to stdout so far
  const write = process.stdout.write.bind(process.stdout);
  const append = (text: string): void => {
    written += text.length;
    if (logFile === undefined) pending += text;
    else appendFileSync(logFile, text);
  };
  process.stdout.write = ((chunk: unknown, encoding?: unknown, callback?: unknown): boolean => {
    append(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString());
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as typeof process.stdout.write;
  beforeEach((context) => {
    if (logFile === undefined) {
      const name = relative(process.cwd(), context.task.file.filepath).replace(/[/\\]/g, '_');
      mkdirSync(logDir, { recursive: true });
      logFile = join(logDir, `${name}.log`);
      writeFileSync(logFile, pending);
      pending = '';
    }
    append(`\n--- ${context.task.fullName}\n`);
    const log = logFile;
    const before = written;
    context.onTestFailed(({ task }) => {
      if (written === before) return; // nothing printed during this test
      const where = `what libraries printed to stdout during this test is in ${log}`;
      const error = task.result?.errors?.[0];
      if (error) error.message = `${error.message}\n(${where})`;
      else write(`\n${task.fullName}: ${where}\n`);
    });
  });
}
