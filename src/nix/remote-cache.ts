// The `binary-cache` input: a Nix binary cache beyond the repository's GitHub cache (S3 or S3-compatible,
// an HTTP server that takes PUT, a directory), shared by every job and repository that names it.
//
// Before the build (main): the cache is probed (its nix-cache-info, PROBE_MS) and handed to Nix as a
// substituter after every upstream cache and after the GitHub store cache (BINARY_CACHE_PRIORITY), its
// paths taken only with a signature by the trusted keys (extra-trusted-public-keys; never trusted=1).
// An http(s) or s3 cache is read through the action's loopback front (cache-http.ts): Nix never sees
// a credential, and a cache that fails or stalls mid-build turns into an empty one at once. A file://
// cache is read by Nix directly.
//
// After the build (post, also when main failed): the paths pathsToSave selects (what the job built, and
// what it took from its own caches) that the cache lacks — asked with HEAD <hash>.narinfo, in parallel —
// are uploaded, signed with binary-cache-key in this process: the NAR (zstd where Node has it) and then
// the narinfo, PUT to an http(s) cache, written to a file:// one. An s3 cache is written by `nix copy`
// (Nix's own S3 client), given the key as a 0600 file under RUNNER_TEMP removed right after, and the
// runner's AWS_* variables: the one Nix process that gets them. Nix adds a path to a binary cache only
// once its references are there, so `nix copy` sends the closure of each missing path, minus what the
// bucket holds: the first upload also sends the upstream paths it references (signed by the key too).
//
// Whatever the cache does, the job does not fail: a probe that fails leaves the cache out (one warning),
// and the post step does not try it again; an upload stops at the first failure (one warning).
import * as core from '@actions/core';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { withoutSecrets } from '../image/child-env.js';
import { limiter } from '../registry/limit.js';
import { dumpNarThrough, hashPart, narinfo, STORE_CACHE_PRIORITY, type NarFile } from './binary-cache.js';
import { awsEnvironment, CacheUnreachable, fetchSmall, PROBE_MS, refusal, s3Region, send, startCacheFront, upstreamOf, type CacheFront, type Upstream } from './cache-http.js';
import { parseCacheUrl, type CacheUrl } from './cache-url.js';
import { bypassFor } from '../proxy.js';
import { pathsToSave, type Built } from './cache.js';
import { keyName, parseSecretKey, type SecretKey } from './signing.js';
import { nixBase32, type PathInfo } from './store.js';
import { READ_CHUNK } from '../hash.js';

/** After cache.nixos.org (40), every other upstream cache and the GitHub store cache (1000, already on the
 *  runner's disk): the binary cache gives a path only when none of those has it. */
export const BINARY_CACHE_PRIORITY = STORE_CACHE_PRIORITY + 10;

/** Narinfo lookups at once, and uploads at once. */
const LOOKUPS = 16;
const UPLOADS = 4;

export interface BinaryCacheState {
  url: string;
  trustedKeys: string[];
  nix: string;
  nixVersion?: string;
  /** The cache had no nix-cache-info: the upload writes one first. */
  fresh?: boolean;
  /** Why the main step left the cache out, or stopped reading it: the post step does not try it again. */
  failed?: string;
}

export interface OpenedBinaryCache {
  state: BinaryCacheState;
  /** NIX_CONFIG lines for the build; '' when the cache is left out. */
  nixConf: string;
  /** Variables for Nix besides NIX_CONFIG: the loopback front kept off the runner's proxy. */
  nixEnv?: Record<string, string>;
  /** The store URL Nix names it by ("copying path '…' from '<nixName>'"), when it is a substituter. */
  nixName?: string;
  /** One line for the summary and metadata. */
  note: string;
  close(): Promise<void>;
}

/** The nix.conf lines that make `url` a substituter trusted through `keys` only. */
export function binaryCacheLines(url: string, keys: string[]): string {
  // fallback: a download that breaks half-way (a NAR cut off, a stall after the headers) makes Nix build
  // that path instead of failing the build: a cache never costs more than the time it took.
  return `extra-substituters = ${url}?priority=${BINARY_CACHE_PRIORITY}\nextra-trusted-public-keys = ${keys.join(' ')}\nfallback = true`;
}

