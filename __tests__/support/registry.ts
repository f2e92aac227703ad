// Test registries: Debian's docker-registry (CNCF Distribution 2.8) on a free loopback port, in a temp
// dir, with plain HTTP or TLS (a self-signed certificate made here), anonymous, htpasswd basic auth, or
// token auth (a token server run here, signing JWTs with a key the registry trusts). Plus skopeo, the
// independent client that checks what we pushed, a proxy that injects registry faults, and recording
// origins: a front for the registry that moves upload sessions and blob reads to other loopback
// origins (as registries hand blobs to S3 or a CDN), each recording the headers it received.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createSign, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  tls?: boolean;
  auth?: RegistryAuth;
  /** user → password, for htpasswd and token auth. Default: { tester: 's3cret-pass' }. */
  users?: Record<string, string>;
  /** Token auth: how long a token lives (its JWT `exp`, and `expires_in` in the answer). Default 600 s. */
  tokenSeconds?: number;
  /** Token auth: leave `expires_in` out of the answer (clients then assume 60 s, per the token spec). */
  omitExpiresIn?: boolean;
  /** Token auth: refuse (401) a token request with any scope matching this, as some token servers do
   *  rather than grant less. */
  refuseScope?: RegExp;
  /** Token auth: the host name the realm names (default 127.0.0.1; the token server listens there), e.g. a
   *  name only the test proxy resolves, so that a plain-HTTP realm is on the registry's own host name. */
  realmHost?: string;
}

/** A token the test token server issued. */
export interface IssuedToken {
  /** Date.now() when it was issued. */
  at: number;
  /** Seconds it lives. */
  seconds: number;
  /** The scopes asked for, as sent. */
  scopes: string[];
  token: string;
}

export interface TestRegistry {
  /** host:port, as the action's registry input takes it. */
  host: string;
  scheme: 'http' | 'https';
  /** The certificate (PEM) the registry serves, when tls. */
  caFile?: string;
  users: Record<string, string>;
  dir: string;
  /** The token server's URL, for token auth (plain HTTP). */
  realm?: string;
  /** Every token the token server issued, in order (token auth). */
  issued: IssuedToken[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function selfSignedCert(dir: string, name: string, cn: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
    // *.nia.test: names only the test proxy resolves (support/proxy.ts), for requests that must take it.
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.nia.test', '-keyout', key, '-out', cert,
  ]);
  return { cert, key };
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** Distribution accepts a token this long past its `exp` (clock skew leeway): the test token server signs
 *  `exp` that much earlier, so a token is refused once its `expires_in` has passed (within the second), as
 *  real registries do. */
const DISTRIBUTION_LEEWAY_S = 60;

/** A token server for Distribution's token auth: basic credentials in, RS256 JWT with an x5c chain out. */
async function startTokenServer(opts: {
  port: number;
  cert: string;
  key: string;
  service: string;
  issuer: string;
  users: Record<string, string>;
  seconds: number;
  omitExpiresIn: boolean;
  refuseScope?: RegExp;
  issued: IssuedToken[];
}): Promise<http.Server> {
  const certPem = await readFile(opts.cert, 'utf8');
  const keyPem = await readFile(opts.key, 'utf8');
  const der = Buffer.from(certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64').toString('base64');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    const [user, pass] = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString().split(':') : [];
    if (!user || opts.users[user] !== pass) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
      return;
    }
    if (opts.refuseScope && url.searchParams.getAll('scope').some((scope) => opts.refuseScope!.test(scope))) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'access to the requested resource is not authorized' }] }));
      return;
    }
    const access = url.searchParams.getAll('scope').flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [der] }));
    const claims = b64url(JSON.stringify({ iss: opts.issuer, sub: user, aud: opts.service, exp: Math.ceil(Date.now() / 1000) + opts.seconds - DISTRIBUTION_LEEWAY_S, nbf: now - 10 - DISTRIBUTION_LEEWAY_S, iat: now, jti: randomUUID(), access }));
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(keyPem);
    const token = `${header}.${claims}.${b64url(signature)}`;
    opts.issued.push({ at: Date.now(), seconds: opts.seconds, scopes: url.searchParams.getAll('scope'), token });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, ...(opts.omitExpiresIn ? {} : { expires_in: opts.seconds }) }));
  });
  await new Promise<void>((r) => server.listen(opts.port, '127.0.0.1', r));
  return server;
}

