// src/heap.ts: buffers counted in V8's heap budget. Measured in child processes on Node 24 (the runtime
// action.yml names) that load heap.ts bundled as dist/ is, then move 1 GiB through 1 MiB buffers the
// way a push does (a few alive at once, the rest garbage) and count the full collections V8 ran.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleAfterStartup, runtimes } from '../support/action.js';
import { hasOneBudget } from '../../src/heap.js';

const run = promisify(execFile);

const PROBE = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
let major = 0;
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
});
observer.observe({ entryTypes: ['gc'] });
const alive = [];
for (let i = 0; i < 1024; i++) {
  const b = Buffer.allocUnsafe(1 << 20);
  b.fill(i & 0xff);
  alive.push(b);
  if (alive.length > 8) alive.shift();
  if (i % 16 === 0) await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 50));
observer.disconnect();
console.log(JSON.stringify({ v8: process.versions.v8, major, rssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
`;

describe('buffers in the heap budget', () => {
  let dir: string;
  let bundled: string;
  let plain: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nia-heap-'));
    ({ bundled, plain } = await bundleAfterStartup(dir, 'heap.ts', PROBE));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  async function probe(nodeBin: string, script: string): Promise<{ result: { v8: string; major: number; rssMiB: number }; stderr: string }> {
    const { stdout, stderr } = await run(nodeBin, [script], { timeout: 30_000 });
    return { result: JSON.parse(stdout.trim().split('\n').pop()!), stderr };
  }

  it('is set only on the V8 it is known on (13, Node 24\'s)', () => {
    expect(hasOneBudget('13.6.233.17-node.53')).toBe(true);
    expect(hasOneBudget('11.3.244.8-node.38')).toBe(false);
    expect(hasOneBudget('14.1.0')).toBe(false);
  });

  it('on Node 24 runs a fraction of the full collections for the same buffers, with memory still bounded', async () => {
    const [withModule, without] = await Promise.all([probe(runtimes.node24, bundled), probe(runtimes.node24, plain)]);
    expect(hasOneBudget(withModule.result.v8)).toBe(true);
    expect(without.result.major).toBeGreaterThanOrEqual(10);
    expect(withModule.result.major * 3).toBeLessThanOrEqual(without.result.major);
    // 1 GiB went through; far less was ever held.
    expect(withModule.result.rssMiB).toBeLessThan(400);
    expect(withModule.stderr).toBe('');
  });

  it('says nothing on an older V8, which lacks the flag', async () => {
    const { result, stderr } = await probe(runtimes.system, bundled);
    if (hasOneBudget(result.v8)) return; // the machine's Node has the flag: covered above
    expect(stderr).toBe('');
  });
});
