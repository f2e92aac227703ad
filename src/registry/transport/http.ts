// The one place bytes go over the wire: node:http/https with keep-alive, streamed request bodies,
// buffered (small) response bodies, and connection failures turned into NetworkError.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { NetworkError, RegistryError } from './error.js';

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** A buffer, or a function that opens the body afresh (so a retry can send it again). */
  body?: Buffer | (() => Readable);
}

export interface HttpResponse {
  status: number;
  statusText: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Responses we read are JSON documents and configs; anything larger is a misbehaving server. */
const MAX_BODY = 64 * 1024 * 1024;
const IDLE_TIMEOUT_MS = 120_000;

export class HttpTransport {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly httpsAgent: https.Agent;

  constructor(insecure: boolean) {
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: !insecure });
  }

  request(req: HttpRequest): Promise<HttpResponse> {
    const secure = req.url.protocol === 'https:';
    const headers: Record<string, string> = { 'user-agent': 'nix-image-action', ...req.headers };
    if (Buffer.isBuffer(req.body)) headers['content-length'] = String(req.body.length);
    return new Promise((resolve, reject) => {
      const options: http.RequestOptions = {
        method: req.method,
        headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        timeout: IDLE_TIMEOUT_MS,
      };
      const r = (secure ? https : http).request(req.url, options, (res) => {
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
          resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', (e) => reject(e instanceof RegistryError ? e : new NetworkError(`${req.url.host}: ${e.message}`)));
      });
      r.on('timeout', () => r.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1000} s`)));
      r.on('error', (e: NodeJS.ErrnoException) => reject(classify(req.url, e)));
      if (req.body === undefined) r.end();
      else if (Buffer.isBuffer(req.body)) r.end(req.body);
      else {
        const body = req.body();
        body.on('error', (e) => r.destroy(e));
        body.pipe(r);
      }
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/;

export class TlsError extends RegistryError {
  override name = 'TlsError';
}

function classify(url: URL, e: NodeJS.ErrnoException): Error {
  if (e instanceof RegistryError) return e;
  const code = e.code ?? '';
  if (TLS_CODES.test(code)) {
    return new TlsError(`cannot verify the TLS certificate of ${url.host} (${code}): set insecure: true for a registry with a self-signed certificate`);
  }
  if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(e.message)) {
    return new TlsError(`${url.host} does not speak HTTPS (${e.message.split('\n')[0]}): set insecure: true for a plain-HTTP registry`);
  }
  return new NetworkError(`cannot reach registry ${url.host}: ${e.message}`);
}
