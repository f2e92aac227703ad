// The one place bytes go over the wire: node:http/https with keep-alive, streamed request bodies,
// buffered (small) response bodies, and connection failures turned into NetworkError. A request whose
// connection moves no bytes, up or down, for `stallMs` (default 60 s) is dropped as a StallError, a
// NetworkError like any other dropped connection. TLS is verified
// for every host; `insecure` relaxes it for the registry's own origin only, never for the hosts the
// registry sends us to (token realm, blob storage, redirects). Plain HTTP goes only to the registry's own
// host (any port) of an insecure registry: any other plain-HTTP request is refused here, whatever asked
// for it (the callers refuse first, saying why). An AbortSignal destroys the request,
// its response and its body stream. Requests go through the runner's HTTPS_PROXY / HTTP_PROXY unless
// NO_PROXY names the host (proxy.ts).
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { AbortError } from './abort.js';
import { NetworkError, RegistryError, StallError } from './error.js';
import { cleartextAllowed, cleartextRule, originOf } from './origin.js';
import { proxyOptions, tunnelRefusal } from '../../proxy.js';

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A buffer, or a function that opens the body afresh (so a retry can send it again). */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpTransportOptions {
  /** host[:port] of the registry: the one host whose TLS certificate `insecure` stops verifying. */
  registry: string;
  insecure: boolean;
  /** Other hosts plain HTTP may go to (insecure-registries entries no tag names: a token server, blob storage). */
  plainHosts?: readonly string[];
  /** Extra trusted certificates (PEM), on top of Node's roots, for every host. */
  ca?: string[];
  /** A connection that moves no bytes for this long (uploading, waiting, downloading) is dropped. */
  stallMs?: number;
  /** Hears, once, that credentials went to a plain-HTTP host through the runner's proxy. */
  warn?: (message: string) => void;
}

/** Responses we read are JSON documents and configs; anything larger is a misbehaving server. */
const MAX_BODY = 64 * 1024 * 1024;
export const STALL_MS = 60_000;

