// HTTP for a remote binary cache (nix/remote-cache.ts): requests bounded in time, credentials from the
// runner (a netrc file for HTTP, the AWS_* variables for S3, signed here with AWS Signature Version 4),
// and the loopback front Nix reads the cache through during the build.
//
// The front: Nix is given http://127.0.0.1:<port> as the substituter, and the action's own process
// forwards each GET and HEAD of a binary cache file to the cache, with the credentials, each request
// bounded (REQUEST_MS until the answer starts, STALL_MS without a byte). The first failure (5xx, a refused
// credential, a timeout, a broken connection) is reported once and, from then on, the front answers
// 404 to everything, at once: to Nix the cache then holds nothing, and it builds. Nix itself never waits
// out its own retries and timeouts on a cache that is down (Nix 2.8 fails the build on a narinfo that
// answers 500, and aborts with --fallback), and never sees a credential.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { agentFor, tunnelRefusal } from '../proxy.js';
import type { AddressInfo, Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isCacheFile, type CacheUrl } from './cache-url.js';

/** Until a request's answer starts (the probe has less: PROBE_MS). */
export const REQUEST_MS = 10_000;
/** Without a byte moving either way, once started. */
export const STALL_MS = 10_000;
/** The nix-cache-info probe before the build. */
export const PROBE_MS = 5_000;

// ---- credentials -------------------------------------------------------------------------------------

export interface NetrcEntry {
  machine?: string;
  login?: string;
  password?: string;
}

/** A netrc file's entries (`machine`, `default`, `login`, `password`; `macdef` bodies skipped). */
export function parseNetrc(text: string): NetrcEntry[] {
  const entries: NetrcEntry[] = [];
  const lines = text.split(/\r?\n/);
  let current: NetrcEntry | undefined;
  for (let l = 0; l < lines.length; l++) {
    const tokens = lines[l]!.replace(/(^|\s)#.*$/, '').split(/\s+/).filter(Boolean);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === 'machine' || t === 'default') {
        current = t === 'machine' ? { machine: tokens[++i] } : {};
        entries.push(current);
      } else if ((t === 'login' || t === 'password' || t === 'account') && current) {
        const value = tokens[++i];
        if (t !== 'account' && value !== undefined) current[t] = value;
      } else if (t === 'macdef') {
        // The macro runs to the next empty line.
        while (l + 1 < lines.length && lines[l + 1]!.trim() !== '') l++;
        current = undefined;
        break;
      }
    }
  }
  return entries;
}

/** The runner's netrc file, as curl (and so Nix) names it: $NETRC, else ~/.netrc. */
export function netrcPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.NETRC || join(env.HOME || homedir(), '.netrc');
}

/** The login and password the netrc gives a host (its `machine`, else `default`), as curl matches it. */
export function netrcCredentials(host: string, env: NodeJS.ProcessEnv = process.env): { login: string; password: string } | undefined {
  let text: string;
  try {
    text = readFileSync(netrcPath(env), 'utf8');
  } catch {
    return undefined;
  }
  const entries = parseNetrc(text);
  const entry = entries.find((e) => e.machine === host) ?? entries.find((e) => e.machine === undefined);
  return entry?.password !== undefined ? { login: entry.login ?? '', password: entry.password } : undefined;
}

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The credentials aws-actions/configure-aws-credentials leaves in the environment, if any. */
export function awsCredentials(env: NodeJS.ProcessEnv = process.env): AwsCredentials | undefined {
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return undefined;
  return { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

/** The environment of the action's own `nix copy` to S3: the runner's AWS_* variables (and nothing else of them). */
export function awsEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => /^AWS_/.test(e[0]) && e[1] !== undefined));
}

/** The bucket's region: the URL's region=, else the runner's AWS_REGION / AWS_DEFAULT_REGION, else us-east-1 (Nix's default). */
export function s3Region(cache: CacheUrl, env: NodeJS.ProcessEnv = process.env): string {
  return cache.params.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
}

const encodeSegment = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Where an object of the bucket is: path-style on an endpoint= (MinIO, R2, …) or for a bucket name with
 *  dots (TLS), else virtual-hosted on AWS. */
export function s3ObjectUrl(cache: CacheUrl, key: string, env: NodeJS.ProcessEnv = process.env): URL {
  const scheme = cache.params.scheme || 'https';
  const path = key.split('/').map(encodeSegment).join('/');
  if (cache.params.endpoint) return new URL(`${scheme}://${cache.params.endpoint}/${encodeSegment(cache.base)}/${path}`);
  const region = s3Region(cache, env);
  if (cache.base.includes('.')) return new URL(`${scheme}://s3.${region}.amazonaws.com/${cache.base}/${path}`);
  return new URL(`${scheme}://${cache.base}.s3.${region}.amazonaws.com/${path}`);
}

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
export const EMPTY_SHA256 = sha256Hex('');

/**
 * AWS Signature Version 4 headers of an S3 request without a body (or with one of hash `payloadHash`):
 * host, x-amz-date, x-amz-content-sha256, x-amz-security-token with a session token, and Authorization.
 * `headers` are signed too (lower-case names).
 */
