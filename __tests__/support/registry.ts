// Test registries: Debian's docker-registry (CNCF Distribution 2.8) on a free loopback port, in a temp
// dir, with plain HTTP or TLS (a self-signed certificate made here), anonymous, htpasswd basic auth, or
// token auth (a token server run here, signing JWTs with a key the registry trusts). Plus skopeo, the
// independent client that checks what we pushed, and a proxy that injects registry faults.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  tls?: boolean;
  auth?: RegistryAuth;
  /** user → password, for htpasswd and token auth. Default: { tester: 's3cret-pass' }. */
  users?: Record<string, string>;
}

export interface TestRegistry {
  /** host:port, as the action's registry input takes it. */
  host: string;
  scheme: 'http' | 'https';
  /** The certificate (PEM) the registry serves, when tls. */
  caFile?: string;
  users: Record<string, string>;
  dir: string;
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
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert,
  ]);
  return { cert, key };
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** A token server for Distribution's token auth: basic credentials in, RS256 JWT with an x5c chain out. */
async function startTokenServer(opts: { port: number; cert: string; key: string; service: string; issuer: string; users: Record<string, string> }): Promise<http.Server> {
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
    const access = url.searchParams.getAll('scope').flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      return type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [der] }));
    const claims = b64url(JSON.stringify({ iss: opts.issuer, sub: user, aud: opts.service, exp: now + 600, nbf: now - 10, iat: now, jti: randomUUID(), access }));
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(keyPem);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `${header}.${claims}.${b64url(signature)}`, expires_in: 600 }));
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
  if (auth === 'htpasswd') {
    const lines = await Promise.all(Object.entries(users).map(async ([u, p]) => (await run('htpasswd', ['-Bbn', u, p])).stdout.trim()));
    await writeFile(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
    config.auth = { htpasswd: { realm: 'nia-test', path: join(dir, 'htpasswd') } };
  } else if (auth === 'token') {
    const signing = await selfSignedCert(dir, 'token', 'nia-token-issuer');
    const tokenPort = await freePort();
    tokenServer = await startTokenServer({ port: tokenPort, ...signing, service: 'nia-registry', issuer: 'nia-issuer', users });
    config.auth = { token: { realm: `http://127.0.0.1:${tokenPort}/token`, service: 'nia-registry', issuer: 'nia-issuer', rootcertbundle: signing.cert } };
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
  /** Answer this status instead of forwarding, this many times (then forward). */
  status: number;
  times: number;
  retryAfter?: string;
  /** Close the connection without an answer instead of sending the status. */
  drop?: boolean;
  /** Forward the request, then answer with `status` instead of the registry's own (keeping its headers):
   *  a registry that does the work but answers in its own dialect. */
  forward?: boolean;
  /** With forward: headers added to the registry's answer. */
  addHeaders?: Record<string, string>;
}

export interface FaultProxy {
  host: string;
  /** Requests the proxy saw: "METHOD path → status". */
  log: string[];
  stop(): Promise<void>;
}

/** A plain-HTTP proxy in front of a plain-HTTP test registry that answers some requests with faults. */
export async function startFaultProxy(target: TestRegistry, rules: FaultRule[]): Promise<FaultProxy> {
  const port = await freePort();
  const log: string[] = [];
  const left = rules.map((r) => r.times);
  const server = http.createServer((req, res) => {
    const i = rules.findIndex(
      (r, k) => left[k]! > 0 && (!r.method || r.method === req.method) && (!r.path || r.path.test(req.url ?? '')) && (!r.when || r.when(req)),
    );
    const rule = i >= 0 ? rules[i]! : undefined;
    if (rule && !rule.forward) {
      left[i]!--;
      log.push(`${req.method} ${req.url} → ${rule.drop ? 'dropped' : rule.status}`);
      req.resume();
      if (rule.drop) {
        req.socket.destroy();
        return;
      }
      res.writeHead(rule.status, { 'content-type': 'application/json', ...(rule.retryAfter ? { 'retry-after': rule.retryAfter } : {}) });
      res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected fault ${rule.status}` }] }));
      return;
    }
    if (rule) left[i]!--;
    const upstream = http.request(
      { host: '127.0.0.1', port: Number(target.host.split(':')[1]), method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (up) => {
        const status = rule?.status ?? up.statusCode ?? 502;
        log.push(`${req.method} ${req.url} → ${status}`);
        const headers = { ...up.headers, ...rule?.addHeaders };
        // Locations the registry gives point at itself; send clients back through the proxy.
        if (typeof headers.location === 'string') headers.location = headers.location.replace(target.host, `127.0.0.1:${port}`);
        res.writeHead(status, headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${port}`,
    log,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