export class HttpTransport {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16, ...proxyOptions() });
  private readonly httpsAgent: https.Agent;
  /** Only for the registry's https origin, when insecure. */
  private readonly registryAgent?: https.Agent;
  private readonly registryOrigin: string;
  /** host[:port] as URL#host spells it, for messages. */
  private readonly registryHost: string;

  private readonly stallMs: number;
  private warnedCleartext = false;

  constructor(private readonly opts: HttpTransportOptions) {
    this.stallMs = opts.stallMs ?? STALL_MS;
    const ca = opts.ca?.length ? [...rootCertificates, ...opts.ca] : undefined;
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, ...(ca ? { ca } : {}), ...proxyOptions() });
    if (opts.insecure) this.registryAgent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false, ...proxyOptions() });
    this.registryOrigin = originOf(`https://${opts.registry}/`);
    this.registryHost = new URL(`https://${opts.registry}/`).host;
  }

  private agent(url: URL): http.Agent {
    if (url.protocol !== 'https:') return this.httpAgent;
    return this.registryAgent && url.origin === this.registryOrigin ? this.registryAgent : this.httpsAgent;
  }

  request(req: HttpRequest): Promise<HttpResponse> {
    const secure = req.url.protocol === 'https:';
    const headers: Record<string, string> = { 'user-agent': 'nix-image-action', ...req.headers };
    if (Buffer.isBuffer(req.body)) headers['content-length'] = String(req.body.length);
    const what = `${req.method} ${req.url.host}${req.url.pathname}`;
    const { signal } = req;
    if (signal?.aborted) return Promise.reject(new AbortError(what, signal.reason));
    if (!cleartextAllowed(req.url, this.opts.registry, this.opts.insecure, this.opts.plainHosts)) {
      const over = req.url.protocol === 'http:' ? 'plain HTTP' : `${req.url.protocol} (not HTTP(S))`;
      return Promise.reject(new CleartextError(`refused to send ${what} over ${over}: requests go ${cleartextRule(this.opts.registry)}`));
    }
    return new Promise((resolve, reject) => {
      let body: Readable | undefined;
      let response: http.IncomingMessage | undefined;
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = (): void => {
        const error = new AbortError(what, signal?.reason);
        finish(() => reject(error));
        response?.destroy(error);
        r.destroy(error);
        body?.destroy();
      };
      const options: http.RequestOptions = {
        method: req.method,
        headers,
        agent: this.agent(req.url),
        timeout: this.stallMs,
      };
      const r = (secure ? https : http).request(req.url, options, (res) => {
        response = res;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            res.destroy(new RegistryError(`${req.method} ${req.url.pathname}: response body over ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          finish(() => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks) })),
        );
        res.on('error', (e) => finish(() => reject(e instanceof RegistryError ? e : new NetworkError(`${req.url.host}: ${e.message}`))));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      // The socket's idle timeout: no byte written or read for stallMs, at any stage of the request.
      r.on('timeout', () => {
        const error = new StallError(`no bytes moved for ${this.stallMs / 1000} s (${req.url.host})`);
        response?.destroy(error);
        r.destroy(error);
      });
      r.on('error', (e: NodeJS.ErrnoException) => finish(() => reject(this.classify(req.url, e))));
      // Node writes a request it sends through an HTTP proxy in absolute form: credentials in it cross the
      // proxy unencrypted.
      if (!secure && headers.authorization && /^http:\/\//.test(r.path) && !this.warnedCleartext) {
        this.warnedCleartext = true;
        this.opts.warn?.(
          `${req.url.host} is plain HTTP and reached through the runner's proxy (HTTP_PROXY): its credentials cross the proxy unencrypted; add the host to NO_PROXY, or serve it over HTTPS`,
        );
      }
      // A request that ends early (an answer before the whole body, a reset) leaves no file open.
      r.on('close', () => body?.destroy());
      if (req.body === undefined) r.end();
      else if (Buffer.isBuffer(req.body)) r.end(req.body);
      else {
        body = req.body();
        body.on('error', (e) => r.destroy(e));
        body.pipe(r);
      }
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.registryAgent?.destroy();
  }

  private classify(url: URL, e: NodeJS.ErrnoException): Error {
    if (e instanceof RegistryError || e instanceof AbortError) return e;
    const code = e.code ?? '';
    const registryHost = url.host === this.registryHost;
    if (TLS_CODES.test(code)) {
      if (!registryHost) {
        return new TlsError(
          `cannot verify the TLS certificate of ${url.host} (${code}), where registry ${this.opts.registry} sent us: insecure: true applies to the registry's own host only`,
        );
      }
      return new TlsError(`cannot verify the TLS certificate of ${url.host} (${code}): set insecure: true for a registry with a self-signed certificate`);
    }
    if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(e.message)) {
      if (!registryHost) return new TlsError(`${url.host}, where registry ${this.opts.registry} sent us, does not speak HTTPS (${e.message.split('\n')[0]})`);
      return new TlsError(`${url.host} does not speak HTTPS (${e.message.split('\n')[0]}): set insecure: true for a plain-HTTP registry`);
    }
    const refused = tunnelRefusal(url.host, e);
    if (refused) return new TunnelError(refused);
    // Before a connection exists the host cannot be reached; after, the connection was lost.
    const reaching = CONNECT_CODES.has(code);
    return new NetworkError(`${reaching ? 'cannot reach' : 'lost the connection to'} ${registryHost ? 'registry ' : ''}${url.host}: ${e.message}`);
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/;
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** The proxy would not open a tunnel to the host (403, 407, …): not retried. For an insecure registry's
 *  HTTPS probe, a reason to try plain HTTP (a proxy may tunnel only to port 443). */
export class TunnelError extends RegistryError {
  override name = 'TunnelError';
}

export class TlsError extends RegistryError {
  override name = 'TlsError';
}

/** A request that would go over plain HTTP where insecure does not allow it (or over no HTTP at all): not sent, not retried. */
export class CleartextError extends RegistryError {
  override name = 'CleartextError';
}
