// A client for one repository of one registry (OCI distribution spec): blobs, manifests, auth; reads (and
// blob mounts) from other repositories of the same registry. Transport concerns live in transport/
// (scheme, challenge, basic, bearer, token, retry, budget, error, http, origin, abort); this file says
// which requests to make, and which carry the registry's credentials: only those to the registry's own
// origin (scheme, host and port chosen at ping), never upload sessions or redirects elsewhere. Every call
// takes an optional AbortSignal.
//
// Every request is retried on its own (transport/retry.ts), within one retry budget for the whole client
// (transport/budget.ts). An upload is three requests, each retried by itself; a new upload session is
// opened only when the registry has lost the one we had (see uploadBlob).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { sha256Digest } from './manifest.js';
import { MAX_HOPS, REDIRECTS } from './constants.js';
import { MediaTypes, type Credentials, type Logger } from './types.js';
import { abortable } from './transport/abort.js';
import { basicHeader } from './transport/basic.js';
import { fetchToken, type Token } from './transport/bearer.js';
import { RetryBudget } from './transport/budget.js';
import { parseChallenge, type Challenge } from './transport/challenge.js';
import { AuthError, NetworkError, RegistryError, StallError, httpError, isRetryableStatus } from './transport/error.js';
import { HttpTransport, type HttpRequest, type HttpResponse } from './transport/http.js';
import { defaultRetry, isRetryable, retryCause, withRetry, type RetryOptions, type RetryPolicy } from './transport/retry.js';
import { sameOrigin } from './transport/origin.js';
import { pickScheme } from './transport/scheme.js';
import { TokenHolder } from './transport/token.js';

export interface RegistryClientOptions {
  /** host[:port] of the registry API. */
  registry: string;
  repository: string;
  /** Plain HTTP and unverified TLS, for the registry's own host only (not its token realm or blob storage). */
  insecure?: boolean;
  credentials?: Credentials;
  logger: Logger;
  /** Tries per request, backoff, and the client's retry budget (budgetMs). */
  retry?: Partial<RetryPolicy>;
  /** What to tell the user when the registry wants credentials and none were found (default: the inputs). */
  credentialsHint?: string;
  /** Called with every bearer token fetched, before it is used (wire to core.setSecret). */
  onSecret?: (value: string) => void;
  /** Extra trusted CA certificates (PEM), on top of Node's roots, for every host. */
  ca?: string[];
  /** Other repositories of the registry this client reads from (the bearer token gets pull on them). */
  pullFrom?: string[];
  /** A request moving no bytes for this long is dropped and retried (default 60 s). */
  stallMs?: number;
}

/** Per call: an abort destroys the call's requests (sockets, body streams), stops its retries and
 *  rejects it with an error named AbortError. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** A read from another repository of the same registry (default: the client's own). */
export interface ReadOptions extends CallOptions {
  repository?: string;
}

export interface ClientStats {
  /** Requests sent again, and upload sessions found lost, after a failure. */
  retries: number;
  /** The same by cause: the HTTP status ("429", "503"), "connection" (dropped or reset), "stall". */
  causes: Record<string, number>;
  /** Bearer tokens fetched (the first included). */
  tokens: number;
  /** Upload sessions opened again because the registry lost one. */
  sessions: number;
}

type Auth = { kind: 'none' } | { kind: 'basic'; header: string } | { kind: 'bearer'; challenge: Challenge; tokens: TokenHolder };

