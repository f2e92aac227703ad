// The store cache's main and post halves, run in the test process as the action runs them: restoreStoreCache,
// `nix build` of <flake>#docker with the restored substituter, saveStoreCache; with the real Nix, the real
// @actions/cache and the test cache server (support/cache-server.ts). Shared by the store cache's
// integration tests: the runners' environment (cacheJobEnv), what a step prints (captureOutput), and the
// steps themselves (mainStep, postStep, cacheJob).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { vi } from 'vitest';
import { derivationOf, type EvaluatedWithBuilds } from '../../src/nix/build.js';
import { restoreStoreCache, saveStoreCache, type Built, type CacheState, type RestoreResult, type SaveSummary } from '../../src/nix/cache.js';
import { startCacheServer, useCacheCallChild, type CacheServer } from './cache-server.js';
import { nixTestEnv } from './nix.js';

const run = promisify(execFile);

export interface CacheJobEnv {
  /** Starts the cache server and points process.env at it and at a new workspace `work` (a directory named
   *  `prefix…`): GITHUB_WORKSPACE, RUNNER_TEMP (work/tmp), HOME (work/home), then `env`; bundles the
   *  cache-call child (useCacheCallChild). */
  start(): Promise<{ server: CacheServer; work: string }>;
  /** Puts process.env and process.argv[1] back as they were when cacheJobEnv was called; stops the server. */
  stop(): Promise<void>;
}

/** The environment of runners whose cache service is the test cache server (start in beforeAll, stop in afterAll). */
export function cacheJobEnv(prefix: string, env: Record<string, string> = {}): CacheJobEnv {
  const saved = { ...process.env };
  const savedArgv = process.argv[1];
  let server: CacheServer | undefined;
  return {
    async start() {
      server = await startCacheServer();
      const work = await mkdtemp(join(tmpdir(), prefix));
      Object.assign(process.env, server.env('v2'), { GITHUB_WORKSPACE: work, RUNNER_TEMP: join(work, 'tmp'), HOME: join(work, 'home') }, env);
      await mkdir(join(work, 'tmp'));
      await mkdir(join(work, 'home'));
      await useCacheCallChild();
      return { server, work };
    },
    async stop() {
      process.env = saved;
      process.argv[1] = savedArgv!;
      await server?.stop();
    },
  };
}

/** What is printed on stdout until stop(): every chunk, and the text of the `::warning::` lines (core.warning). */
export function captureOutput(): { printed: string[]; warnings: string[]; stop: () => void } {
  const printed: string[] = [];
  const warnings: string[] = [];
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed.push(String(chunk));
    for (const m of String(chunk).matchAll(/^::warning::(.*)$/gm)) warnings.push(m[1]!);
    return true;
  });
  return { printed, warnings, stop: () => out.mockRestore() };
}

/** `nix build --no-link --json --print-build-logs <installable>` with `env` over process.env and nixTestEnv(). */
export async function nixBuild(installable: string, env: Record<string, string | undefined>): Promise<{ drvPath: string; out: string; log: string }> {
  const { stdout, stderr } = await run('nix', ['build', '--no-link', '--json', '--print-build-logs', installable], { env: { ...process.env, ...nixTestEnv(), ...env } });
  const [first] = JSON.parse(stdout) as { drvPath: string; outputs: { out: string } }[];
  return { drvPath: first!.drvPath, out: first!.outputs.out, log: stderr };
}

/** A fresh runner's store: deletes those of `paths` that are there. */
export async function forgetPaths(paths: string[]): Promise<void> {
  const there = paths.filter((p) => existsSync(p));
  if (there.length) await run('nix', ['store', 'delete', ...there], { env: { ...process.env, ...nixTestEnv() } });
}

export interface MainOptions {
  /** binary-cache-public-key's (and binary-cache-key's) public keys. */
  trustedKeys?: string[];
  /** cache-purge. */
  purge?: boolean;
  /** Nix's configuration (NIX_CONFIG) for the restore and the build; nixTestEnv() unless given. */
  nixEnv?: Record<string, string>;
  /** Where a local flake's path is taken relative to; GITHUB_WORKSPACE unless given. */
  workspace?: string;
  /** Evaluate first, as main does (derivationOf: import from derivation builds here), and save what it realised. */
  evaluate?: boolean;
}

export interface MainStep {
  restored: RestoreResult;
  /** The state as post gets it: through JSON, as the runner carries it. */
  state: CacheState;
  /** What post saves from: the derivation, the image, what the evaluation realised. */
  built: Built & { storePath: string };
  /** The image's store path. */
  out: string;
  /** The build's log (Nix's stderr). */
  log: string;
  /** With `evaluate`: what the evaluation gave. */
  evaluation?: EvaluatedWithBuilds;
  printed: string;
  warnings: string[];
}

/**
 * The main step of a runner: restore, then build `<flake>#docker` with the restored substituter, output
 * captured. A fresh runner has no evaluation cache either: Nix gets a new XDG_CACHE_HOME, where it keeps one.
 */
export async function mainStep(flake: string, opts: MainOptions = {}): Promise<MainStep> {
  const nixEnv = opts.nixEnv ?? nixTestEnv();
  const c = captureOutput();
  try {
    const workspace = opts.workspace ?? process.env.GITHUB_WORKSPACE;
    const restored = await restoreStoreCache({ enabled: true, attr: 'docker', flake, maxSize: 1e9, nix: 'nix', nixVersion: '2.8.0', env: nixEnv, workspace, trustedKeys: opts.trustedKeys, purge: opts.purge });
    const env = { ...process.env, ...nixEnv, ...restored.env, XDG_CACHE_HOME: await mkdtemp(join(tmpdir(), 'nia-xdg-')) };
    const evaluation = opts.evaluate ? await derivationOf({ nix: 'nix', installable: `${flake}#docker`, buildArgs: [], env }) : undefined;
    const { drvPath, out, log } = await nixBuild(`${flake}#docker`, env);
    const built = { drvPath: evaluation?.drvPath ?? drvPath, storePath: out, ...(evaluation ? { evaluated: evaluation.realised } : {}) };
    const state = JSON.parse(JSON.stringify(restored.state)) as CacheState;
    return { restored, state, built, out, log, ...(evaluation ? { evaluation } : {}), printed: c.printed.join(''), warnings: c.warnings };
  } finally {
    c.stop();
  }
}

export interface PostOptions {
  /** binary-cache-key. */
  secretKey?: string;
  /** cache-purge's token (github-token). */
  purgeToken?: string;
}

export interface PostStep {
  summary?: SaveSummary;
  printed: string;
  warnings: string[];
}

/** The post step of the runner whose main step that was: save, output captured. */
export async function postStep(main: Pick<MainStep, 'state' | 'built'>, opts: PostOptions = {}): Promise<PostStep> {
  const c = captureOutput();
  try {
    const summary = await saveStoreCache(main.state, main.built, { ...(opts.secretKey ? { secretKey: opts.secretKey } : {}), ...(opts.purgeToken ? { purge: { token: opts.purgeToken } } : {}) });
    return { summary, printed: c.printed.join(''), warnings: c.warnings };
  } finally {
    c.stop();
  }
}

/** One job, main then post: what both printed, and the save's summary. */
export async function cacheJob(flake: string, opts: MainOptions & PostOptions = {}): Promise<MainStep & PostStep> {
  const main = await mainStep(flake, opts);
  const post = await postStep(main, opts);
  return { ...main, summary: post.summary, printed: main.printed + post.printed, warnings: [...main.warnings, ...post.warnings] };
}
