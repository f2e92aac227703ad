// A real HTTP Nix binary cache for tests: Debian's nginx (its core http_dav_module takes PUT) on a free
// loopback port, serving a temporary directory that holds its own nix-cache-info. GET and HEAD are open;
// PUT needs basic auth (the user and password given, checked against an htpasswd file), as a private
// cache's upload does. Every request is recorded from nginx's access log ("METHOD path status").
// A fault mode puts a loopback proxy in front of it that answers matching requests with a status, or takes
// them and never answers (the sockets stay open until stop()), as a cache that is down or stalls.
// The nginx process is this module's own child (daemon off), stopped by stop() — SIGQUIT, then SIGKILL
// after 3 s — and every wait here is bounded.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './registry.js';
import './tmp.js';

const run = promisify(execFile);

export interface BinaryCacheFault {
  /** Answer matching requests with this status. */
  status?: number;
  /** Take matching requests and never answer them. */
  hang?: boolean;
  /** Forward matching requests, then cut the answer after half its body (a download that breaks). */
  truncate?: boolean;
  /** Which requests ("METHOD /path"): all when absent. */
  on?: RegExp;
}

export interface TestBinaryCache {
  /** http://127.0.0.1:<port>: the cache's URL (the proxy's under a fault). */
  url: string;
  /** The directory nginx serves: nix-cache-info, <hash>.narinfo, nar/… */
  dir: string;
  /** The user and password a PUT needs (a netrc line: netrc()). */
  user: string;
  password: string;
  /** `machine 127.0.0.1 login … password …`, for a netrc file. */
  netrc(): string;
  /** Requests nginx answered, "METHOD /path STATUS", in order (read from its access log). */
  requests(): Promise<string[]>;
  /** The narinfos the cache holds, by file name. */
  narinfos(): Promise<Record<string, string>>;
  /** Requests the fault proxy took and left unanswered. */
  hung(): number;
  stop(): Promise<void>;
}

export interface BinaryCacheOptions {
  /** nix-cache-info's Priority line (default 40, as cache.nixos.org's; the action's URL overrides it). */
  priority?: number;
  /** Leave nix-cache-info out (a new, empty cache). */
  noCacheInfo?: boolean;
  fault?: BinaryCacheFault;
}

function nginxConf(dir: string, port: number): string {
  return `daemon off;
master_process on;
worker_processes 1;
user root root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  log_format nia '$request_method $uri $status';
  access_log ${dir}/access.log nia;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  client_max_body_size 0;
  default_type application/octet-stream;
  types { text/x-nix-cache-info nix-cache-info; text/x-nix-narinfo narinfo; }
  server {
    listen 127.0.0.1:${port};
    root ${dir}/data;
    location / {
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      limit_except GET HEAD {
        auth_basic "nia binary cache";
        auth_basic_user_file ${dir}/htpasswd;
      }
    }
  }
}
`;
}

async function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function startNginx(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const deadline = Date.now() + 15_000;
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    await writeFile(join(dir, 'nginx.conf'), nginxConf(dir, port));
    await rm(join(dir, 'error.log'), { force: true });
    const fd = openSync(join(dir, 'stderr.log'), 'a');
    // /usr/sbin is not on every user's PATH.
    const child = spawn(existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', fd, fd] });
    while (Date.now() < deadline && child.exitCode === null) {
      if (await answers(`http://127.0.0.1:${port}/nix-cache-info`)) return { child, port };
      await new Promise((r) => setTimeout(r, 50));
    }
    const log = [await readFile(join(dir, 'error.log'), 'utf8').catch(() => ''), await readFile(join(dir, 'stderr.log'), 'utf8').catch(() => '')].join('\n');
    if (child.exitCode === null) child.kill('SIGKILL');
    // Another process took the port between freePort and nginx's bind: once more, on another port.
    if (/Address already in use/.test(log) && attempt < 3 && Date.now() < deadline) continue;
    throw new Error(`nginx did not answer within 15 s: ${log.trim()}`);
  }
}

/** A front that forwards to nginx, except the requests the fault matches. */
async function startFaultFront(port: number, fault: BinaryCacheFault): Promise<{ url: string; hung: () => number; stop: () => Promise<void> }> {
  const held = new Set<Socket>();
  let hung = 0;
  const server: Server = createServer((req, res) => {
    const what = `${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`;
    if (!fault.on || fault.on.test(what)) {
      if (fault.hang) {
        hung++;
        held.add(req.socket);
        return;
      }
      if (fault.status) {
        req.resume();
        res.writeHead(fault.status, { 'content-type': 'text/plain' }).end('injected failure\n');
        return;
      }
    }
    const cut = fault.truncate === true && (!fault.on || fault.on.test(what));
    const upstream = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!cut) {
        up.pipe(res);
        return;
      }
      const half = Math.floor(Number(up.headers['content-length'] ?? 0) / 2);
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        if (sent >= half) return;
        const part = chunk.subarray(0, half - sent);
        sent += part.length;
        res.write(part);
        if (sent >= half) {
          up.destroy();
          res.socket?.destroy();
        }
      });
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    hung: () => hung,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of held) s.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export async function startBinaryCache(opts: BinaryCacheOptions = {}): Promise<TestBinaryCache> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-bincache-'));
  await mkdir(join(dir, 'data'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  if (!opts.noCacheInfo) await writeFile(join(dir, 'data', 'nix-cache-info'), `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: ${opts.priority ?? 40}\n`);
  const user = 'uploader';
  const password = `put-${Math.random().toString(36).slice(2)}-Pa55`;
  await writeFile(join(dir, 'htpasswd'), `${(await run('htpasswd', ['-bn', user, password])).stdout.trim()}\n`);
  const { child, port } = await startNginx(dir);
  const front = opts.fault ? await startFaultFront(port, opts.fault) : undefined;
  return {
    url: front?.url ?? `http://127.0.0.1:${port}`,
    dir: join(dir, 'data'),
    user,
    password,
    netrc: () => `machine 127.0.0.1 login ${user} password ${password}\n`,
    requests: async () => (await readFile(join(dir, 'access.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean),
    narinfos: async () => {
      const out: Record<string, string> = {};
      for (const name of await readdir(join(dir, 'data'))) if (name.endsWith('.narinfo')) out[name] = await readFile(join(dir, 'data', name), 'utf8');
      return out;
    },
    hung: () => front?.hung() ?? 0,
    async stop() {
      await front?.stop();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
    },
  };
}
