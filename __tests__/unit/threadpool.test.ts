// The thread pool size: the value threadpool.ts picks, and its effect. The effect is measured in child
// processes that load threadpool.ts bundled as dist/ is (one ESM file, threadpool.ts's code first, as
// main.ts imports it first), then count the pool tasks running at once: K fs opens of FIFOs for reading,
// each of which holds a pool thread until a writer comes. Probing the FIFOs for a waiting reader (a
// non-blocking open for writing fails with ENXIO when there is none), last queued first, counts exactly
// the threads the pool has (up to K).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleAfterStartup, runtimes } from '../support/action.js';
import { blocksInFlight, LAYERS_AT_ONCE } from '../../src/image/compress.js';
import { threadPoolSize } from '../../src/threadpool.js';

const run = promisify(execFile);

describe('thread pool size', () => {
  it('gives every compressing block a thread and keeps four for file and socket work', () => {
    expect(blocksInFlight()).toBe(availableParallelism() + 2);
    expect(Number(threadPoolSize({}))).toBe(LAYERS_AT_ONCE * (availableParallelism() + 2) + 4);
  });

  it('leaves a size the environment chose alone', () => {
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '3' })).toBe('3');
  });
});

/** Counts pool tasks running at once (up to K), then unblocks them all and exits. */
const PROBE = `
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const K = Number(process.env.PROBE_TASKS);
const dir = mkdtempSync(join(tmpdir(), 'nia-pool-'));
const fifos = Array.from({ length: K }, (_, i) => join(dir, 'f' + i));
execFileSync('mkfifo', fifos);
const opens = fifos.map((f) => open(f, 'r'));
// Wait until the count is stable: the pool's threads have each taken a task.
const writers = [];
const waiting = (f) => {
  try {
    writers.push(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch (e) {
    if (e.code !== 'ENXIO') throw e;
    return false;
  }
};
await new Promise((r) => setTimeout(r, 250));
// Last queued first: a reader let go here frees its thread for a task already counted as queued.
let concurrent = 0;
for (const f of [...fifos].reverse()) if (waiting(f)) concurrent++;
const deadline = Date.now() + 3000;
for (;;) {
  const done = await Promise.race([Promise.all(opens).then(() => true), new Promise((r) => setTimeout(() => r(false), 20))]);
  if (done) break;
  if (Date.now() > deadline) throw new Error('the FIFO opens did not finish');
  for (const f of fifos) waiting(f);
}
for (const h of await Promise.all(opens)) await h.close();
for (const fd of writers) closeSync(fd);
rmSync(dir, { recursive: true });
console.log(JSON.stringify({ node: process.version, size: process.env.UV_THREADPOOL_SIZE ?? null, concurrent }));
`;

describe('thread pool size, in effect', () => {
  let dir: string;
  let bundled: string;
  let plain: string;
  const node24 = runtimes.node24;
  const wanted = Number(threadPoolSize({}));
  const tasks = wanted + 2;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nia-threadpool-'));
    ({ bundled, plain } = await bundleAfterStartup(dir, 'threadpool.ts', PROBE));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  async function probe(nodeBin: string, script: string, env: Record<string, string> = {}): Promise<{ node: string; size: string | null; concurrent: number }> {
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'UV_THREADPOOL_SIZE'));
    const { stdout } = await run(nodeBin, [script], { env: { ...base, ...env, PROBE_TASKS: String(tasks) }, timeout: 10_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!);
  }

  it('needs more than four threads to be worth it', () => {
    expect(wanted).toBeGreaterThan(4);
  });

  it('runs the thread pool size it sets on Node 24 (the runtime action.yml names): more than four pool tasks at once', async () => {
    const [withModule, without, chosen] = await Promise.all([
      probe(node24, bundled),
      probe(node24, plain),
      probe(node24, bundled, { UV_THREADPOOL_SIZE: '6' }),
    ]);
    expect(withModule.node).toMatch(/^v24\./);
    expect(withModule).toMatchObject({ size: String(wanted), concurrent: wanted });
    // The probe tells a sized pool from Node's default one...
    expect(without).toMatchObject({ size: null, concurrent: 4 });
    // ...and a size the environment chose is the one in effect.
    expect(chosen).toMatchObject({ size: '6', concurrent: 6 });
  });

  it('on Node 20 sizes the pool only through the environment: its ESM loader starts the pool before the entry runs', async () => {
    const current = process.version;
    if (!/^v20\./.test(current)) return; // the machine's Node is another version: nothing to show here
    const [withModule, fromEnv] = await Promise.all([probe(process.execPath, bundled), probe(process.execPath, plain, { UV_THREADPOOL_SIZE: String(wanted) })]);
    // threadpool.ts sets the variable, but Node 20 read the entry file through the pool: 4 threads.
    expect(withModule).toMatchObject({ size: String(wanted), concurrent: 4 });
    expect(fromEnv).toMatchObject({ size: String(wanted), concurrent: wanted });
  });
});