export function signS3(opts: { method: string; url: URL; region: string; credentials: AwsCredentials; date?: Date; headers?: Record<string, string>; payloadHash?: string }): Record<string, string> {
  const amzDate = (opts.date ?? new Date()).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = {
    ...Object.fromEntries(Object.entries(opts.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
    host: opts.url.host,
    'x-amz-content-sha256': opts.payloadHash ?? EMPTY_SHA256,
    'x-amz-date': amzDate,
    ...(opts.credentials.sessionToken ? { 'x-amz-security-token': opts.credentials.sessionToken } : {}),
  };
  const names = Object.keys(headers).sort();
  const query = [...opts.url.searchParams]
    .map(([k, v]) => [encodeSegment(k), encodeSegment(v)])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [opts.method, opts.url.pathname || '/', query, ...names.map((n) => `${n}:${headers[n]!.trim().replace(/\s+/g, ' ')}`), '', names.join(';'), headers['x-amz-content-sha256']].join('\n');
  const scope = `${day}/${opts.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${opts.credentials.secretAccessKey}`, day), opts.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const { host: _host, ...rest } = headers;
  return { ...rest, authorization: `AWS4-HMAC-SHA256 Credential=${opts.credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` };
}

// ---- requests ----------------------------------------------------------------------------------------

/** A request that failed without an HTTP answer, or took too long: the cache is unreachable. */
export class CacheUnreachable extends Error {
  override name = 'CacheUnreachable';
}

export interface Upstream {
  /** The request for a file of the cache (`path` starts with /), credentials included. */
  target(path: string, method: string, extra?: { headers?: Record<string, string>; payloadHash?: string }): { url: URL; headers: Record<string, string> };
}

/** How the action reaches a cache: http(s) with the netrc's basic credentials for its host, s3 signed. */
export function upstreamOf(cache: CacheUrl, env: NodeJS.ProcessEnv = process.env): Upstream & { credentialed: boolean; secrets: string[] } {
  if (cache.kind === 's3') {
    const credentials = awsCredentials(env);
    const region = s3Region(cache, env);
    return {
      credentialed: credentials !== undefined,
      secrets: credentials ? [credentials.secretAccessKey, ...(credentials.sessionToken ? [credentials.sessionToken] : [])] : [],
      target(path, method, extra) {
        const url = s3ObjectUrl(cache, path.replace(/^\//, ''), env);
        const headers = credentials ? signS3({ method, url, region, credentials, ...(extra?.headers ? { headers: extra.headers } : {}), ...(extra?.payloadHash ? { payloadHash: extra.payloadHash } : {}) }) : { ...(extra?.headers ?? {}) };
        return { url, headers };
      },
    };
  }
  const base = new URL(cache.base);
  const creds = netrcCredentials(base.hostname, env);
  const authorization = creds ? `Basic ${Buffer.from(`${creds.login}:${creds.password}`).toString('base64')}` : undefined;
  return {
    credentialed: creds !== undefined,
    secrets: creds ? [creds.password, authorization!.slice('Basic '.length)] : [],
    target(path, _method, extra) {
      return { url: new URL(`${cache.base}${path}`), headers: { ...(extra?.headers ?? {}), ...(authorization ? { authorization } : {}) } };
    },
  };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, unread (destroy it when not wanted). */
  body: IncomingMessage;
}

/**
 * One request: the answer's head within `answerMs` (of the body's last byte sent, for an upload), and
 * STALL_MS at most without a byte either way. Redirects are followed (5 at most); the credentials go only
 * to the origin they were given for.
 */
export function send(url: URL, opts: { method: string; headers?: Record<string, string>; body?: () => Readable; answerMs?: number; stallMs?: number }, redirects = 5): Promise<Answer> {
  const answerMs = opts.answerMs ?? REQUEST_MS;
  const stallMs = opts.stallMs ?? STALL_MS;
  return new Promise<Answer>((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const agent = agentFor(url);
    const req = request(url, { method: opts.method, headers: opts.headers ?? {}, timeout: stallMs, ...(agent ? { agent } : {}) });
    let head: NodeJS.Timeout | undefined;
    let answered = false;
    const answerBy = () => !answered && (head = setTimeout(() => req.destroy(new CacheUnreachable(`no answer from ${url.host} in ${answerMs / 1000} s`)), answerMs));
    // An upload's answer comes once its body is sent: until then only the stall bounds it.
    if (opts.body) req.on('finish', answerBy);
    else answerBy();
    req.on('timeout', () => req.destroy(new CacheUnreachable(`nothing moved to or from ${url.host} for ${stallMs / 1000} s`)));
    req.on('error', (e) => {
      answered = true;
      clearTimeout(head);
      reject(e instanceof CacheUnreachable ? e : new CacheUnreachable(tunnelRefusal(url.host, e) ?? `${url.host}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    });
    req.on('response', (res) => {
      answered = true;
      clearTimeout(head);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(status) && location && !opts.body && redirects > 0) {
        res.resume();
        const next = new URL(location, url);
        const headers = { ...(opts.headers ?? {}) };
        if (next.origin !== url.origin) for (const k of Object.keys(headers)) if (/^(authorization|x-amz-)/i.test(k)) delete headers[k];
        send(next, { ...opts, headers }, redirects - 1).then(resolve, reject);
        return;
      }
      // The body is the caller's: a stall while it is read destroys it with the same error.
      res.on('error', () => undefined);
      resolve({ status, headers: res.headers, body: res });
    });
    if (opts.body) opts.body().on('error', (e) => req.destroy(e)).pipe(req);
    else req.end();
  });
}

/** A request whose body is small (a narinfo, nix-cache-info, an error page): read whole, at most `max`
 *  bytes (`truncated` when there were more). */
export async function fetchSmall(url: URL, opts: { method: string; headers?: Record<string, string>; answerMs?: number }, max = 1 << 20): Promise<{ status: number; text: string; truncated?: true }> {
  const answer = await send(url, opts);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of answer.body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      answer.body.destroy();
      return { status: answer.status, text: Buffer.concat(chunks).toString('utf8'), truncated: true };
    }
    chunks.push(chunk as Buffer);
  }
  return { status: answer.status, text: Buffer.concat(chunks).toString('utf8') };
}

/** Why an answer means the cache cannot be used (undefined: 2xx, or a file it does not hold). */
export function refusal(status: number, what: string): string | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 404 || status === 403 || status === 410) return undefined;
  if (status === 401) return `${what} answered 401: the credentials were refused (or none were found in the runner's netrc file)`;
  return `${what} answered ${status}`;
}

// ---- the front ---------------------------------------------------------------------------------------

export interface CacheFront {
  /** http://127.0.0.1:<port>: what Nix is given, and what it names in "copying path … from '…'". */
  url: string;
  /** Why the front stopped forwarding (the first failure), if it did. */
  failure(): string | undefined;
  close(): Promise<void>;
}

/**
 * Starts the front of a cache on a free loopback port. `cacheInfo` is served as /nix-cache-info; every
 * other GET or HEAD of a binary cache file is forwarded to `upstream` until the first failure, which
 * `onFailure` hears once.
 */
export async function startCacheFront(upstream: Upstream, cacheInfo: string, onFailure: (reason: string) => void): Promise<CacheFront> {
  let failed: string | undefined;
  const sockets = new Set<Socket>();
  const inflight = new Set<IncomingMessage>();
  const fail = (reason: string) => {
    if (failed) return;
    failed = reason;
    onFailure(reason);
  };
  // The front is for this job's Nix alone: every path starts with a random token that only NIX_CONFIG of
  // the action's Nix calls holds, so no other local process can use the job's credentials through it.
  const token = randomBytes(16).toString('hex');
  const server: Server = createServer((req, res) => {
    const raw = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    req.resume();
    // Nothing escaped: an encoded '/' or '..' must not reach another path of the cache host.
    if (!raw.startsWith(`/${token}/`) || raw.includes('%')) {
      res.writeHead(404).end();
      return;
    }
    const path = raw.slice(token.length + 1);
    if (path === '/nix-cache-info' && (method === 'GET' || method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'text/x-nix-cache-info', 'content-length': Buffer.byteLength(cacheInfo) }).end(method === 'HEAD' ? undefined : cacheInfo);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (failed || !isCacheFile(path)) {
      res.writeHead(404).end();
      return;
    }
    const { url, headers } = upstream.target(path, method);
    send(url, { method, headers }).then(
      (answer) => {
        const why = refusal(answer.status, `${path}`);
        if (answer.status < 200 || answer.status >= 300) {
          answer.body.destroy();
          if (why) fail(why);
          res.writeHead(404).end();
          return;
        }
        const length = answer.headers['content-length'];
        const encoding = answer.headers['content-encoding'];
        res.writeHead(200, {
          'content-type': answer.headers['content-type'] ?? 'application/octet-stream',
          ...(length ? { 'content-length': length } : {}),
          // A narinfo, listing or log stored compressed (S3's narinfo-compression and its kin) says so.
          ...(encoding ? { 'content-encoding': encoding } : {}),
        });
        if (method === 'HEAD') {
          answer.body.destroy();
          res.end();
          return;
        }
        // Nix dropping a download (it has the path after all, or it stops) is not the cache failing: the
        // upstream request ends with it, and the cache stays in use; also when it went before the answer came.
        if (res.destroyed || req.socket.destroyed) {
          answer.body.destroy();
          return;
        }
        inflight.add(answer.body);
        let dropped = false;
        res.on('close', () => {
          if (res.writableFinished) return;
          dropped = true;
          answer.body.destroy();
        });
        answer.body.on('error', (e) => {
          if (dropped) return;
          fail(e.message);
          res.destroy();
        });
        answer.body.on('close', () => inflight.delete(answer.body));
        answer.body.pipe(res);
      },
      (error: Error) => {
        fail(error.message);
        if (!res.headersSent) res.writeHead(404).end();
        else res.destroy();
      },
    );
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${token}`,
    failure: () => failed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const b of inflight) b.destroy();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