/** Masks what the runner gives the action to reach the cache (netrc password, AWS secret and session token). */
function maskCredentials(upstream: { secrets: string[] }): void {
  for (const s of upstream.secrets) core.setSecret(s);
  for (const name of ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) if (process.env[name]) core.setSecret(process.env[name]!);
}

/** Whether a nix-cache-info names this machine's store (or no store at all). */
function sameStore(text: string): boolean {
  const dir = /^StoreDir:\s*(\S+)\s*$/m.exec(text)?.[1];
  return dir === undefined || dir === '/nix/store';
}

/**
 * Probes the cache and makes it a substituter (main step, before the build). `onFailure` hears of a
 * failure mid-build, after the one warning: the caller records it for the post step.
 */
export async function openBinaryCache(opts: { url: string; trustedKeys: string[]; nix: string; nixVersion?: string; onFailure?: () => void }): Promise<OpenedBinaryCache> {
  const cache = parseCacheUrl(opts.url);
  const state: BinaryCacheState = { url: opts.url, trustedKeys: opts.trustedKeys, nix: opts.nix, ...(opts.nixVersion ? { nixVersion: opts.nixVersion } : {}) };
  const keys = opts.trustedKeys.map(keyName).join(' or ');
  const leftOut = (reason: string): OpenedBinaryCache => {
    state.failed = reason;
    core.warning(`binary cache ${opts.url}: ${reason}; the job went on without it`);
    return { state, nixConf: '', note: `not used: ${reason}`, close: async () => undefined };
  };
  const empty = (): OpenedBinaryCache => {
    state.fresh = true;
    core.info(`binary cache ${opts.url}: no nix-cache-info yet, so nothing to take from it; the post step writes it with the first upload`);
    return { state, nixConf: '', note: 'empty (no nix-cache-info yet)', close: async () => undefined };
  };

  if (cache.kind === 'file') {
    const info = join(cache.base, 'nix-cache-info');
    if (!existsSync(info)) return empty();
    if (!sameStore(await readFile(info, 'utf8').catch(() => ''))) return leftOut('its nix-cache-info names another StoreDir than /nix/store');
    const nixName = `file://${cache.base}`;
    core.info(`binary cache ${opts.url}: a substituter after the upstream caches; Nix takes a path from it only signed by ${keys}`);
    return { state, nixConf: binaryCacheLines(nixName, opts.trustedKeys), nixName, note: 'substituter', close: async () => undefined };
  }

  const upstream = upstreamOf(cache);
  maskCredentials(upstream);
  let probe: { status: number; text: string; truncated?: true };
  try {
    const { url, headers } = upstream.target('/nix-cache-info', 'GET');
    probe = await fetchSmall(url, { method: 'GET', headers, answerMs: PROBE_MS }, 64 * 1024);
  } catch (error) {
    return leftOut(`unreachable (${(error as Error).message})`);
  }
  // A missing bucket is not an empty cache: Nix's S3 store would create the bucket it was misnamed as.
  if (probe.status === 404 && /NoSuchBucket/.test(probe.text)) return leftOut('its bucket does not exist (NoSuchBucket): check the s3:// URL');
  if (probe.status === 404) return empty();
  // Access denied (for S3 also a missing object without s3:ListBucket): nothing can be read, nor written.
  if (probe.status === 403) return leftOut(`nix-cache-info answered 403: access denied${cache.kind === 's3' ? ' (S3 also says 403 for a missing object without s3:ListBucket)' : ''}`);
  const refused = refusal(probe.status, 'nix-cache-info');
  if (refused) return leftOut(refused);
  if (probe.truncated) return leftOut('its nix-cache-info is over 64 KiB, which no cache writes');
  if (!sameStore(probe.text)) return leftOut('its nix-cache-info names another StoreDir than /nix/store');

  let front: CacheFront;
  try {
    front = await startCacheFront(upstream, `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${BINARY_CACHE_PRIORITY}\n`, (reason) => {
      state.failed = reason;
      core.warning(`binary cache ${opts.url}: ${reason}; the build went on without it from then on`);
      opts.onFailure?.();
    });
  } catch (error) {
    return leftOut(`cannot listen on a loopback port for Nix to read it through (${(error as Error).message})`);
  }
  core.info(
    `binary cache ${opts.url}: a substituter after the upstream caches (Nix reads it through ${front.url}); ` +
      `Nix takes a path from it only signed by ${keys}${upstream.credentialed ? '' : cache.kind === 's3' ? ' (no AWS credentials in the environment: unsigned requests)' : ''}`,
  );
  // No proxy reaches the runner's loopback: Nix (curl) goes to the front directly.
  return { state, nixConf: binaryCacheLines(front.url, opts.trustedKeys), nixEnv: bypassFor('127.0.0.1'), nixName: front.url, note: 'substituter', close: () => front.close() };
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

/** The store path a Nix log line says was copied from `nixName`, if it says so. */
export function substitutedFrom(line: string, nixName: string): string | undefined {
  const m = /copying path '([^']+)' from '([^']+)'/.exec(line.replace(ANSI, ''));
  return m && m[2]!.replace(/\/+$/, '') === nixName ? m[1] : undefined;
}

// ---- upload ------------------------------------------------------------------------------------------

export interface UploadSummary {
  url: string;
  /** Paths selected (built here, or taken from the job's own caches). */
  paths: number;
  /** Of those, the ones the cache held already. */
  present: number;
  /** The ones sent now. */
  uploaded: string[];
  /** NAR bytes of the uploaded paths, and bytes sent (compressed). */
  narBytes: number;
  sentBytes: number;
  seconds: number;
  skipped?: string;
}

/** zstd when this Node has it (22.15 and later), else the NAR as it is. */
function compressor(): { stream: () => Transform | PassThrough; compression: string; ext: string } {
  const z = zlib as unknown as { createZstdCompress?: () => Transform };
  if (typeof z.createZstdCompress === 'function') return { stream: () => z.createZstdCompress!(), compression: 'zstd', ext: '.zst' };
  return { stream: () => new PassThrough(), compression: 'none', ext: '' };
}

function counter(hash: ReturnType<typeof createHash>, count: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      count.n += chunk.length;
      callback(null, chunk);
    },
  });
}