/** Upload sessions per blob, at most: the first and two more after the registry lost one. */
const MAX_SESSIONS = 3;
/** Manifest PUTs answered MANIFEST_BLOB_UNKNOWN, at most, before the answer stands. */
const BLOB_CATCH_UP_TRIES = 3;
/** Bytes of a blob read per ranged GET: a layer is never held whole in memory. */
const BLOB_PIECE = 8 * 1024 * 1024;

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export class RegistryClient {
  private readonly transport: HttpTransport;
  private readonly retry: RetryPolicy;
  private readonly budget: RetryBudget;
  private ready?: Promise<void>;
  private base?: URL;
  private auth: Auth = { kind: 'none' };
  private readonly pullFrom = new Set<string>();
  /** Scopes a registry's challenge asked for that we had not (as go-containerregistry adds them). */
  private readonly extraScopes = new Set<string>();
  private sessions = 0;

  constructor(private readonly opts: RegistryClientOptions) {
    this.transport = new HttpTransport({ registry: opts.registry, insecure: opts.insecure ?? false, ca: opts.ca, stallMs: opts.stallMs });
    this.retry = { ...defaultRetry, ...opts.retry };
    this.budget = new RetryBudget(this.retry.budgetMs);
    for (const r of opts.pullFrom ?? []) if (r !== opts.repository) this.pullFrom.add(r);
  }

  get registry(): string {
    return this.opts.registry;
  }

  get repository(): string {
    return this.opts.repository;
  }

  /** Retries so far, by cause; tokens fetched; upload sessions reopened (the push's report). */
  get stats(): ClientStats {
    const tokens = this.auth.kind === 'bearer' ? this.auth.tokens.fetched : 0;
    const { total, causes } = this.budget.stats();
    return { retries: total, causes, tokens, sessions: this.sessions };
  }

  /** Lets this client read (and mount blobs) from other repositories of the registry: a bearer token held
   *  without pull on them is dropped, and the next request fetches one with it. */
  allowPull(repositories: string[]): void {
    let added = false;
    for (const r of repositories) {
      if (r === this.opts.repository || this.pullFrom.has(r)) continue;
      this.pullFrom.add(r);
      added = true;
    }
    if (added && this.auth.kind === 'bearer') this.auth.tokens.invalidate();
  }

  private scopes(): string[] {
    const own = `repository:${this.opts.repository}:pull,push`;
    return [...new Set([own, ...[...this.pullFrom].map((r) => `repository:${r}:pull`), ...this.extraScopes])];
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
    // The first contact: a host that cannot be reached at all (refused, unknown, unroutable) is most
    // likely a typo in `registry`, so it gets two more tries, not the full policy; statuses do.
    let unreachable = 0;
    const firstContact = (error: unknown): boolean => (error instanceof NetworkError && !(error instanceof StallError) ? ++unreachable < 3 : isRetryable(error));
    const { base, response } = await withRetry(
      `reaching ${registry}`,
      () =>
        pickScheme(registry, insecure ?? false, async (b) => {
          const res = await this.transport.request({ method: 'GET', url: new URL('/v2/', b) });
          if (isRetryableStatus(res.status)) {
            throw httpError({ registry, what: 'GET /v2/', status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
          }
          return res;
        }),
      this.retry,
      this.opts.logger,
      undefined,
      { budget: this.budget, retryable: firstContact },
    );
    this.base = base;
    if (response.status === 200) return;
    if (response.status !== 401) {
      throw httpError({ registry, what: 'GET /v2/ (is this a container registry?)', status: response.status, statusText: response.statusText, body: response.body });
    }
    const challenge = parseChallenge(header(response, 'www-authenticate'));
    if (challenge?.scheme === 'bearer') {
      const auth: Extract<Auth, { kind: 'bearer' }> = {
        kind: 'bearer',
        challenge,
        tokens: new TokenHolder(
          () => this.fetchToken(auth.challenge),
          (token) => this.opts.onSecret?.(token.value),
        ),
      };
      this.auth = auth;
      await withRetry(`a token for ${registry}`, () => auth.tokens.refresh(), this.retry, this.opts.logger, undefined, { budget: this.budget });
      return;
    }
    if (challenge?.scheme === 'basic') {
      if (!credentials) throw new AuthError(`registry ${registry} requires a user name and password: ${this.opts.credentialsHint ?? 'set the username and password inputs'}`, 401);
      this.auth = { kind: 'basic', header: basicHeader(credentials) };
      const check = await this.transport.request({ method: 'GET', url: new URL('/v2/', base), headers: { authorization: this.auth.header } });
      if (check.status === 401 || check.status === 403) {
        throw new AuthError(`registry ${registry} rejected the credentials of ${credentials.username} (${check.status})`, check.status);
      }
      return;
    }
    throw new AuthError(`registry ${registry} asks for an authentication scheme we do not speak: ${header(response, 'www-authenticate') ?? 'none given'}`, 401);
  }

  /** A token for our scopes. A token server that refuses the pull scopes on other repositories (rather
   *  than granting less, as the spec has it) is asked again for this repository alone: reuse from there
   *  then finds nothing, and the push goes on. */
  private async fetchToken(challenge: Challenge): Promise<Token> {
    const { credentials, registry, insecure } = this.opts;
    const scopes = this.scopes();
    const request = (s: string[]) => fetchToken(this.transport, { challenge, scopes: s, credentials, registry, insecure: insecure ?? false });
    try {
      return await request(scopes);
    } catch (error) {
      if (!(error instanceof AuthError) || scopes.length === 1) throw error;
      this.opts.logger.info(`registry ${registry} refused a token for ${scopes.slice(1).join(' ')} (${error.message}): asking for ${scopes[0]} alone`);
      this.pullFrom.clear();
      this.extraScopes.clear();
      return request(this.scopes());
    }
  }

  private url(path: string, repository = this.opts.repository): URL {
    return new URL(`/v2/${repository}/${path}`, this.base);
  }

  private toRegistry(url: URL): boolean {
    return this.base !== undefined && sameOrigin(url, this.base);
  }

  /** The registry's Authorization, for a request to `url`: nothing unless it goes to the registry's origin.
   *  A bearer token due for renewal is fetched again first. */
  private async authHeaders(url: URL, signal: AbortSignal | undefined): Promise<Record<string, string>> {
    if (!this.toRegistry(url)) return {};
    if (this.auth.kind === 'basic') return { authorization: this.auth.header };
    if (this.auth.kind === 'bearer') return { authorization: `Bearer ${await this.auth.tokens.get(signal)}` };
    return {};
  }

  /**
   * One request, with the registry's credentials if it goes to the registry's origin; a 401 from the
   * registry under a bearer token (revoked, or short of a scope its challenge names) fetches a fresh token
   * once. Follows redirects for reads, each hop judged against the registry's origin (not the previous
   * hop): blob storage gets no credentials.
   */
  private async send(req: HttpRequest): Promise<HttpResponse> {
    await abortable(this.ping(), req.signal, `${req.method} ${req.url.pathname}`);
    const withAuth = async (r: HttpRequest): Promise<HttpRequest> => ({ ...r, headers: { ...r.headers, ...(await this.authHeaders(r.url, r.signal)) } });
    const first = await withAuth(req);
    let res = await this.transport.request(first);
    if (res.status === 401 && this.auth.kind === 'bearer' && this.toRegistry(req.url)) {
      const fresh = parseChallenge(header(res, 'www-authenticate'));
      if (fresh?.scheme === 'bearer') {
        this.auth.challenge = fresh;
        for (const scope of (fresh.params.scope ?? '').split(' ').filter(Boolean)) {
          if (!this.scopes().includes(scope)) this.extraScopes.add(scope);
        }
      }
      this.auth.tokens.invalidate(first.headers?.authorization?.slice('Bearer '.length));
      res = await this.transport.request(await withAuth(req));
    }
    for (let hops = 0; (req.method === 'GET' || req.method === 'HEAD') && REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
      const location = header(res, 'location');
      if (!location) break;
      req = { ...req, url: new URL(location, req.url) };
      res = await this.transport.request(await withAuth(req));
    }
    return res;
  }

  private fail(what: string, res: HttpResponse): RegistryError {
    return httpError({ registry: this.opts.registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
  }

  /** One request with its retries; `ok` lists the statuses that are answers rather than failures. */
  private async call(
    what: string,
    req: () => HttpRequest,
    ok: number[],
    signal: AbortSignal | undefined,
    retryable?: RetryOptions['retryable'],
  ): Promise<HttpResponse> {
    await abortable(this.ping(), signal, what);
    return withRetry(
      what,
      async () => {
        const res = await this.send({ ...req(), signal }).catch((error: unknown) => {
          // A dropped connection says which request it dropped (a fresh error: a token fetch's is shared).
          if (error instanceof NetworkError) throw new (error.constructor as typeof NetworkError)(`${what}: ${error.message}`);
          throw error;
        });
        if (!ok.includes(res.status)) throw this.fail(what, res);
        return res;
      },
      this.retry,
      this.opts.logger,
      signal,
      { budget: this.budget, ...(retryable ? { retryable } : {}) },
    );
  }

  async hasBlob(digest: string, opts: ReadOptions = {}): Promise<boolean> {
    const res = await this.call(`HEAD blob ${digest}${this.from(opts)}`, () => ({ method: 'HEAD', url: this.url(`blobs/${digest}`, opts.repository) }), [200, 404], opts.signal);
    return res.status === 200;
  }

  async getBlob(digest: string, opts: ReadOptions = {}): Promise<Buffer> {
    const res = await this.call(`GET blob ${digest}${this.from(opts)}`, () => ({ method: 'GET', url: this.url(`blobs/${digest}`, opts.repository) }), [200], opts.signal);
    const got = sha256Digest(res.body);
    if (got !== digest) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} with content hashing to ${got}`);
    return res.body;
  }

  /**
   * A blob's bytes, in order, read with ranged GETs (each piece retried on its own); a registry that
   * ignores Range sends it whole, and that is taken as it comes. After the last piece the content must
   * hash to `digest` and be `size` bytes long, or the iteration throws.
   */
  async *blobPieces(digest: string, size: number, opts: ReadOptions = {}): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    let at = 0;
    while (at < size) {
      const end = Math.min(size, at + BLOB_PIECE) - 1;
      const res = await this.call(
        `GET blob ${digest}${this.from(opts)} (bytes ${at}-${end})`,
        () => ({ method: 'GET', url: this.url(`blobs/${digest}`, opts.repository), headers: { range: `bytes=${at}-${end}` } }),
        [200, 206],
        opts.signal,
      );
      const piece = res.status === 206 ? res.body : res.body.subarray(at);
      if (piece.length === 0 || (res.status === 206 && piece.length !== end - at + 1)) {
        throw new RegistryError(`registry ${this.opts.registry} sent ${piece.length} bytes of blob ${digest} for bytes ${at}-${end}`);
      }
      hash.update(piece);
      at += piece.length;
      yield piece;
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== digest || at !== size) throw new RegistryError(`registry ${this.opts.registry} sent blob ${digest} (${size} bytes) as ${at} bytes hashing to ${got}`);
  }

  async getManifest(ref: string, opts: ReadOptions = {}): Promise<{ mediaType: string; digest: string; bytes: Buffer } | undefined> {
    const res = await this.call(
      `GET manifest ${ref}${this.from(opts)}`,
      () => ({ method: 'GET', url: this.url(`manifests/${ref}`, opts.repository), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404],
      opts.signal,
    );
    if (res.status === 404) return undefined;
    return { mediaType: header(res, 'content-type') ?? '', digest: sha256Digest(res.body), bytes: res.body };
  }

  /**
   * The OCI 1.1 referrers API: the index of the manifests whose subject is `digest`. Undefined when the
   * registry does not serve the API (404, 400, 405; Distribution 2.8 answers 404), so the caller falls
   * back to the sha256-<digest> tag.
   */
  async getReferrers(digest: string, opts: ReadOptions = {}): Promise<{ mediaType: string; bytes: Buffer } | undefined> {
    const res = await this.call(
      `GET referrers ${digest}${this.from(opts)}`,
      () => ({ method: 'GET', url: this.url(`referrers/${digest}`, opts.repository), headers: { accept: MediaTypes.ociIndex } }),
      [200, 400, 404, 405],
      opts.signal,
    );
    if (res.status !== 200) return undefined;
    const mediaType = header(res, 'content-type') ?? '';
    // A registry without the API may answer 200 with something else (an HTML page, a catch-all route).
    if (!mediaType.startsWith(MediaTypes.ociIndex)) return undefined;
    return { mediaType, bytes: res.body };
  }

  /** " of <repository>" for a read from another repository, for messages. */
  private from(opts: ReadOptions): string {
    return opts.repository && opts.repository !== this.opts.repository ? ` of ${opts.repository}` : '';
  }

  /**
   * PUTs a manifest under a tag; returns the digest the registry filed it under. Every blob it names was
   * confirmed before: a registry that still answers MANIFEST_BLOB_UNKNOWN has not caught up with a blob
   * just committed (an eventually consistent store, or another writer committing the same blob at that
   * moment), so the PUT is sent again a little later, a few times at most.
   */
  async putManifest(ref: string, bytes: Buffer, mediaType: string, opts: CallOptions = {}): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.call(
          `PUT manifest ${ref}`,
          () => ({ method: 'PUT', url: this.url(`manifests/${ref}`), headers: { 'content-type': mediaType }, body: bytes }),
          [200, 201],
          opts.signal,
        );
        return header(res, 'docker-content-digest') ?? sha256Digest(bytes);
      } catch (error) {
        if (!(error instanceof RegistryError && error.status === 400 && /BLOB_UNKNOWN/.test(error.message)) || attempt >= BLOB_CATCH_UP_TRIES) throw error;
        this.opts.logger.info(`registry ${this.opts.registry} does not see a blob of manifest ${ref} yet: sending it again`);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }

  /**
   * Cross-repository mount: asks the registry to link a blob of `from` (same registry) into this
   * repository, nothing uploaded. True when mounted (201); false when the registry opened an upload
   * session instead (202: it does not mount, or cannot see the blob there), which is cancelled: the
   * caller uploads the blob the usual way.
   */
  async mountBlob(digest: string, from: string, opts: CallOptions = {}): Promise<boolean> {
    const res = await this.call(
      `POST blob mount of ${digest} from ${from}`,
      () => {
        const url = this.url('blobs/uploads/');
        url.searchParams.set('mount', digest);
        url.searchParams.set('from', from);
        return { method: 'POST', url, headers: { 'content-length': '0' } };
      },
      [201, 202],
      opts.signal,
    );
    if (res.status === 201) return true;
    const location = header(res, 'location');
    if (location) {
      // Best effort, once: a registry purges abandoned sessions anyway.
      await this.send({ method: 'DELETE', url: new URL(location, this.base), signal: opts.signal }).catch(() => undefined);
    }
    return false;
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
   * registry asks for chunks (OCI-Chunk-Min-Length): then the body goes as one ranged chunk. The session's
   * Location may be on another host (blob storage): the PATCH and PUT then carry no registry credentials.
   *
   * Each request retries on its own: the POST; the PATCH on the same session, with the body opened
   * afresh, when the registry answered 408, 429 or 5xx; the PUT. A new session is opened only when the
   * one we had is gone: the registry answers 404 / BLOB_UPLOAD_UNKNOWN (or says the session no longer
   * matches what we sent: BLOB_UPLOAD_INVALID, DIGEST_INVALID, 416), or the connection dropped or stalled
   * mid-PATCH, leaving the session in a state we cannot know. Before a new session, HEAD: the blob may
   * have landed anyway (the PUT went through and only its answer was lost), and then nothing is sent again.
   */
  async uploadBlob(blob: { digest: string; size: number }, open: () => Readable, opts: CallOptions = {}): Promise<void> {
    const { signal } = opts;
    for (let session = 1; ; session++) {
      const opened = await this.openUpload(blob.digest, signal);
      if (!opened) return; // 201: the registry has it
      const lost = await this.sendThrough(opened, blob, open, signal);
      if (!lost) return;
      this.budget.count(retryCause(lost));
      if (await this.hasBlob(blob.digest, { signal })) {
        this.opts.logger.info(`${lost.message}; the registry has blob ${blob.digest} all the same: not sent again`);
        return;
      }
      if (session >= MAX_SESSIONS) {
        lost.message += ` (after ${session} upload sessions)`;
        throw lost;
      }
      this.sessions++;
      this.opts.logger.info(`${lost.message}; the upload session is lost: opening a new one (${session + 1} of ${MAX_SESSIONS})`);
    }
  }

  /** POST: a new upload session, or undefined when the registry says the blob is already complete. */
  private async openUpload(digest: string, signal: AbortSignal | undefined): Promise<{ url: URL; chunked: boolean } | undefined> {
    const start = await this.call(`POST blob upload for ${digest}`, () => ({ method: 'POST', url: this.url('blobs/uploads/'), headers: { 'content-length': '0' } }), [201, 202], signal);
    if (start.status === 201) return undefined;
    return { url: this.location(start, digest), chunked: header(start, 'oci-chunk-min-length') !== undefined };
  }

  /** PATCH then PUT on one session: undefined when the blob is in, the error when the session is lost. */
  private async sendThrough(
    session: { url: URL; chunked: boolean },
    blob: { digest: string; size: number },
    open: () => Readable,
    signal: AbortSignal | undefined,
  ): Promise<RegistryError | undefined> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) };
    if (session.chunked) headers['content-range'] = `0-${Math.max(0, blob.size - 1)}`;
    let next: URL;
    try {
      // 202 per the spec; ECR answers 201, some registries 204 (go-containerregistry accepts all three).
      const patch = await this.call(`PATCH blob ${blob.digest}`, () => ({ method: 'PATCH', url: session.url, headers, body: open }), [201, 202, 204], signal, retryableStatus);
      next = header(patch, 'location') ? this.location(patch, blob.digest) : session.url;
    } catch (error) {
      if (error instanceof NetworkError || sessionLost(error)) return error as RegistryError;
      throw error;
    }
    try {
      await this.call(`PUT blob ${blob.digest}`, () => ({ method: 'PUT', url: withDigest(next, blob.digest), headers: { 'content-length': '0' } }), [201], signal);
      return undefined;
    } catch (error) {
      if (sessionLost(error)) return error as RegistryError;
      throw error;
    }
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

/** A PATCH is sent again on its session only for an answer (the registry refused it whole), never after its
 *  connection dropped mid-body. */
function retryableStatus(error: unknown): boolean {
  return error instanceof RegistryError && !(error instanceof NetworkError) && !(error instanceof AuthError) && error.status !== undefined && isRetryableStatus(error.status);
}

/** The registry no longer has the session, or it no longer matches what we sent. */
function sessionLost(error: unknown): boolean {
  if (!(error instanceof RegistryError) || error instanceof AuthError) return false;
  if (error.status === 404 || error.status === 416) return true;
  return error.code === 'BLOB_UPLOAD_UNKNOWN' || error.code === 'BLOB_UPLOAD_INVALID' || error.code === 'DIGEST_INVALID';
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
