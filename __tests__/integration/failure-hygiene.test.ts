// When a push fails it stops at once and says what really failed; while it runs, temp disk stays bounded.
// Against the real Distribution registry, behind the fault proxy (which refuses one layer's upload for
// good) and, in front of it, a slow proxy made here that throttles request bodies, so that the other
// layers' uploads are still in flight when the failure comes and a push that waited for them would take
// seconds. Each test gives pushImage its own tmpDir and watches it.
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type LayerSpec, type MadeArchive } from '../support/archives.js';
import { freePort, skopeo, startFaultProxy, startRegistry, type FaultRule, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import type { ImageSource } from '../../src/image/types.js';
import { RegistryClient } from '../../src/registry/client.js';
import { pushImage, spoolLimit, type PushResult } from '../../src/registry/push.js';
import { pushToAll } from '../../src/registry/targets.js';
import { archiveInput } from '../../src/image/input.js';

const MiB = 2 ** 20;
/** Request bodies through the slow proxy, per request. */
const RATE = 2 * MiB;

interface Logged {
  lines: string[];
  logger: { debug(m: string): void; info(m: string): void; warning(m: string): void };
}

function logged(): Logged {
  const lines: string[] = [];
  const add = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  return { lines, logger: { debug: add('debug'), info: add('info'), warning: add('warning') } };
}

interface SlowRequest {
  method: string;
  url: string;
  at: number;
  /** Body bytes received from the client. */
  bytes: number;
  /** When the answer was sent (undefined: never). */
  answered?: number;
  /** The client closed the request before its body ended or its answer came. */
  closedEarly?: boolean;
}

interface SlowProxy {
  host: string;
  seen: SlowRequest[];
  stop(): Promise<void>;
}

/** Passes bytes on at `rate` bytes per second. */
function throttle(rate: number): Transform {
  const start = Date.now();
  let passed = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      passed += chunk.length;
      setTimeout(() => done(null, chunk), Math.max(0, start + (passed / rate) * 1000 - Date.now()));
    },
  });
}

/**
 * A plain-HTTP proxy to `target` (host:port) that records every request and passes request bodies on to
 * the target at `rate` bytes per second. It reads what the client sends at once (into memory), so the
 * client's socket never fills up: a client that gives up on a request is seen at once (closedEarly),
 * however much of the body was still to go upstream.
 */
async function startSlowProxy(target: string, rate: number): Promise<SlowProxy> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const seen: SlowRequest[] = [];
  const server = http.createServer((req, res) => {
    const entry: SlowRequest = { method: req.method ?? '', url: req.url ?? '', at: Date.now(), bytes: 0 };
    seen.push(entry);
    const [thost, tport] = target.split(':');
    const upstream = http.request({ host: thost, port: Number(tport), method: req.method, path: req.url, headers: { ...req.headers, host: target } }, (up) => {
      const headers = { ...up.headers };
      if (typeof headers.location === 'string') headers.location = headers.location.replace(target, host);
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
      res.once('finish', () => (entry.answered = Date.now()));
    });
    upstream.on('error', () => res.destroy());
    // The client went away: before its body ended, or before the answer was sent.
    const cut = () => {
      entry.closedEarly = true;
      upstream.destroy();
    };
    req.once('close', () => {
      if (!req.complete) cut();
    });
    res.once('close', () => {
      if (!res.writableFinished) cut();
    });
    req.on('data', (chunk: Buffer) => (entry.bytes += chunk.length));
    const buffer = new PassThrough({ writableHighWaterMark: 64 * MiB, readableHighWaterMark: 64 * MiB });
    req.pipe(buffer).pipe(throttle(rate)).pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host,
    seen,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Samples the files under `dir` (recursively) every few ms until stopped: the most seen at once. */
function watchFiles(dir: string): { stop(): Promise<{ most: number; samples: number }> } {
  let most = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const files = (await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile());
      most = Math.max(most, files.length);
      samples++;
      await new Promise((r) => setTimeout(r, 3));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { most, samples };
    },
  };
}