/** Writes the path's NAR, compressed, to `file`; checks it against what path-info says (hash and size). */
export async function packNar(nix: string, info: PathInfo, file: string, env: NodeJS.ProcessEnv): Promise<NarFile> {
  const { stream, compression, ext } = compressor();
  const narHash = createHash('sha256');
  const fileHash = createHash('sha256');
  const narSize = { n: 0 };
  const fileSize = { n: 0 };
  await dumpNarThrough(nix, info.path, env, [counter(narHash, narSize), stream(), counter(fileHash, fileSize), createWriteStream(file, { mode: 0o600 })]);
  const got = `sha256:${nixBase32(narHash.digest())}`;
  if (narSize.n !== info.narSize || got !== info.narHash) throw new Error(`the NAR of ${info.path} is not what path-info says (${narSize.n} bytes, ${got})`);
  const hash = nixBase32(fileHash.digest());
  return { url: `nar/${hash}.nar${ext}`, compression, fileHash: `sha256:${hash}`, fileSize: fileSize.n };
}

/** Why a PUT's answer is not a success. */
function putRefusal(status: number, path: string): string | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 401 || status === 403) return `PUT ${path} answered ${status}: the cache refused the upload (credentials: the runner's netrc file)`;
  return `PUT ${path} answered ${status}`;
}

