// A forward HTTP proxy on loopback, as a runner's HTTPS_PROXY / HTTP_PROXY names one: requests in
// absolute form are forwarded, CONNECT opens a tunnel. It records what it was asked for ("CONNECT
// host:port", "GET http://host/path") and every byte that went through it, either way, so a test can
// show both that a request took the proxy and what the proxy could read.
//
// Loopback is never proxied (the action reaches it directly, as @actions/http-client does), so a test
// names its servers under PROXIED_DOMAIN (`viaProxy('127.0.0.1:5000')` → `registry.nia.test:5000`): only
// this proxy resolves those names (to 127.0.0.1), and the registry's test certificate covers them.
import * as http from 'node:http';
import { connect, type Socket } from 'node:net';
import { freePort } from './registry.js';

/** Names only the proxy resolves, to 127.0.0.1. */
export const PROXIED_DOMAIN = 'nia.test';

/** `127.0.0.1:port` as a name under PROXIED_DOMAIN (`<label>.nia.test:port`). */
export function viaProxy(host: string, label = 'registry'): string {
  return `${label}.${PROXIED_DOMAIN}:${host.split(':').pop()}`;
}

const resolve = (host: string): string => (host === PROXIED_DOMAIN || host.endsWith(`.${PROXIED_DOMAIN}`) ? '127.0.0.1' : host);

export interface ProxyOptions {
  /** Answer every CONNECT with this status instead of a tunnel (407: credentials wanted, 403: refused). */
  refuseConnect?: number;
}

export interface TestProxy {
  /** http://127.0.0.1:<port> */
  url: string;
  /** What it was asked for, in order. */
  seen: string[];
  /** Every byte it carried, both ways (tunnels and forwarded requests), as latin1 text. */
  carried(): string;
  stop(): Promise<void>;
}

export async function startProxy(opts: ProxyOptions = {}): Promise<TestProxy> {
  const seen: string[] = [];
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const keep = (s: Socket): Socket => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    return s;
  };
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    chunks.push(Buffer.from(`${req.method} ${req.url}\r\n${req.rawHeaders.map((h, i) => (i % 2 ? `${h}\r\n` : `${h}: `)).join('')}\r\n`, 'latin1'));
    const target = new URL(req.url ?? '');
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const up = http.request({ host: resolve(target.hostname), port: target.port || 80, method: req.method, path: `${target.pathname}${target.search}`, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.on('data', (c: Buffer) => chunks.push(c));
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    keep(client);
    if (opts.refuseConnect) {
      client.end(`HTTP/1.1 ${opts.refuseConnect} ${http.STATUS_CODES[opts.refuseConnect] ?? 'Refused'}\r\n\r\n`);
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    const upstream = keep(connect(Number(port), resolve(host!), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      client.on('data', (c: Buffer) => chunks.push(c));
      upstream.on('data', (c: Buffer) => chunks.push(c));
      client.pipe(upstream);
      upstream.pipe(client);
    }));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    carried: () => Buffer.concat(chunks).toString('latin1'),
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