async function waitForHttp(url: string, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${await readFile(log, 'utf8').catch(() => '')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const get = url.startsWith('https') ? https.get : http.get;
      const req = get(url, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not answer on ${url} within 15 s: ${await readFile(log, 'utf8').catch(() => '')}`);
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const users = opts.users ?? { tester: 's3cret-pass' };
  const auth = opts.auth ?? 'none';
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: host, secret: randomUUID() },
  };
  let caFile: string | undefined;
  if (opts.tls) {
    const { cert, key } = await selfSignedCert(dir, 'registry', '127.0.0.1');
    (config.http as Record<string, unknown>).tls = { certificate: cert, key };
    caFile = cert;
  }
  let tokenServer: http.Server | undefined;
  let realm: string | undefined;
  const issued: IssuedToken[] = [];
  if (auth === 'htpasswd') {
    const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => (await run('htpasswd', ['-Bbn', u, p])).stdout.trim()));
    await writeFile(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    config.auth = { htpasswd: { realm: 'nia-test', path: join(dir, 'htpasswd') } };
  } else if (auth === 'token') {
    const signing = await selfSignedCert(dir, 'token', 'nia-token-issuer');
    const tokenPort = await freePort();
    tokenServer = await startTokenServer({
      port: tokenPort,
      ...signing,
      service: 'nia-registry',
      issuer: 'nia-issuer',
      users,
      seconds: opts.tokenSeconds ?? 600,
      omitExpiresIn: opts.omitExpiresIn ?? false,
      ...(opts.refuseScope ? { refuseScope: opts.refuseScope } : {}),
      issued,
    });
    realm = `http://${opts.realmHost ?? '127.0.0.1'}:${tokenPort}/token`;
    config.auth = { token: { realm, service: 'nia-registry', issuer: 'nia-issuer', rootcertbundle: signing.cert } };
  }
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, JSON.stringify(config, null, 2)); // JSON is YAML
  const log = join(dir, 'registry.log');
  const { openSync } = await import('node:fs');
  const fd = openSync(log, 'a');
  const child = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', fd, fd] });
  const scheme = opts.tls ? 'https' : 'http';
  try {
    await waitForHttp(`${scheme}://${host}/v2/`, child, log);
  } catch (e) {
    child.kill('SIGKILL');
    tokenServer?.close();
    throw e;
  }
  return {
    host,
    scheme,
    caFile,
    users,
    dir,
    realm,
    issued,
    async stop() {
      tokenServer?.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** skopeo's arguments with the global options every test call needs (no signature policy file). */
export function skopeoArgs(args: string[]): string[] {
  return ['--insecure-policy', ...args];
}

/**
 * Runs skopeo against test registries (TLS not verified, plain HTTP allowed); returns stdout.
 * `creds` is user:password for registries with auth.
 */
export async function skopeo(args: string[], opts: { creds?: string } = {}): Promise<string> {
  const [sub, ...rest] = args;
  const extra: string[] = [];
  if (sub === 'inspect') {
    extra.push('--tls-verify=false');
    if (opts.creds) extra.push('--creds', opts.creds);
  } else if (sub === 'copy') {
    extra.push('--src-tls-verify=false', '--dest-tls-verify=false');
    if (opts.creds) extra.push('--src-creds', opts.creds, '--dest-creds', opts.creds);
  }
  const { stdout } = await run('skopeo', skopeoArgs([sub!, ...extra, ...rest]), { maxBuffer: 64 << 20, timeout: 120_000 });
  return stdout;
}

export interface FaultRule {
  /** Which requests: method and a pattern on the path. */
  method?: string;
  path?: RegExp;
  /** And a test on the request itself (its headers), e.g. to refuse bodies over a size. */
  when?: (req: http.IncomingMessage) => boolean;
  /** And a test that may look at the whole request body (read before anything is forwarded; set
   *  `readBody`) or ask the registry first (e.g. whether a tag exists): the rule fires when it holds. */
  check?: (req: http.IncomingMessage, body: Buffer | undefined) => boolean | Promise<boolean>;
  /** Read the request body whole before `check` (manifests: small). */
  readBody?: boolean;
  /** Answer this status instead of forwarding, this many times (then forward). */
  status?: number;
  times: number;
  retryAfter?: string;
  /** The error code of the answer's body (default UNKNOWN), e.g. MANIFEST_BLOB_UNKNOWN. */
  code?: string;
  /** The error message of the answer's body (default "injected fault <status>"), or made from the request. */
  message?: string | ((req: http.IncomingMessage) => string);
  /** Only every n-th request the rule matches (the n-th, 2n-th, …) gets the fault. */
  every?: number;
  /** Once the rule first fires, it fires on every matching request for this long, then never again. */
  burstMs?: number;
  /** Close the connection without an answer instead of sending the status. */
  drop?: boolean;
  /** Forward the request, then answer with `status` instead of the registry's own (keeping its headers):
   *  a registry that does the work but answers in its own dialect. */
  forward?: boolean;
  /** Headers added to the answer: the registry's (with forward) or the injected one. */
  addHeaders?: Record<string, string>;
  /** Forward only this many bytes of the request body, then reset both connections (a reset mid-PATCH:
   *  the registry keeps a partial upload). */
  resetAfterBytes?: number;
  /** Forward a PATCH whole, complete the upload at the registry (PUT ?digest= of the body's sha256) as a
   *  registry committing by itself would, then reset the client's connection without an answer. */
  commitThenReset?: boolean;
  /** read: stop reading the request body and never answer (an upload that stops moving); answer: read
   *  the body, never answer; body: forward, send the answer's headers and `stallAfterBytes` of its body,
   *  then nothing more (a download that stops moving). */
  stall?: 'read' | 'answer' | 'body';
  stallAfterBytes?: number;
  /** Forward the request whole, let the registry answer, then reset the client's connection instead of
   *  passing the answer on (the registry did the work; the client never learns it). */
  dropAnswer?: boolean;
  /** Forward the request to another path (and query) of the registry. */
  rewritePath?: (path: string) => string;
  /** Forward the request with these headers instead (e.g. credentials the registry knows for ones it does not). */
  rewriteHeaders?: (headers: http.IncomingHttpHeaders) => http.IncomingHttpHeaders;
  /** Forward the request body at this many bytes per second (a slow link). */
  throttle?: number;
}

export interface FaultProxy {
  host: string;
  /** Requests the proxy saw: "METHOD path → status". */
  log: string[];
  /** The rules, live: a test may push more once the proxy runs. */
  rules: FaultRule[];
  /** Request body bytes received from the client, by method. */
  received: Record<string, number>;
  /** Request body bytes forwarded to the registry, by method. */
  forwarded: Record<string, number>;
  /** Every request, in order of arrival: its body's size as received, and the headers that shape it. */
  requests: ProxiedRequest[];
  /** Client connections open now (kept-alive ones included). */
  connections(): Promise<number>;
  stop(): Promise<void>;
}

export interface ProxiedRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  /** Body bytes received (counted as they arrive: final once the request ended). */
  bytes: number;
  contentRange?: string;
  contentType?: string;
}

interface RuleState {
  left: number;
  matched: number;
  burstUntil?: number;
}

/** A Transform that passes bytes on at `rate` bytes per second, in 16 KiB pieces. */
function throttled(rate: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const pieces: Buffer[] = [];
      for (let i = 0; i < chunk.length; i += 16 * 1024) pieces.push(chunk.subarray(i, i + 16 * 1024));
      const next = (): void => {
        const piece = pieces.shift();
        if (!piece) return done();
        setTimeout(() => {
          this.push(piece);
          next();
        }, (piece.length / rate) * 1000);
      };
      next();
    },
  });
}