async function put(upstream: Upstream, path: string, body: { file: string; size: number } | { text: string }, type: string): Promise<void> {
  const size = 'file' in body ? body.size : Buffer.byteLength(body.text);
  const payload = (): Readable => ('file' in body ? createReadStream(body.file, { highWaterMark: READ_CHUNK }) : Readable.from([Buffer.from(body.text)]));
  const { url, headers } = upstream.target(path, 'PUT', { headers: { 'content-type': type, 'content-length': String(size) } });
  const answer = await send(url, { method: 'PUT', headers, body: payload });
  answer.body.resume();
  const why = putRefusal(answer.status, path);
  if (why) throw new CacheUnreachable(why);
}

/** Whether the cache holds the path's narinfo (HEAD; a file:// cache: the file). */
async function holds(cache: CacheUrl, upstream: Upstream | undefined, info: PathInfo): Promise<boolean> {
  const name = `${hashPart(info.path)}.narinfo`;
  if (cache.kind === 'file') return existsSync(join(cache.base, name));
  const { url, headers } = upstream!.target(`/${name}`, 'HEAD');
  const answer = await send(url, { method: 'HEAD', headers });
  answer.body.resume();
  if (answer.status >= 200 && answer.status < 300) return true;
  const why = refusal(answer.status, `HEAD /${name}`);
  if (why) throw new CacheUnreachable(why);
  return false;
}

/** A directory of its own under RUNNER_TEMP (0700), for the NARs being sent and the S3 key file. */
async function scratchDir(): Promise<string> {
  const parent = process.env.RUNNER_TEMP || tmpdir();
  await mkdir(parent, { recursive: true });
  return mkdtemp(join(parent, 'nix-image-binary-cache-'));
}

/** The URL `nix copy` writes an S3 cache with: the bucket's region filled in from the runner, the key file named. */
export function s3CopyUrl(cache: CacheUrl, keyFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const params = new URLSearchParams(cache.params);
  params.set('region', s3Region(cache, env));
  const query = [...params].map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
  // Nix splits the parameters itself and takes the path as written.
  query.push(`secret-key=${keyFile}`);
  return `s3://${cache.base}?${query.join('&')}`;
}

/** The environment of the action's `nix copy`: no input, no runner token, no NIX_CONFIG of the job's, only
 *  the features it needs — and the AWS_* variables, which no other Nix process of the action is given. */
export function nixCopyEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...withoutSecrets(env), NIX_CONFIG: [env.NIX_CONFIG, 'extra-experimental-features = nix-command flakes'].filter(Boolean).join('\n'), ...awsEnvironment(env) };
}

/**
 * `nix copy --to <to> <paths>` (their closures, minus what the destination holds: Nix refuses a path whose
 * references the binary cache lacks), the secret key in a 0600 file of a 0700 directory under RUNNER_TEMP
 * that is removed as soon as Nix exits (also when it fails). `to` gets the file's path from `withKey`.
 * The key is in no environment and no argument.
 */
/** The longest an upload through `nix copy` (S3) may take. */
const COPY_DEADLINE_MS = 15 * 60_000;

