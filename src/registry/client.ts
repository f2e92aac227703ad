// A client for one repository of one registry (OCI distribution spec): blobs, manifests, auth.
// Transport concerns live in transport/ (scheme, challenge, basic, bearer, retry, error, http);
// this file says which requests to make.
import { Readable } from 'node:stream';
import { sha256Digest } from './manifest.js';
import type { Credentials, Logger } from './types.js';
import { basicHeader } from './transport/basic.js';
import { fetchToken } from './transport/bearer.js';
import { parseChallenge, type Challenge } from './transport/challenge.js';
import { AuthError, RegistryError, httpError } from './transport/error.js';
import { HttpTransport, type HttpRequest, type HttpResponse } from './transport/http.js';
import { defaultRetry, withRetry, type RetryPolicy } from './transport/retry.js';
import { pickScheme } from './transport/scheme.js';

export interface RegistryClientOptions {
  /** host[:port] of the registry API. */
  registry: string;
  repository: string;
  insecure?: boolean;
  credentials?: Credentials;
  logger: Logger;
  retry?: Partial<RetryPolicy>;
}

type Auth = { kind: 'none' } | { kind: 'basic'; header: string } | { kind: 'bearer'; challenge: Challenge; token?: string };

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export class RegistryClient {
  private readonly transport: HttpTransport;
  private readonly retry: RetryPolicy;
  private ready?: Promise<void>;
  private base?: URL;
  private auth: Auth = { kind: 'none' };

  constructor(private readonly opts: RegistryClientOptions) {
    this.transport = new HttpTransport(opts.insecure ?? false);
    this.retry = { ...defaultRetry, ...opts.retry };
  }

  get registry(): string {
    return this.opts.registry;
  }

  private get scope(): string {
    return `repository:${this.opts.repository}:pull,push`;
  }

  /**
   * Reaches the registry, picks the scheme and the auth method, and checks the credentials,
   * so that a typo fails before a long build. Every other method calls it first.
   */
  ping(): Promise<void> {
    this.ready ??= this.doPing();
    return this.ready;
  }

  private async doPing(): Promise<void> {
    const { registry, insecure, credentials } = this.opts;
    const { base, response } = await withRetry(
      `reaching ${registry}`,
      () =>
        pickScheme(registry, insecure ?? false, async (b) => {
          const res = await this.transport.request({ method: 'GET', url: new URL('/v2/', b) });
          if (res.status >= 500 || res.status === 429 || res.status === 408) {
            throw httpError({ registry, what: 'GET /v2/', status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
          }
          return res;
        }),
      this.retry,
      this.opts.logger,
    );
    this.base = base;
    if (response.status === 200) return;
    if (response.status !== 401) {
      throw httpError({ registry, what: 'GET /v2/ (is this a container registry?)', status: response.status, statusText: response.statusText, body: response.body });
    }
    const challenge = parseChallenge(header(response, 'www-authenticate'));
    if (challenge?.scheme === 'bearer') {
      this.auth = { kind: 'bearer', challenge };
      this.auth.token = await fetchToken(this.transport, challenge, this.scope, credentials, registry);
      return;
    }
    if (challenge?.scheme === 'basic') {
      if (!credentials) throw new AuthError(`registry ${registry} requires a user name and password: set the username and password inputs`, 401);
      this.auth = { kind: 'basic', header: basicHeader(credentials) };
      const check = await this.transport.request({ method: 'GET', url: new URL('/v2/', base), headers: { authorization: this.auth.header } });
      if (check.status === 401 || check.status === 403) {
        throw new AuthError(`registry ${registry} rejected the credentials of ${credentials.username} (${check.status})`, check.status);
      }
      return;
    }
    throw new AuthError(`registry ${registry} asks for an authentication scheme we do not speak: ${header(response, 'www-authenticate') ?? 'none given'}`, 401);
  }

  private url(path: string): URL {
    return new URL(`/v2/${this.opts.repository}/${path}`, this.base);
  }

  private authHeaders(): Record<string, string> {
    if (this.auth.kind === 'basic') return { authorization: this.auth.header };
    if (this.auth.kind === 'bearer' && this.auth.token) return { authorization: `Bearer ${this.auth.token}` };
    return {};
  }

  /** One request with auth; a 401 under a bearer token fetches a fresh token once. Follows redirects for reads. */
  private async send(req: HttpRequest): Promise<HttpResponse> {
    await this.ping();
    let res = await this.transport.request({ ...req, headers: { ...req.headers, ...this.authHeaders() } });
    if (res.status === 401 && this.auth.kind === 'bearer') {
      const fresh = parseChallenge(header(res, 'www-authenticate'));
      if (fresh?.scheme === 'bearer') this.auth.challenge = fresh;
      this.auth.token = await fetchToken(this.transport, this.auth.challenge, this.scope, this.opts.credentials, this.opts.registry);
      res = await this.transport.request({ ...req, headers: { ...req.headers, ...this.authHeaders() } });
    }
    for (let hops = 0; (req.method === 'GET' || req.method === 'HEAD') && [301, 302, 303, 307, 308].includes(res.status) && hops < 5; hops++) {
      const location = header(res, 'location');
      if (!location) break;
      const next = new URL(location, req.url);
      // Blob storage behind a redirect (S3, a CDN) gets no registry credentials.
      const headers = next.host === req.url.host ? { ...req.headers, ...this.authHeaders() } : { ...req.headers };
      req = { ...req, url: next };
      res = await this.transport.request({ ...req, headers });
    }
    return res;
  }

  private fail(what: string, res: HttpResponse): RegistryError {
    return httpError({ registry: this.opts.registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
  }

  /** Sends with retries; `ok` lists the statuses that are answers rather than failures. */
  private async call(what: string, req: () => HttpRequest, ok: number[]): Promise<HttpResponse> {
    await this.ping();
    return withRetry(
      what,
      async () => {
        const res = await this.send(req());
        if (!ok.includes(res.status)) throw this.fail(what, res);
        return res;
      },
      this.retry,
      this.opts.logger,
    );
  }

  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.call(`HEAD blob ${digest}`, () => ({ method: 'HEAD', url: this.url(`blobs/${digest}`) }), [200, 404]);
    return res.status === 200;
  }

  async getBlob(digest: string): Promise<Buffer> {
    const res = await this.call(`GET blob ${digest}`, () => ({ method: 'GET', url: this.url(`blobs/${digest}`) }), [200]);
    const got = sha256Digest(res.body);
    if (got !== digest) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} with content hashing to ${got}`);
    return res.body;
  }

  async getManifest(ref: string): Promise<{ mediaType: string; digest: string; bytes: Buffer } | undefined> {
    const res = await this.call(
      `GET manifest ${ref}`,
      () => ({ method: 'GET', url: this.url(`manifests/${ref}`), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404],
    );
    if (res.status === 404) return undefined;
    return { mediaType: header(res, 'content-type') ?? '', digest: sha256Digest(res.body), bytes: res.body };
  }

  /** PUTs a manifest under a tag; returns the digest the registry filed it under. */
  async putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.call(
      `PUT manifest ${ref}`,
      () => ({ method: 'PUT', url: this.url(`manifests/${ref}`), headers: { 'content-type': mediaType }, body: bytes }),
      [200, 201],
    );
    return header(res, 'docker-content-digest') ?? sha256Digest(bytes);
  }

  async uploadBlobBytes(bytes: Buffer): Promise<string> {
    const digest = sha256Digest(bytes);
    await this.uploadBlob({ digest, size: bytes.length }, () => Readable.from([bytes]));
    return digest;
  }

  /**
   * Uploads a blob the way docker, skopeo and go-containerregistry do, the shape every registry takes:
   * POST opens a session, one PATCH streams the whole body, PUT with ?digest= closes it. No Content-Range
   * (to ghcr.io a ranged request is a chunk, refused over 4 MiB, as is a body in the PUT), unless the
   * registry asks for chunks (OCI-Chunk-Min-Length): then the body goes as one ranged chunk. A failure
   * anywhere restarts from a fresh session.
   */
  async uploadBlob(blob: { digest: string; size: number }, open: () => Readable): Promise<void> {
    await this.ping();
    await withRetry(
      `uploading blob ${blob.digest}`,
      async () => {
        const session = await this.openUpload(blob.digest);
        if (session) await this.patchThenPut(session.url, blob, open, session.chunked);
      },
      this.retry,
      this.opts.logger,
    );
  }

  /** POST: a new upload session, or undefined when the registry says the blob is already complete. */
  private async openUpload(digest: string): Promise<{ url: URL; chunked: boolean } | undefined> {
    const start = await this.send({ method: 'POST', url: this.url('blobs/uploads/'), headers: { 'content-length': '0' } });
    if (start.status === 201) return undefined;
    if (start.status !== 202) throw this.fail(`POST blob upload for ${digest}`, start);
    return { url: this.location(start, digest), chunked: header(start, 'oci-chunk-min-length') !== undefined };
  }

  private async patchThenPut(session: URL, blob: { digest: string; size: number }, open: () => Readable, ranged: boolean): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) };
    if (ranged) headers['content-range'] = `0-${Math.max(0, blob.size - 1)}`;
    const patch = await this.send({ method: 'PATCH', url: session, headers, body: open });
    // 202 per the spec; ECR answers 201, some registries 204 (go-containerregistry accepts all three).
    if (![201, 202, 204].includes(patch.status)) throw this.fail(`PATCH blob ${blob.digest}`, patch);
    const next = header(patch, 'location') ? this.location(patch, blob.digest) : session;
    const put = await this.send({ method: 'PUT', url: withDigest(next, blob.digest), headers: { 'content-length': '0' } });
    if (put.status !== 201) throw this.fail(`PUT blob ${blob.digest}`, put);
  }

  private location(res: HttpResponse, digest: string): URL {
    const loc = header(res, 'location');
    if (!loc) throw new RegistryError(`registry ${this.opts.registry} opened an upload for ${digest} without a Location`);
    return new URL(loc, this.base);
  }

  close(): void {
    this.transport.close();
  }
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function withDigest(session: URL, digest: string): URL {
  const url = new URL(session);
  url.searchParams.set('digest', digest);
  return url;
}