/** Runs `run` with a fault proxy in front of `target`, stopped afterwards whatever happens. */
export async function withFaultProxy<T>(target: TestRegistry, rules: FaultRule[], run: (p: FaultProxy) => Promise<T>): Promise<T> {
  const proxy = await startFaultProxy(target, rules);
  try {
    return await run(proxy);
  } finally {
    await proxy.stop();
  }
}

/**
 * A plain-HTTP proxy in front of a plain-HTTP test registry that answers some requests with faults:
 * statuses (every n-th, in bursts), dropped and reset connections (before, mid-body, after the registry
 * committed the blob), stalls up and down, slow links.
 */
export async function startFaultProxy(target: TestRegistry, rules: FaultRule[]): Promise<FaultProxy> {
  const port = await freePort();
  const log: string[] = [];
  const received: Record<string, number> = {};
  const forwarded: Record<string, number> = {};
  const state = new Map<FaultRule, RuleState>();
  const live = [...rules];
  const stateOf = (r: FaultRule): RuleState => {
    let st = state.get(r);
    if (!st) state.set(r, (st = { left: r.times, matched: 0 }));
    return st;
  };
  const upstreamPort = Number(target.host.split(':')[1]);
  const upstreams = new Set<http.ClientRequest>();

  const matches = (r: FaultRule, req: http.IncomingMessage): boolean =>
    stateOf(r).left > 0 && !((r.method && r.method !== req.method) || (r.path && !r.path.test(req.url ?? '')) || (r.when && !r.when(req)));

  /** The rule that fires for this request, if any (counting it as matched). */
  const pick = async (req: http.IncomingMessage, body: Buffer | undefined): Promise<FaultRule | undefined> => {
    for (const r of live) {
      const st = stateOf(r);
      if (!matches(r, req)) continue;
      if (r.check && !(await r.check(req, body))) continue;
      if (st.left <= 0) continue;
      const now = Date.now();
      if (r.burstMs !== undefined && st.burstUntil !== undefined) {
        if (now > st.burstUntil) {
          st.left = 0;
          continue;
        }
      } else {
        st.matched++;
        if (r.every && st.matched % r.every !== 0) continue;
        if (r.burstMs !== undefined) st.burstUntil = now + r.burstMs;
      }
      st.left--;
      return r;
    }
    return undefined;
  };

  const requests: ProxiedRequest[] = [];
  const server = http.createServer((req, res) => {
    req.pause();
    void handle(req, res).catch(() => res.destroy());
  });
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const method = req.method ?? '';
    const seen: ProxiedRequest = {
      method,
      url: req.url ?? '',
      bytes: 0,
      ...(req.headers['content-range'] ? { contentRange: req.headers['content-range'] } : {}),
      ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
    };
    requests.push(seen);
    const count = (c: Buffer): void => {
      received[method] = (received[method] ?? 0) + c.length;
      seen.bytes += c.length;
    };
    // A rule that looks at the body gets it whole; the request is then forwarded from what was read.
    let whole: Buffer | undefined;
    if (live.some((r) => r.readBody && matches(r, req))) {
      const chunks: Buffer[] = [];
      for await (const c of req) {
        count(c as Buffer);
        chunks.push(c as Buffer);
      }
      whole = Buffer.concat(chunks);
    } else {
      req.on('data', count);
    }
    const rule = await pick(req, whole);
    // Flowing again from here: every listener below is attached in this same tick, before any data.
    if (!whole && rule?.stall !== 'read') req.resume();
    const entry = `${method} ${req.url}`;
    if (rule?.stall === 'read') {
      log.push(`${entry} → stalled`);
      req.pause();
      return;
    }
    if (rule?.stall === 'answer') {
      log.push(`${entry} → stalled`);
      req.resume();
      return;
    }
    if (rule && !rule.forward && rule.status !== undefined && !rule.drop) {
      log.push(`${entry} → ${rule.status}`);
      req.resume();
      res.writeHead(rule.status, { 'content-type': 'application/json', ...(rule.retryAfter ? { 'retry-after': rule.retryAfter } : {}), ...rule.addHeaders });
      const message = typeof rule.message === 'function' ? rule.message(req) : (rule.message ?? `injected fault ${rule.status}`);
      res.end(method === 'HEAD' ? undefined : JSON.stringify({ errors: [{ code: rule.code ?? 'UNKNOWN', message }] }));
      return;
    }
    if (rule?.drop) {
      log.push(`${entry} → dropped`);
      req.resume();
      req.socket.destroy();
      return;
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: upstreamPort, method, path: rule?.rewritePath ? rule.rewritePath(req.url ?? '/') : req.url, headers: { ...(rule?.rewriteHeaders ? rule.rewriteHeaders(req.headers) : req.headers), host: target.host } },
      (up) => {
        if (rule?.dropAnswer) {
          up.resume();
          up.on('end', () => {
            log.push(`${entry} → ${up.statusCode} not passed on, reset`);
            req.socket.destroy();
          });
          return;
        }
        if (rule?.commitThenReset) {
          up.resume();
          up.on('end', () => {
            const location = up.headers.location;
            if (!location) {
              log.push(`${entry} → ${up.statusCode} (nothing to commit), reset`);
              req.socket.destroy();
              return;
            }
            const url = new URL(location, `http://${target.host}`);
            url.searchParams.set('digest', `sha256:${hash.digest('hex')}`);
            const put = http.request({ host: '127.0.0.1', port: upstreamPort, method: 'PUT', path: `${url.pathname}${url.search}`, headers: { 'content-length': '0' } }, (done) => {
              done.resume();
              log.push(`${entry} → committed (${done.statusCode}), reset`);
              req.socket.destroy();
            });
            put.on('error', () => req.socket.destroy());
            put.end();
          });
          return;
        }
        const status = rule?.forward && rule.status !== undefined ? rule.status : (up.statusCode ?? 502);
        log.push(`${entry} → ${status}${rule?.stall === 'body' ? ', stalled' : ''}`);
        const headers = { ...up.headers, ...rule?.addHeaders };
        // Locations the registry gives point at itself; send clients back through the proxy.
        if (typeof headers.location === 'string') headers.location = headers.location.replace(target.host, `127.0.0.1:${port}`);
        res.writeHead(status, headers);
        if (rule?.stall === 'body') {
          let sent = 0;
          const limit = rule.stallAfterBytes ?? 1024;
          up.on('data', (c: Buffer) => {
            if (sent >= limit) return void up.pause();
            res.write(c.subarray(0, limit - sent));
            sent += Math.min(c.length, limit - sent);
          });
          return;
        }
        up.pipe(res);
      },
    );
    upstreams.add(upstream);
    upstream.once('close', () => upstreams.delete(upstream));
    upstream.on('error', () => res.destroy());
    res.once('close', () => {
      if (!res.writableFinished && !rule?.commitThenReset && !rule?.dropAnswer) upstream.destroy();
    });
    const hash = createHash('sha256');
    let body: NodeJS.ReadableStream = whole ? Readable.from([whole]) : req;
    if (rule?.throttle) body = body.pipe(throttled(rule.throttle));
    let sent = 0;
    body.on('data', (c: Buffer) => {
      if (rule?.commitThenReset) hash.update(c);
      if (rule?.resetAfterBytes !== undefined) {
        const part = c.subarray(0, Math.max(0, rule.resetAfterBytes - sent));
        if (part.length > 0) upstream.write(part);
        sent += part.length;
        forwarded[method] = (forwarded[method] ?? 0) + part.length;
        if (sent >= rule.resetAfterBytes) {
          log.push(`${entry} → reset after ${sent} bytes`);
          body.pause();
          // Let the registry take what was sent, then cut both sides.
          setTimeout(() => {
            upstream.destroy();
            req.socket.destroy();
          }, 100);
        }
        return;
      }
      forwarded[method] = (forwarded[method] ?? 0) + c.length;
      if (!upstream.write(c)) {
        body.pause();
        upstream.once('drain', () => body.resume());
      }
    });
    body.on('end', () => {
      if (rule?.resetAfterBytes === undefined) upstream.end();
    });
  };
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${port}`,
    log,
    rules: live,
    received,
    forwarded,
    requests,
    connections: () => new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))),
    stop: () =>
      new Promise<void>((r) => {
        for (const u of upstreams) u.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---- Dialects: what real registries answer, played by the fault proxy in front of Distribution ----

/**
 * Registries that answer in their own way, each as fault rules for startFaultProxy (in front of an
 * anonymous test registry), with the status, error code and wording the registry is documented or
 * reported to use (docs/registries-compat.md has the sources):
 * - mount-refused: a cross-repository mount refused (`status` 401, as Harbor for a project it will not show;
 *   403; or 404) instead of 201/202;
 * - ecr-immutable: a manifest PUT under a tag that exists is refused, 400 TAG_INVALID, even for the same digest;
 * - ecr-missing-repo: every request to `repository` answers 404 NAME_UNKNOWN (ECR creates none on push);
 * - harbor-missing-project: every request to `repository` answers 401 UNAUTHORIZED "authentication required";
 * - ghcr-secondary-rate-limit: every `every`-th request answers 403 "You have exceeded a secondary rate
 *   limit" (the first of them with Retry-After: `retryAfter`, when given);
 * - hub-rate-limit: manifest reads answer 429 TOOMANYREQUESTS with `ratelimit-remaining: 0;w=21600`
 *   (and `ratelimit-reset: <reset>` when given);
 * - quay-index: an OCI index listing a Docker manifest is refused, 400 MANIFEST_INVALID;
 * - referrers-405: the referrers API answers 405 UNSUPPORTED;
 * - chunk-min-length: upload sessions are opened with `OCI-Chunk-Min-Length: <min>`.
 */
export type Dialect =
  | 'mount-refused'
  | 'ecr-immutable'
  | 'ecr-missing-repo'
  | 'harbor-missing-project'
  | 'ghcr-secondary-rate-limit'
  | 'hub-rate-limit'
  | 'quay-index'
  | 'referrers-405'
  | 'chunk-min-length';

export interface DialectOptions {
  /** mount-refused: 401, 403 or 404 (default 401). */
  status?: 401 | 403 | 404;
  /** ecr-missing-repo, harbor-missing-project: the repository that is not there. */
  repository?: string;
  /** ghcr-secondary-rate-limit: every n-th request (default 4). */
  every?: number;
  /** ghcr-secondary-rate-limit: Retry-After of the first refusal. */
  retryAfter?: string;
  /** hub-rate-limit: ratelimit-reset (seconds). */
  reset?: number;
  /** chunk-min-length: the minimum chunk size announced. */
  min?: number;
}

const ALWAYS = 1_000_000;
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Whether `path` (/v2/<name>/manifests/<tag>) names a tag the registry holds (HEAD, anonymous). */
function tagExists(registry: TestRegistry, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: Number(registry.host.split(':')[1]), method: 'HEAD', path, headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' } }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

export function dialect(registry: TestRegistry, name: Dialect, opts: DialectOptions = {}): FaultRule[] {
  const manifestOf = (url: string | undefined) => /^\/v2\/(.+)\/manifests\/([^/?]+)/.exec(url ?? '');
  switch (name) {
    case 'mount-refused': {
      const status = opts.status ?? 401;
      // 401 as Harbor words it for a source project the token cannot see (goharbor/harbor#17097).
      const project = (req: http.IncomingMessage): string => (new URL(req.url ?? '/', 'http://x').searchParams.get('from') ?? '').split('/')[0]!;
      const [code, message]: [string, string | ((req: http.IncomingMessage) => string)] =
        status === 401
          ? ['UNAUTHORIZED', (req) => `project ${project(req)} not found: project ${project(req)} not found`]
          : status === 403
            ? ['DENIED', 'requested access to the resource is denied']
            : ['BLOB_UNKNOWN', 'blob unknown to registry'];
      return [{ method: 'POST', path: /\/blobs\/uploads\/\?(?:.*&)?mount=/, status, code, message, times: ALWAYS }];
    }
    case 'ecr-immutable':
      return [
        {
          method: 'PUT',
          path: /\/manifests\/(?!sha256:)[^/?]+$/,
          check: (req) => tagExists(registry, req.url ?? ''),
          status: 400,
          code: 'TAG_INVALID',
          message: (req) => {
            const [, repo, tag] = manifestOf(req.url) ?? [];
            return `The image tag '${tag}' already exists in the '${repo}' repository and cannot be overwritten because the repository is immutable.`;
          },
          times: ALWAYS,
        },
      ];
    case 'ecr-missing-repo':
      return [
        {
          path: new RegExp(`^/v2/${escape(opts.repository ?? '')}/`),
          status: 404,
          code: 'NAME_UNKNOWN',
          message: `The repository with name '${opts.repository}' does not exist in the registry with id '123456789012'`,
          times: ALWAYS,
        },
      ];
    case 'harbor-missing-project':
      return [{ path: new RegExp(`^/v2/${escape(opts.repository ?? '')}/`), status: 401, code: 'UNAUTHORIZED', message: 'authentication required', times: ALWAYS }];
    case 'ghcr-secondary-rate-limit': {
      const every = opts.every ?? 4;
      const refusal = { status: 403, code: 'DENIED', message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', every };
      // The first refusal with Retry-After (when asked for), then the rest without.
      return [...(opts.retryAfter ? [{ ...refusal, retryAfter: opts.retryAfter, times: 1 }] : []), { ...refusal, times: ALWAYS }];
    }
    case 'hub-rate-limit':
      return [
        {
          method: 'GET',
          path: /\/manifests\//,
          status: 429,
          code: 'TOOMANYREQUESTS',
          message: 'You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit',
          addHeaders: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600', 'docker-ratelimit-source': '192.0.2.1', ...(opts.reset !== undefined ? { 'ratelimit-reset': String(opts.reset) } : {}) },
          times: ALWAYS,
        },
      ];
    case 'quay-index':
      return [
        {
          method: 'PUT',
          path: /\/manifests\//,
          when: (req) => req.headers['content-type'] === 'application/vnd.oci.image.index.v1+json',
          readBody: true,
          check: (_req, body) => {
            const index = JSON.parse(body?.toString('utf8') || '{}') as { manifests?: { mediaType?: string }[] };
            return (index.manifests ?? []).some((m) => m.mediaType?.startsWith('application/vnd.docker.'));
          },
          status: 400,
          code: 'MANIFEST_INVALID',
          message: 'manifest invalid',
          times: ALWAYS,
        },
      ];
    case 'referrers-405':
      return [{ method: 'GET', path: /\/referrers\//, status: 405, code: 'UNSUPPORTED', message: 'The operation is unsupported.', times: ALWAYS }];
    case 'chunk-min-length':
      return [{ method: 'POST', path: /\/blobs\/uploads\/$/, forward: true, addHeaders: { 'oci-chunk-min-length': String(opts.min ?? 1024) }, times: ALWAYS }];
  }
}

// ---- Recording origins: where do the registry's credentials go? ----

export interface SeenRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  scheme: 'http' | 'https';
  authorization?: string;
  /** Date.now() when the request arrived. */
  at: number;
  /** Set when the client closed the connection before the request body ended or the answer was sent. */
  closedEarly?: boolean;
}

export type OriginHandler = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => void;

export interface TestOrigin {
  /** 127.0.0.1:port */
  host: string;
  /** scheme://127.0.0.1:port (the TLS one for a dual origin). */
  origin: string;
  /** Every request received, in order. */
  seen: SeenRequest[];
  /** The self-signed certificate (PEM) it serves, when TLS. */
  cert?: string;
  stop(): Promise<void>;
}

/**
 * A loopback server that records every request, then answers it with `handle`. tls: a self-signed
 * certificate made here; 'dual': TLS and plain HTTP on the same port (another origin: same host and
 * port, another scheme), told apart by the first byte a client sends.
 */
export async function startOrigin(opts: { tls?: boolean | 'dual'; handle: OriginHandler }): Promise<TestOrigin> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const seen: SeenRequest[] = [];
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const entry: SeenRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      scheme: (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
      at: Date.now(),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    };
    seen.push(entry);
    req.once('close', () => {
      if (!req.complete) entry.closedEarly = true;
    });
    res.once('close', () => {
      if (!res.writableFinished) entry.closedEarly = true;
    });
    opts.handle(req, res, entry);
  };
  const plain = http.createServer(listener);
  let secure: https.Server | undefined;
  let cert: string | undefined;
  let dir: string | undefined;
  if (opts.tls) {
    dir = await mkdtemp(join(tmpdir(), 'nia-origin-'));
    const files = await selfSignedCert(dir, 'origin', '127.0.0.1');
    cert = await readFile(files.cert, 'utf8');
    secure = https.createServer({ cert, key: await readFile(files.key, 'utf8') }, listener);
  }
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (!opts.tls) return void plain.emit('connection', socket);
    if (opts.tls === true) return void secure!.emit('connection', socket);
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      (first[0] === 0x16 ? secure! : plain).emit('connection', socket);
      process.nextTick(() => socket.resume());
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host,
    origin: `${opts.tls ? 'https' : 'http'}://${host}`,
    seen,
    cert,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Forwards a request to `target` (scheme://host:port, TLS not verified) and pipes the answer back.
 * `authorization` replaces the client's (undefined: keep it); `location` rewrites a Location header.
 */
export function forward(
  target: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: { path?: string; authorization?: string; location?: (location: string) => string; headers?: (h: http.IncomingHttpHeaders) => http.IncomingHttpHeaders } = {},
): void {
  const url = new URL(target);
  const headers: http.OutgoingHttpHeaders = { ...req.headers, host: url.host };
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  const get = url.protocol === 'https:' ? https.request : http.request;
  const upstream = get(
    { host: url.hostname, port: Number(url.port), method: req.method, path: opts.path ?? req.url, headers, rejectUnauthorized: false },
    (up) => {
      let answer = { ...up.headers };
      if (typeof answer.location === 'string' && opts.location) answer.location = opts.location(answer.location);
      if (opts.headers) answer = opts.headers(answer);
      res.writeHead(up.statusCode ?? 502, answer);
      up.pipe(res);
    },
  );
  upstream.on('error', () => res.destroy());
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.once('close', () => {
    if (!req.complete) upstream.destroy();
  });
  req.pipe(upstream);
}

/** A TLS registry with token auth, and a recording origin in front of its token server (plain HTTP, on
 *  127.0.0.1): what reaches the token server, with which headers. */
export async function startRecordedTokenRegistry(): Promise<{ registry: TestRegistry; tokens: TestOrigin; stop(): Promise<void> }> {
  const registry = await startRegistry({ tls: true, auth: 'token' });
  const tokens = await startOrigin({ handle: (req, res) => forward(new URL(registry.realm!).origin, req, res) });
  return {
    registry,
    tokens,
    async stop() {
      await tokens.stop();
      await registry.stop();
    },
  };
}

/** Where a blob GET goes after the registry's front: other origins ('a', 'b'), the front again, or the front's plain-HTTP side. */
export type Hop = 'a' | 'b' | 'front' | 'front-http';

export interface SplitRegistryOptions {
  /** Upload sessions (the POST's Location, and every Location after) on origin A instead of the registry. */
  uploadsOnA?: boolean;
  /** Blob GETs are redirected (307) along this chain; the last hop serves the blob. */
  blobReads?: Hop[];
  /** Rewrites the realm of a WWW-Authenticate the registry sends. */
  realm?: (realm: string) => string;
  /** Answers a request at the front instead of forwarding it, when it returns true. */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
}

export interface SplitRegistry {
  /** The registry as the client sees it (host:port): TLS and plain HTTP on one port when the registry is TLS. */
  host: string;
  front: TestOrigin;
  /** Other origins (plain HTTP), standing for blob storage: they reach the registry with its credentials themselves, as a presigned URL would. */
  a: TestOrigin;
  b: TestOrigin;
  stop(): Promise<void>;
}

/**
 * A front for a test registry that moves upload sessions and blob reads to other loopback origins,
 * which forward to the registry. Every origin records the requests (and Authorization headers) it got.
 */
export async function startSplitRegistry(registry: TestRegistry, opts: SplitRegistryOptions = {}): Promise<SplitRegistry> {
  const target = `${registry.scheme}://${registry.host}`;
  const [user, pass] = Object.entries(registry.users)[0]!;
  // How storage reaches an htpasswd registry by itself, as a presigned URL would (a token registry is not split).
  const storageAuth = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  const origins: Partial<Record<Hop, string>> = {};
  const chain = opts.blobReads ?? [];
  const isBlobRead = (req: http.IncomingMessage, path: string): boolean => req.method === 'GET' && /\/blobs\/sha256:[0-9a-f]{64}$/.test(path);

  /** Where a Location of the registry's points the client: upload sessions to A (when split), the rest to the front. */
  const relocate = (loc: string, storage: boolean): string => {
    const u = new URL(loc, target);
    if (u.host !== registry.host) return loc;
    const to = (opts.uploadsOnA || storage) && u.pathname.includes('/blobs/uploads/') ? origins.a! : origins.front!;
    return `${to}${u.pathname}${u.search}`;
  };

  /** Serves a request at one origin: a blob read goes on to the next hop of the chain, the rest to the registry. */
  const handler =
    (me: 'front' | 'a' | 'b'): OriginHandler =>
    (req, res) => {
      if (me === 'front' && opts.intercept?.(req, res)) return;
      const url = new URL(req.url ?? '/', 'http://x');
      const at = Number(url.searchParams.get('nia-hop') ?? '-1');
      if (isBlobRead(req, url.pathname) && at + 1 < chain.length) {
        req.resume();
        res.writeHead(307, { location: `${origins[chain[at + 1]!]}${url.pathname}?nia-hop=${at + 1}` });
        res.end();
        return;
      }
      url.searchParams.delete('nia-hop');
      const storage = me !== 'front';
      // Storage, and the end of a redirect chain where the client sent no credentials, authorize by themselves.
      const inject = !registry.realm && (storage || (at >= 0 && !req.headers.authorization));
      forward(target, req, res, {
        path: `${url.pathname}${url.search}`,
        ...(inject ? { authorization: storageAuth } : {}),
        location: (loc) => relocate(loc, storage),
        headers: (h) => {
          const challenge = h['www-authenticate'];
          if (opts.realm && typeof challenge === 'string') h['www-authenticate'] = challenge.replace(/realm="([^"]*)"/, (_, r: string) => `realm="${opts.realm!(r)}"`);
          return h;
        },
      });
    };
  const front = await startOrigin({ tls: registry.scheme === 'https' ? 'dual' : false, handle: handler('front') });
  const a = await startOrigin({ handle: handler('a') });
  const b = await startOrigin({ handle: handler('b') });
  origins.a = a.origin;
  origins.b = b.origin;
  origins.front = front.origin;
  origins['front-http'] = `http://${front.host}`;
  return {
    host: front.host,
    front,
    a,
    b,
    async stop() {
      await Promise.all([front.stop(), a.stop(), b.stop()]);
    },
  };
}