export async function nixCopyWithKey(nix: string, withKey: (keyFile: string) => string, secretKey: string, paths: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const dir = await scratchDir();
  const keyFile = join(dir, 'signing-key');
  if (/\s/.test(keyFile)) throw new Error(`cannot give Nix the signing key: the temporary path ${keyFile} has whitespace (RUNNER_TEMP)`);
  try {
    await writeFile(keyFile, secretKey, { mode: 0o600 });
    const args = ['copy', '--to', withKey(keyFile), ...paths];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(nix, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      // Nix's S3 client waits long for a request and retries: the post step is bounded all the same.
      const deadline = setTimeout(() => {
        err += `\nno end after ${COPY_DEADLINE_MS / 60_000} minutes: stopped`;
        child.kill('SIGKILL');
      }, COPY_DEADLINE_MS);
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      child.on('error', (e) => {
        clearTimeout(deadline);
        reject(e);
      });
      child.on('close', (code) => {
        clearTimeout(deadline);
        if (code === 0) resolve();
        else reject(new CacheUnreachable(`nix copy failed (exit ${code}): ${err.replace(ANSI, '').trim().split('\n').filter((l) => l.trim()).pop() ?? ''}`));
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Uploads what the job built that the cache lacks (post step). Nothing without binary-cache-key (the
 * cache takes only signed paths), nor when the main step found the cache unreachable. Never throws for
 * what the cache does: one warning, and the summary says what was sent.
 */
export async function uploadToBinaryCache(raw: unknown, built: Built, opts: { secretKey?: string } = {}): Promise<UploadSummary | undefined> {
  const state = raw as BinaryCacheState | undefined;
  if (!state?.url) return undefined;
  const started = Date.now();
  const summary = (s: Partial<UploadSummary>): UploadSummary => ({ url: state.url, paths: 0, present: 0, uploaded: [], narBytes: 0, sentBytes: 0, ...s, seconds: (Date.now() - started) / 1000 });
  if (!opts.secretKey) {
    core.info('binary cache: nothing uploaded: binary-cache-key is not set, so this job cannot sign what it would upload');
    return summary({ skipped: 'no binary-cache-key to sign with' });
  }
  if (state.failed) {
    core.info(`binary cache: nothing uploaded: the main step could not use it (${state.failed}), so it is not tried again`);
    return summary({ skipped: `the cache could not be used in the main step (${state.failed})` });
  }
  const key = parseSecretKey(opts.secretKey);
  const cache = parseCacheUrl(state.url);
  // The action's own Nix calls, without the AWS_* variables (only `nix copy` to S3 gets them).
  const env = { ...withoutSecrets(process.env), NIX_CONFIG: [process.env.NIX_CONFIG, 'extra-experimental-features = nix-command flakes'].filter(Boolean).join('\n') };
  const ownKeys = [...new Set([...state.trustedKeys, key.publicKey])];
  const { keep } = await pathsToSave(state.nix, built, Number.MAX_SAFE_INTEGER, env, { ownKeys, nixVersion: state.nixVersion });
  if (keep.length === 0) {
    core.info('binary cache: nothing built here that an upstream cache does not serve; nothing to upload');
    return summary({ skipped: 'nothing to upload' });
  }
  const upstream = cache.kind === 'file' ? undefined : upstreamOf(cache);
  if (upstream) maskCredentials(upstream);
  let missing: PathInfo[];
  try {
    const lookup = limiter(LOOKUPS);
    const held = await Promise.all(keep.map((info) => lookup(() => holds(cache, upstream, info))));
    missing = keep.filter((_, i) => !held[i]);
  } catch (error) {
    core.warning(`binary cache ${state.url}: nothing uploaded: ${(error as Error).message}`);
    return summary({ paths: keep.length, skipped: (error as Error).message });
  }
  const present = keep.length - missing.length;
  if (missing.length === 0) {
    core.info(`binary cache ${state.url}: holds all ${keep.length} paths already; nothing to upload`);
    return summary({ paths: keep.length, present });
  }
  const sent = await sendPaths(cache, upstream, state, { key, secret: opts.secretKey }, missing, env);
  const narBytes = missing.filter((m) => sent.uploaded.includes(m.path)).reduce((n, m) => n + m.narSize, 0);
  const result = summary({ paths: keep.length, present, uploaded: sent.uploaded, narBytes, sentBytes: sent.bytes, ...(sent.stopped ? { skipped: sent.stopped } : {}) });
  if (sent.stopped) {
    core.warning(`binary cache ${state.url}: upload stopped: ${sent.stopped}; ${sent.uploaded.length} of ${missing.length} paths uploaded`);
  } else {
    core.info(`binary cache ${state.url}: uploaded ${sent.uploaded.length} paths (${narBytes} NAR bytes, ${sent.bytes} sent), signed by ${key.name}, in ${result.seconds.toFixed(1)} s; ${present} were there already`);
  }
  return result;
}

/** Sends the paths: PUT or written in this process (http, file), `nix copy` for s3. Stops at the first failure. */
async function sendPaths(
  cache: CacheUrl,
  upstream: Upstream | undefined,
  state: BinaryCacheState,
  signing: { key: SecretKey; secret: string },
  paths: PathInfo[],
  env: NodeJS.ProcessEnv,
): Promise<{ uploaded: string[]; bytes: number; stopped?: string }> {
  const { key } = signing;
  if (cache.kind === 's3') {
    try {
      await nixCopyWithKey(state.nix, (file) => s3CopyUrl(cache, file), signing.secret, paths.map((p) => p.path), nixCopyEnv(process.env));
      return { uploaded: paths.map((p) => p.path), bytes: 0 };
    } catch (error) {
      return { uploaded: [], bytes: 0, stopped: (error as Error).message };
    }
  }
  const uploaded: string[] = [];
  let bytes = 0;
  let stopped: string | undefined;
  // A file:// cache: a directory of this upload's own beside the files (renames stay on one file system).
  const work = cache.kind === 'file' ? join(cache.base, `.nix-image-action-upload-${randomBytes(6).toString('hex')}`) : await scratchDir();
  try {
    await mkdir(work, { recursive: true, mode: 0o700 });
    const cacheInfo = `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${BINARY_CACHE_PRIORITY}\n`;
    if (cache.kind === 'file') {
      await mkdir(join(cache.base, 'nar'), { recursive: true });
      if (!existsSync(join(cache.base, 'nix-cache-info'))) await writeFile(join(cache.base, 'nix-cache-info'), cacheInfo);
    } else if (state.fresh) {
      await put(upstream!, '/nix-cache-info', { text: cacheInfo }, 'text/x-nix-cache-info');
    }
    const slot = limiter(UPLOADS);
    const narinfoSlot = limiter(UPLOADS);
    // A narinfo is published only once those of the paths it refers to (of this upload) are: a cache never
    // names a path whose references it lacks. The wait is outside the upload slots, so nothing waits on a
    // queued upload while holding one. Each path's promise says whether it was published.
    const published = new Map<string, Promise<boolean>>();
    const publish = async (info: PathInfo, i: number): Promise<boolean> => {
      const nar = await slot(async () => {
        if (stopped) return undefined;
        const temp = join(work, `${i}-${hashPart(info.path)}.nar`);
        try {
          const packed = await packNar(state.nix, info, temp, env);
          if (cache.kind === 'file') {
            // Readable by whoever reads the directory (another user's Nix), as its narinfo is.
            await chmod(temp, 0o644);
            await rename(temp, join(cache.base, packed.url));
          } else {
            await put(upstream!, `/${packed.url}`, { file: temp, size: (await stat(temp)).size }, 'application/x-nix-nar');
          }
          return packed;
        } catch (error) {
          stopped ??= (error as Error).message;
          return undefined;
        } finally {
          await rm(temp, { force: true });
        }
      });
      if (!nar) return false;
      // Every task is in the map before any resumes from its first await.
      const refs = info.references.filter((r) => r !== info.path && published.has(r));
      if (!(await Promise.all(refs.map((r) => published.get(r)!))).every(Boolean)) return false;
      // Narinfos go out a few at a time too: a path many refer to, done last, frees them all at once.
      const done = await narinfoSlot(async () => {
        try {
          const text = narinfo(info, key, nar);
          if (cache.kind === 'file') {
            const meta = join(work, `${hashPart(info.path)}.narinfo`);
            await writeFile(meta, text, { mode: 0o644 });
            await rename(meta, join(cache.base, `${hashPart(info.path)}.narinfo`));
          } else {
            await put(upstream!, `/${hashPart(info.path)}.narinfo`, { text }, 'text/x-nix-narinfo');
          }
          return true;
        } catch (error) {
          stopped ??= (error as Error).message;
          return false;
        }
      });
      if (done) {
        uploaded.push(info.path);
        bytes += nar.fileSize;
      }
      return done;
    };
    for (const [i, info] of paths.entries()) published.set(info.path, publish(info, i));
    await Promise.all(published.values());
  } catch (error) {
    stopped ??= (error as Error).message;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { uploaded, bytes, ...(stopped ? { stopped } : {}) };
}

