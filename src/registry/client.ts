// A client for one repository of one registry (OCI distribution spec): blobs, manifests, auth.
// Transport concerns live in transport/ (scheme, challenge, basic, bearer, retry, error, http, origin,
// abort); this file says which requests to make, and which carry the registry's credentials: only
// those to the registry's own origin (scheme, host and port chosen at ping), never upload sessions or
// redirects elsewhere. Every call takes an optional AbortSignal.
import { Readable } from 'node:stream';
import { sha256Digest } from './manifest.js';
import type { Credentials, Logger } from './types.js';
import { abortable, throwIfAborted } from './transport/abort.js';
import { basicHeader } from './transport/basic.js';
import { fetchToken } from './transport/bearer.js';
import { parseChallenge, type Challenge } from './transport/challenge.js';
import { AuthError, RegistryError, httpError } from './transport/error.js';
import { HttpTransport, type HttpRequest, type HttpResponse } from './transport/http.js';
import { defaultRetry, withRetry, type RetryPolicy } from './transport/retry.js';
import { sameOrigin } from './transport/origin.js';
import { pickScheme } from './transport/scheme.js';

export interface RegistryClientOptions {
  /** host[:port] of the registry API. */
  registry: string;
  repository: string;
  /** Plain HTTP and unverified TLS, for the registry's own host only (not its token realm or blob storage). */
  insecure?: boolean;
  credentials?: Credentials;
  logger: Logger;
  retry?: Partial<RetryPolicy>;
  /** Called with every bearer token fetched, before it is used (wire to core.setSecret). */
  onSecret?: (value: string) => void;
  /** Extra trusted CA certificates (PEM), on top of Node's roots, for every host. */
  ca?: string[];
}

/** Per call: an abort destroys the call's requests (sockets, body streams), stops its retries and
 *  rejects it with an error named AbortError. */
export interface CallOptions {
  signal?: AbortSignal;
}

type Auth = { kind: 'none' } | { kind: 'basic'; header: string } | { kind: 'bearer'; challenge: Challenge; token?: string };