/** Collects unhandled rejections while a test runs: a failed push leaves none behind. */
function unhandled(): { stop(): unknown[] } {
  const seen: unknown[] = [];
  const on = (e: unknown) => void seen.push(e);
  process.on('unhandledRejection', on);
  return {
    stop() {
      process.off('unhandledRejection', on);
      return seen;
    },
  };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (digest: string) => digest.slice('sha256:'.length);

/** How long a failing push may take before the test says it hangs (it should take well under a second). */
const HANG_MS = 15_000;

/** The push's outcome: its error, or why there is none (it succeeded, or it never settled). */
async function outcome(push: Promise<unknown>): Promise<Error> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<Error>((resolve) => {
    timer = setTimeout(() => resolve(new Error(`pushImage neither resolved nor rejected within ${HANG_MS / 1000} s`)), HANG_MS);
  });
  try {
    return await Promise.race([
      push.then(
        () => new Error('pushImage resolved: the push was expected to fail'),
        (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
      ),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

let work: string;
let registry: TestRegistry;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-hygiene-'));
  await chmod(work, 0o755); // stream scripts run as nobody, as from the store: they read the archives here
  registry = await startRegistry({});
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function client(host: string, repository: string, logger: Logged['logger']): RegistryClient {
  return new RegistryClient({ registry: host, repository, insecure: true, logger, retry: { attempts: 4, baseMs: 20, maxMs: 200 } });
}

/** What the push would upload (blob digests and sizes): a dry run, nothing sent. */
async function dryRun(source: ImageSource): Promise<PushResult> {
  return pushImage({ source, tags: ['latest'], logger: logged().logger, tmpDir: work });
}

async function emptyDir(name: string): Promise<string> {
  return mkdtemp(join(work, `${name}-`));
}

/** The chain client → slow proxy → fault proxy → registry, for one test. */
async function chain(rules: FaultRule[]) {
  const faults = await startFaultProxy(registry, rules);
  const slow = await startSlowProxy(faults.host, RATE);
  return {
    slow,
    faults,
    async stop() {
      await slow.stop();
      await faults.stop();
    },
  };
}

async function tagged(repository: string): Promise<boolean> {
  return skopeo(['inspect', `docker://${registry.host}/${repository}:latest`]).then(
    () => true,
    () => false,
  );
}

interface Failed {
  error: Error;
  elapsed: number;
  tmp: string;
  log: Logged;
  net: Awaited<ReturnType<typeof chain>>;
  /** The files in tmpDir the moment the push rejected. */
  leftAtFailure: string[];
  /** Requests the slow proxy had seen when the push rejected, and half a second later. */
  requestsAtFailure: number;
  requestsLater: number;
  /** The most files seen in tmpDir at once during the push. */
  most: number;
  stray: unknown[];
}

/** Pushes `source` through the chain with `rules`, expecting it to fail; watches tmpDir and the requests. */
async function failingPush(source: ImageSource, repository: string, rules: FaultRule[]): Promise<Failed> {
  const net = await chain(rules);
  const tmp = await emptyDir(repository.replace(/\W/g, '-'));
  const watch = watchFiles(tmp);
  const log = logged();
  const stray = unhandled();
  const started = Date.now();
  try {
    const error = await outcome(pushImage({ source, client: client(net.slow.host, repository, log.logger), tags: ['latest'], logger: log.logger, tmpDir: tmp }));
    const elapsed = Date.now() - started;
    const leftAtFailure = await readdir(tmp);
    const requestsAtFailure = net.slow.seen.length;
    await settle(500);
    const { most } = await watch.stop();
    return { error, elapsed, tmp, log, net, leftAtFailure, requestsAtFailure, requestsLater: net.slow.seen.length, most, stray: stray.stop() };
  } finally {
    stray.stop();
    await watch.stop();
    await net.stop();
  }
}

/** What every failed push leaves: no temp files, no requests after, no unhandled rejections, no tag. */
async function expectCleanFailure(r: Failed, repository: string): Promise<void> {
  expect(r.leftAtFailure, 'tmpDir when the push rejected').toEqual([]);
  expect(await readdir(r.tmp), 'tmpDir half a second later').toEqual([]);
  expect(r.requestsLater, 'requests after the push rejected: something went on in the background').toBe(r.requestsAtFailure);
  expect(r.stray).toEqual([]);
  expect(r.log.lines.filter((l) => l.includes('uploaded '))).toEqual([]);
  expect(await tagged(repository)).toBe(false);
}

/** PATCHes the client gave up on (no answer came): each must have been closed by the client. */
function expectCutOff(r: Failed): SlowRequest[] {
  const unanswered = r.net.slow.seen.filter((s) => s.method === 'PATCH' && s.answered === undefined);
  for (const p of unanswered) expect(p.closedEarly, `PATCH ${p.url.slice(0, 60)}… after ${p.bytes} bytes`).toBe(true);
  return unanswered;
}

describe('a stream image whose upload the registry refuses', () => {
  /** A streamLayeredImage-like script: writes the archive to stdout, with `between` run after `split` bytes. */
  async function script(archive: MadeArchive, name: string, opts: { split?: number; between?: string } = {}): Promise<ImageSource> {
    const path = join(work, name);
    const body = opts.split
      ? `head -c ${opts.split} ${archive.path}\n${opts.between ?? ''}\ntail -c +${opts.split + 1} ${archive.path}\n`
      : `exec cat ${archive.path}\n`;
    await writeFile(path, `#!/bin/sh\n${body}`);
    await chmod(path, 0o755);
    const source = await detectSource(path);
    expect(source.format).toBe('stream');
    return source;
  }

  /** The first layer's upload is refused for good at its closing PUT: 400, which is not retried. */
  const refuseFirst = (first: string): FaultRule[] => [{ method: 'PUT', path: new RegExp(`[?&]digest=sha256(:|%3A)${hex(first)}`), status: 400, times: 1000 }];

  it("rejects with the registry's error, not the script's broken pipe, at once, with nothing tagged and no temp files", async () => {
    // The big later layer (machine code) takes a second or so to compress and about 7 s to upload through the
    // slow proxy: it is being read from the script when the first layer's upload fails.
    const archive = await makeImageArchive({
      dir: work,
      name: 'stream-src',
      compression: 'none',
      layers: [
        { size: 100_000, seed: 'first', compressible: true },
        { size: 48 * MiB, seed: 'big-later', compressible: true, corpus: process.execPath },
        { size: 50_000, seed: 'last', compressible: true },
      ],
    });
    const source = await script(archive, 'stream-image');
    const dry = await dryRun(source);
    const [first, big] = [dry.layers[0]!, dry.layers[1]!];
    expect((big.size / RATE) * 1000).toBeGreaterThan(6000);

    const r = await failingPush(source, 'hygiene/stream', refuseFirst(first.digest));
    expect(r.error.message).toBe(`registry ${r.net.slow.host} answered 400 Bad Request to PUT blob ${first.digest}: UNKNOWN: injected fault 400`);
    expect(r.error.message).not.toMatch(/exited with|SIGPIPE|EPIPE|broken pipe|premature close/i);
    expect(r.elapsed).toBeLessThan(3000);
    expect(r.net.faults.log.filter((l) => / → 400$/.test(l))).toHaveLength(1);
    expect(r.net.slow.seen.some((s) => s.method === 'PUT' && s.url.includes(hex(big.digest)))).toBe(false);
    expectCutOff(r);
    await expectCleanFailure(r, 'hygiene/stream');
  });

  it('does not wait for a script that pauses between writes to notice its reader is gone', async () => {
    // The script writes the first layer and 2 MiB of the next, then works for 8 s before writing on (as a
    // stream script does while it walks a large store path): the failure is reported at once all the same.
    const layers: LayerSpec[] = [
      { size: 100_000, seed: 'p-first', compressible: true },
      { size: 16 * MiB, seed: 'p-big', compressible: false },
      { size: 50_000, seed: 'p-last', compressible: true },
    ];
    const archive = await makeImageArchive({ dir: work, name: 'pausing-src', compression: 'none', layers });
    const split = 512 + (2048 + Math.ceil(layers[0]!.size / 512) * 512 + 1024) + 512 + 2 * MiB;
    const dry = await dryRun(await script(archive, 'pausing-stream-image'));
    const source = await script(archive, 'pausing-stream-image', { split, between: 'sleep 8' });
    const r = await failingPush(source, 'hygiene/pausing', refuseFirst(dry.layers[0]!.digest));
    expect(r.error.message).toBe(`registry ${r.net.slow.host} answered 400 Bad Request to PUT blob ${dry.layers[0]!.digest}: UNKNOWN: injected fault 400`);
    expect(r.elapsed).toBeLessThan(3000);
    await expectCleanFailure(r, 'hygiene/pausing');
  });
});

describe('an archive whose upload of one layer the registry refuses', () => {
  // Two 8 MiB layers (4 s each to upload through the slow proxy), the refused one, and 48 MiB of machine
  // code (a second or so to compress, several seconds to upload).
  const layers: LayerSpec[] = [
    { size: 8 * MiB, seed: 'ff-0', compressible: false },
    { size: 8 * MiB, seed: 'ff-1', compressible: false },
    { size: 100_000, seed: 'ff-refused', compressible: true },
    { size: 48 * MiB, seed: 'ff-3', compressible: true, corpus: process.execPath },
  ];

  for (const compression of ['none', 'gzip'] as const) {
    const kind = compression === 'none' ? 'a plain .tar (layers read in parallel)' : 'a .tar.gz (layers read in order, as a stream)';
    it(`aborts the uploads in flight, rejects with that one failure, and leaves no temp files: ${kind}`, async () => {
      const archive = await makeImageArchive({ dir: work, name: `failfast-${compression}`, compression, layers });
      const source = await detectSource(archive.path);
      const dry = await dryRun(source);
      const refused = dry.layers[2]!;
      expect(Math.min(...dry.layers.filter((_, i) => i !== 2).map((l) => (l.size / RATE) * 1000))).toBeGreaterThan(3900);
      const repository = `hygiene/failfast-${compression}`;
      // The refused layer's PATCH (known by its size) is answered 403: not retried, not a lost session.
      const r = await failingPush(source, repository, [
        { method: 'PATCH', path: /\/blobs\/uploads\//, when: (req) => req.headers['content-length'] === String(refused.size), status: 403, times: 1000 },
      ]);
      expect(r.error.message).toBe(
        `registry ${r.net.slow.host} answered 403 Forbidden to PATCH blob ${refused.digest}: UNKNOWN: injected fault 403 (the credentials were accepted but may not push to this repository)`,
      );
      expect(r.elapsed).toBeLessThan(3000);
      expect(r.net.faults.log.filter((l) => / → 403$/.test(l))).toHaveLength(1);
      // Other layers were compressed and their uploads under way when it failed...
      expect(r.most).toBeGreaterThanOrEqual(2);
      const cut = expectCutOff(r);
      expect(cut.length, 'PATCHes in flight when the push failed').toBeGreaterThanOrEqual(1);
      // ...and none of them was finished: no PUT closed another blob.
      expect(r.net.slow.seen.filter((s) => s.method === 'PUT' && /[?&]digest=/.test(s.url))).toEqual([]);
      await expectCleanFailure(r, repository);
    });
  }
});

describe('a push to two registries whose first refuses a layer', () => {
  it('rejects with that one failure at once, aborts the uploads to the second registry, and tags nothing in either', async () => {
    const layers: LayerSpec[] = [
      { size: 8 * MiB, seed: 'two-0', compressible: false },
      { size: 8 * MiB, seed: 'two-refused', compressible: false },
      { size: 100_000, seed: 'two-small', compressible: true },
    ];
    const archive = await makeImageArchive({ dir: work, name: 'two-registries', compression: 'none', layers });
    const source = await detectSource(archive.path);
    const refused = (await dryRun(source)).layers[1]!;
    // The first registry refuses a large layer (403: not retried) at once; the second takes uploads slowly
    // (4 s a layer), so its uploads, that layer's own copy included, are in flight when the first refuses.
    const first = await startFaultProxy(registry, [{ method: 'PATCH', path: /\/blobs\/uploads\//, when: (req) => req.headers['content-length'] === String(refused.size), status: 403, times: 1000 }]);
    const other = await startRegistry({});
    const slow = await startSlowProxy(other.host, RATE);
    const tmp = await emptyDir('two-registries');
    const log = logged();
    const stray = unhandled();
    const targets = [
      { client: client(first.host, 'hygiene/two', log.logger), tags: ['latest'], reuse: [], known: [] },
      { client: client(slow.host, 'hygiene/two', log.logger), tags: ['latest'], reuse: [], known: [] },
    ];
    try {
      const started = Date.now();
      const error = await outcome(pushToAll(archiveInput(source), targets, { logger: log.logger, tmpDir: tmp }));
      const elapsed = Date.now() - started;
      expect(error.message).toBe(`registry ${first.host} answered 403 Forbidden to PATCH blob ${refused.digest}: UNKNOWN: injected fault 403 (the credentials were accepted but may not push to this repository)`);
      expect(elapsed).toBeLessThan(3000); // not after the second registry's 4 s uploads
      const requestsAtFailure = slow.seen.length;
      await settle(500);
      expect(slow.seen.length, 'requests to the second registry after the push rejected').toBe(requestsAtFailure);
      // The second registry's uploads of the large layers, the refused one's own copy included, were cut off
      // (or never started): neither finished (the small one may have).
      const small = (await dryRun(source)).layers[2]!.digest;
      const closed = slow.seen.filter((r) => r.method === 'PUT' && /[?&]digest=/.test(r.url)).map((r) => decodeURIComponent(r.url));
      expect(closed.filter((u) => !u.includes(small))).toEqual([]);
      // Of the two large layers' 16 MiB, less than one layer's worth reached the second registry.
      expect(slow.seen.filter((r) => r.method === 'PATCH').reduce((n, r) => n + r.bytes, 0)).toBeLessThan(8 * MiB);
      expect(stray.stop(), 'unhandled rejections').toEqual([]);
      expect(await readdir(tmp)).toEqual([]);
      expect(await tagged('hygiene/two')).toBe(false);
      await expect(skopeo(['inspect', `docker://${other.host}/hygiene/two:latest`])).rejects.toThrow();
    } finally {
      stray.stop();
      for (const t of targets) t.client.close();
      await slow.stop();
      await first.stop();
      await other.stop();
    }
  });
});

describe('temp disk', () => {
  const layers: LayerSpec[] = Array.from({ length: 10 }, (_, i) => ({ size: 1 * MiB + i * 4096, seed: `spool-${i}`, compressible: i % 2 === 0 }));

  for (const compression of ['none', 'gzip'] as const) {
    it(`holds at most spoolLimit() = ${spoolLimit()} compressed layers at once, each removed once uploaded (${compression === 'none' ? '.tar, read in parallel' : '.tar.gz, read as a stream'})`, async () => {
      const archive = await makeImageArchive({ dir: work, name: `spool-${compression}`, compression, layers });
      const net = await chain([]);
      const tmp = await emptyDir(`spool-${compression}-tmp`);
      const watch = watchFiles(tmp);
      const log = logged();
      try {
        const result = await pushImage({ source: await detectSource(archive.path), client: client(net.slow.host, `hygiene/spool-${compression}`, log.logger), tags: ['latest'], logger: log.logger, tmpDir: tmp });
        const { most, samples } = await watch.stop();
        expect(result.layers.map((l) => l.action)).toEqual(layers.map(() => 'uploaded'));
        expect(samples).toBeGreaterThan(50);
        expect(most).toBeLessThanOrEqual(spoolLimit());
        // The bound is what held it: with uploads this slow, the spool filled up to it.
        expect(most).toBe(spoolLimit());
        expect(await readdir(tmp)).toEqual([]);
        const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/hygiene/spool-${compression}:latest`])) as { Digest: string };
        expect(inspected.Digest).toBe(result.digest);
      } finally {
        await watch.stop();
        await net.stop();
      }
    });
  }
});
