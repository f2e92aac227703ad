// Nix for tests: Debian's nix-bin (Nix 2.8, root, no sandbox), offline. Without `substituters =` every
// build would wait on the unreachable cache.nixos.org.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import './tmp.js'; // temporary directories go with the process (support/tmp.ts)

export const testNixConfig = ['experimental-features = nix-command flakes', 'substituters =', 'sandbox = false'].join('\n');

/** Environment for anything that runs Nix in a test (the bundled action, fixtures, benchmarks). */
export function nixTestEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { NIX_CONFIG: testNixConfig, ...extra };
}

const run = promisify(execFile);

/** A Nix binary cache key pair as `nix-store --generate-binary-cache-key` makes it (`name:base64` each). */
export async function generateCacheKey(name: string): Promise<{ secret: string; pub: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-key-'));
  await run('nix-store', ['--generate-binary-cache-key', name, join(dir, 'sec'), join(dir, 'pub')], { env: { ...process.env, ...nixTestEnv() } });
  const out = { secret: (await readFile(join(dir, 'sec'), 'utf8')).trim(), pub: (await readFile(join(dir, 'pub'), 'utf8')).trim() };
  await rm(dir, { recursive: true });
  return out;
}

/**
 * A PATH on which there is no Nix: a directory of links to everything in /usr/bin and /bin except nix*.
 * (Debian installs nix in /usr/bin beside everything else, so dropping a directory from PATH cannot do it.)
 */
export async function pathWithoutNix(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-nonix-'));
  await chmod(dir, 0o755); // the action runs an image's stream script as nobody, with this PATH
  for (const src of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    if (!existsSync(src)) continue;
    for (const name of readdirSync(src)) {
      if (name.startsWith('nix') || existsSync(join(dir, name))) continue;
      await symlink(join(src, name), join(dir, name)).catch(() => undefined);
    }
  }
  return dir;
}

export interface NixRelease {
  /** Directory served over HTTP: nix-<v>-<system>.tar.xz and its .sha256. */
  dir: string;
  file: string;
  sha256: string;
  version: string;
  system: string;
}

/**
 * A release-shaped tarball, nix-<v>-<system>/install plus a payload, like releases.nixos.org serves.
 * Its installer records the flags and the nix.conf lines it was given in $HOME/installer-record, and
 * "installs" a nix into $HOME/.nix-profile/bin that reports this version and builds with the real Nix.
 */
export async function makeNixRelease(version = '2.99.0', system = 'x86_64-linux', opts: { failing?: boolean } = {}): Promise<NixRelease> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-release-'));
  const name = `nix-${version}-${system}`;
  const root = join(dir, 'src', name);
  await mkdir(join(root, 'store'), { recursive: true });
  await writeFile(join(root, 'store', 'nix'), `#!/bin/sh\nif [ "$1" = --version ]; then echo "nix (Nix) ${version}"; exit 0; fi\nexec /usr/bin/nix "$@"\n`);
  await chmod(join(root, 'store', 'nix'), 0o755);
  await writeFile(
    join(root, 'install'),
    [
      '#!/bin/sh',
      'set -e',
      'here="$(cd "$(dirname "$0")" && pwd)"',
      'echo "args: $*" > "$HOME/installer-record"',
      ...(opts.failing ? ['echo "error: cannot create /nix: Permission denied" >&2', 'exit 1'] : []),
      'while [ $# -gt 0 ]; do',
      '  if [ "$1" = --nix-extra-conf-file ]; then echo "conf:" >> "$HOME/installer-record"; cat "$2" >> "$HOME/installer-record"; shift; fi',
      '  shift',
      'done',
      'mkdir -p "$HOME/.nix-profile/bin"',
      'cp "$here/store/nix" "$HOME/.nix-profile/bin/nix"',
      'echo "installed Nix ' + version + '"',
      '',
    ].join('\n'),
  );
  await chmod(join(root, 'install'), 0o755);
  const file = join(dir, `${name}.tar.xz`);
  await run('tar', ['-cJf', file, '-C', join(dir, 'src'), name]);
  const sha256 = createHash('sha256').update(await readFile(file)).digest('hex');
  await writeFile(`${file}.sha256`, `${sha256}\n`);
  return { dir, file, sha256, version, system };
}

export interface FileServer {
  url: string;
  /** Paths requested, in order. */
  requests: string[];
  stop(): Promise<void>;
}

/** Serves the files of a directory over HTTP on a free loopback port (404 for anything else). */
export async function serveDirectory(dir: string): Promise<FileServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const file = join(dir, path);
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end('not found');
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { 'content-length': body.length }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export interface CountingProxy {
  /** http://127.0.0.1:port, for HTTP_PROXY / HTTPS_PROXY. */
  url: string;
  /** What went through it: "CONNECT host:port" or "GET http://host/path". */
  requests: string[];
  stop(): Promise<void>;
}

/**
 * A forward HTTP proxy (CONNECT tunnels and absolute-form requests) that records each request and sends
 * the hosts named in `routes` ("name:port" → local port) to loopback, so a test can use a non-loopback
 * host name (which proxy-aware clients do not bypass) for a local server.
 */
export async function startCountingProxy(routes: Record<string, number> = {}): Promise<CountingProxy> {
  const requests: string[] = [];
  const tunnels = new Set<Socket>();
  const target = (host: string, port: number) => routes[`${host}:${port}`] !== undefined ? { host: '127.0.0.1', port: routes[`${host}:${port}`]! } : { host, port };
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/');
    const to = target(url.hostname, Number(url.port || 80));
    const upstream = httpRequest({ host: to.host, port: to.port, method: req.method, path: url.pathname + url.search, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    requests.push(`CONNECT ${req.url}`);
    tunnels.add(client);
    const [host, port] = (req.url ?? '').split(':');
    const to = target(host ?? '', Number(port));
    const upstream = connect(to.port, to.host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of tunnels) s.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