const REDIRECTS = [301, 302, 303, 307, 308];
const MAX_HOPS = 5;

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
    this.transport = new HttpTransport({ registry: opts.registry, insecure: opts.insecure ?? false, ca: opts.ca });
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
      this.auth.token = await this.token(challenge);
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

  private async token(challenge: Challenge, signal?: AbortSignal): Promise<string> {
    const { credentials, registry, insecure } = this.opts;
    const token = await fetchToken(this.transport, { challenge, scope: this.scope, credentials, registry, insecure: insecure ?? false, signal });
    this.opts.onSecret?.(token);
    return token;
  }

  private url(path: string): URL {
    return new URL(`/v2/${this.opts.repository}/${path}`, this.base);
  }

  /** The registry's Authorization, for a request to `url`: nothing unless it goes to the registry's origin. */
  private authHeaders(url: URL): Record<string, string> {
    if (!this.base || !sameOrigin(url, this.base)) return {};
    if (this.auth.kind === 'basic') return { authorization: this.auth.header };
    if (this.auth.kind === 'bearer' && this.auth.token) return { authorization: `Bearer ${this.auth.token}` };
    return {};
  }

  /**
   * One request, with the registry's credentials if it goes to the registry's origin; a 401 from the
   * registry under a bearer token fetches a fresh token once. Follows redirects for reads, each hop
   * judged against the registry's origin (not the previous hop): blob storage gets no credentials.
   */
  private async send(req: HttpRequest): Promise<HttpResponse> {
    await abortable(this.ping(), req.signal, `${req.method} ${req.url.pathname}`);
    const withAuth = (r: HttpRequest): HttpRequest => ({ ...r, headers: { ...r.headers, ...this.authHeaders(r.url) } });
    let res = await this.transport.request(withAuth(req));
    if (res.status === 401 && this.auth.kind === 'bearer' && this.base && sameOrigin(req.url, this.base)) {
      const fresh = parseChallenge(header(res, 'www-authenticate'));
      if (fresh?.scheme === 'bearer') this.auth.challenge = fresh;
      this.auth.token = await this.token(this.auth.challenge, req.signal);
      res = await this.transport.request(withAuth(req));
    }
    for (let hops = 0; (req.method === 'GET' || req.method === 'HEAD') && REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
      const location = header(res, 'location');
      if (!location) break;
      req = { ...req, url: new URL(location, req.url) };
      res = await this.transport.request(withAuth(req));
    }
    return res;
  }

  private fail(what: string, res: HttpResponse): RegistryError {
    return httpError({ registry: this.opts.registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
  }

  /** Sends with retries; `ok` lists the statuses that are answers rather than failures. */
  private async call(what: string, req: () => HttpRequest, ok: number[], signal: AbortSignal | undefined): Promise<HttpResponse> {
    await abortable(this.ping(), signal, what);
    return withRetry(
      what,
      async () => {
        const res = await this.send({ ...req(), signal });
        if (!ok.includes(res.status)) throw this.fail(what, res);
        return res;
      },
      this.retry,
      this.opts.logger,
      signal,
    );
  }

  async hasBlob(digest: string, opts: CallOptions = {}): Promise<boolean> {
    const res = await this.call(`HEAD blob ${digest}`, () => ({ method: 'HEAD', url: this.url(`blobs/${digest}`) }), [200, 404], opts.signal);
    return res.status === 200;
  }

  async getBlob(digest: string, opts: CallOptions = {}): Promise<Buffer> {
    const res = await this.call(`GET blob ${digest}`, () => ({ method: 'GET', url: this.url(`blobs/${digest}`) }), [200], opts.signal);
    const got = sha256Digest(res.body);
    if (got !== digest) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} with content hashing to ${got}`);
    return res.body;
  }

  async getManifest(ref: string, opts: CallOptions = {}): Promise<{ mediaType: string; digest: string; bytes: Buffer } | undefined> {
    const res = await this.call(
      `GET manifest ${ref}`,
      () => ({ method: 'GET', url: this.url(`manifests/${ref}`), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404],
      opts.signal,
    );
    if (res.status === 404) return undefined;
    return { mediaType: header(res, 'content-type') ?? '', digest: sha256Digest(res.body), bytes: res.body };
  }

  /** PUTs a manifest under a tag; returns the digest the registry filed it under. */
  async putManifest(ref: string, bytes: Buffer, mediaType: string, opts: CallOptions = {}): Promise<string> {
    const res = await this.call(
      `PUT manifest ${ref}`,
      () => ({ method: 'PUT', url: this.url(`manifests/${ref}`), headers: { 'content-type': mediaType }, body: bytes }),
      [200, 201],
      opts.signal,
    );
    return header(res, 'docker-content-digest') ?? sha256Digest(bytes);
  }

  async uploadBlobBytes(bytes: Buffer, opts: CallOptions = {}): Promise<string> {
    const digest = sha256Digest(bytes);
    await this.uploadBlob({ digest, size: bytes.length }, () => Readable.from([bytes]), opts);
    return digest;
  }

  /**
   * Uploads a blob the way docker, skopeo and go-containerregistry do, the shape every registry takes:
   * POST opens a session, one PATCH streams the whole body, PUT with ?digest= closes it. No Content-Range
   * (to ghcr.io a ranged request is a chunk, refused over 4 MiB, as is a body in the PUT), unless the
   * registry asks for chunks (OCI-Chunk-Min-Length): then the body goes as one ranged chunk. A failure
   * anywhere restarts from a fresh session. The session's Location may be on another host (blob
   * storage): the PATCH and PUT then carry no registry credentials.
   */
  async uploadBlob(blob: { digest: string; size: number }, open: () => Readable, opts: CallOptions = {}): Promise<void> {
    const what = `uploading blob ${blob.digest}`;
    const { signal } = opts;
    await abortable(this.ping(), signal, what);
    await withRetry(
      what,
      async () => {
        const session = await this.openUpload(blob.digest, signal);
        throwIfAborted(signal, what);
        if (session) await this.patchThenPut(session.url, blob, open, session.chunked, signal);
      },
      this.retry,
      this.opts.logger,
      signal,
    );
  }

  /** POST: a new upload session, or undefined when the registry says the blob is already complete. */
  private async openUpload(digest: string, signal: AbortSignal | undefined): Promise<{ url: URL; chunked: boolean } | undefined> {
    const start = await this.send({ method: 'POST', url: this.url('blobs/uploads/'), headers: { 'content-length': '0' }, signal });
    if (start.status === 201) return undefined;
    if (start.status !== 202) throw this.fail(`POST blob upload for ${digest}`, start);
    return { url: this.location(start, digest), chunked: header(start, 'oci-chunk-min-length') !== undefined };
  }

  private async patchThenPut(
    session: URL,
    blob: { digest: string; size: number },
    open: () => Readable,
    ranged: boolean,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) };
    if (ranged) headers['content-range'] = `0-${Math.max(0, blob.size - 1)}`;
    const patch = await this.send({ method: 'PATCH', url: session, headers, body: open, signal });
    // 202 per the spec; ECR answers 201, some registries 204 (go-containerregistry accepts all three).
    if (![201, 202, 204].includes(patch.status)) throw this.fail(`PATCH blob ${blob.digest}`, patch);
    const next = header(patch, 'location') ? this.location(patch, blob.digest) : session;
    const put = await this.send({ method: 'PUT', url: withDigest(next, blob.digest), headers: { 'content-length': '0' }, signal });
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
