// A client for one repository of one registry (OCI distribution spec): blobs, manifests, auth; reads (and
// blob mounts) from other repositories of the same registry. Transport concerns live in transport/
// (scheme, challenge, basic, bearer, token, retry, budget, error, http, origin, abort); this file says
// which requests to make, and which carry the registry's credentials: only those to the registry's own
// origin (scheme, host and port chosen at ping), never upload sessions or redirects elsewhere, nor the rest
// of a redirect chain once it has left that origin. Where the registry sends us (a redirect, an upload
// session) may be plain HTTP only when the client is insecure and it is the registry's own host (any port);
// anything else is refused in one line. Every call takes an optional AbortSignal.
//
// Every request is retried on its own (transport/retry.ts), within one retry budget for the whole client
// (transport/budget.ts). An upload is three requests, each retried by itself; a new upload session is
// opened only when the registry has lost the one we had (see uploadBlob).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { sha256Digest } from '../hash.js';
import { MAX_HOPS, REDIRECTS } from './constants.js';
import { MediaTypes, type Credentials, type Logger } from './types.js';
import { abortable } from './transport/abort.js';
import { basicHeader } from './transport/basic.js';
import { exchangeAadToken, fetchToken, type Token } from './transport/bearer.js';
import { RetryBudget } from './transport/budget.js';
import { parseChallenge, type Challenge } from './transport/challenge.js';
import { AuthError, NetworkError, RateLimitError, RegistryError, StallError, describeBody, httpError, isRetryableStatus } from './transport/error.js';
import { CleartextError, HttpTransport, type HttpRequest, type HttpResponse } from './transport/http.js';
import { defaultRetry, isRetryable, retryCause, withRetry, type RetryOptions, type RetryPolicy } from './transport/retry.js';
import { cleartextAllowed, cleartextRule, sameOrigin } from './transport/origin.js';
import { pickScheme } from './transport/scheme.js';
import { TokenHolder } from './transport/token.js';

export interface RegistryClientOptions {
  /** host[:port] of the registry API. */
  registry: string;
  repository: string;
  /** Plain HTTP and unverified TLS, for the registry's own host only (not its token realm or blob storage). */
  insecure?: boolean;
  /** Other hosts plain HTTP may go to: insecure-registries entries no tag names (a token server, blob storage). */
  plainHosts?: readonly string[];
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
  /** Asks the credential helper the credentials came from again: called once when the registry rejects
   *  credentials that worked before (a helper's short-lived token expired mid-job). */
  reloadCredentials?: () => Credentials | undefined;
  /** The largest body the registry takes in one ranged PATCH, for a registry that asks for chunks
   *  (OCI-Chunk-Min-Length). Default: 4 MiB for ghcr.io; elsewhere none (the blob goes as one chunk). */
  chunkLimit?: number;
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
/** Answers to a mount that refuse it without an upload session: the blob is uploaded instead. */
const MOUNT_REFUSED = [401, 403, 404];
/** The largest chunk ghcr.io takes in one ranged PATCH. */
const GHCR_CHUNK_LIMIT = 4 * 1024 * 1024;
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
  /** Source repositories the registry refused a mount from (401, 403): not asked again. */
  private readonly mountRefused = new Map<string, number>();
  /** from@digest → the status of a refused mount. */
  private readonly mountRefusals = new Map<string, number>();

  /** The credentials in use: those given, with an identity token exchanged or renewed, or a helper's
   *  fresh answer. */
  private credentials?: Credentials;
  /** The credentials have worked (the basic check at ping, or a token). */
  private worked = false;
  /** The helper was asked again since the credentials last worked: not again until they do. */
  private reasked = false;
  /** An Azure AD identity token has been exchanged (or found not to need it). */
  private exchanged = false;

  constructor(private readonly opts: RegistryClientOptions) {
    this.credentials = opts.credentials;
    this.transport = new HttpTransport({ registry: opts.registry, insecure: opts.insecure ?? false, plainHosts: opts.plainHosts, ca: opts.ca, stallMs: opts.stallMs, warn: (m) => opts.logger.warning(m) });
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
    const { registry, insecure } = this.opts;
    const credentials = this.credentials;
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
            throw httpError({ registry, what: 'GET /v2/', status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'], headers: res.headers });
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
      if (credentials.identityToken) throw new AuthError(`registry ${registry} asks for a user name and password (basic auth), but its credentials are an identity token, which only a token server takes`, 401);
      this.auth = { kind: 'basic', header: basicHeader(credentials) };
      const check = await this.transport.request({ method: 'GET', url: new URL('/v2/', base), headers: { authorization: this.auth.header } });
      if (check.status === 401 || check.status === 403) {
        throw new AuthError(`registry ${registry} rejected the credentials of ${credentials.username} (${check.status})`, check.status);
      }
      this.worked = true;
      return;
    }
    throw new AuthError(`registry ${registry} asks for an authentication scheme we do not speak: ${header(response, 'www-authenticate') ?? 'none given'}`, 401);
  }

  /** A token for our scopes, with the credentials in use. Credentials that worked before and are now
   *  rejected (401) come from the credential helper again, once; an identity token the token server
   *  renews is used from then on. */
  private async fetchToken(challenge: Challenge): Promise<Token> {
    let token: Token;
    try {
      token = await this.scopedToken(challenge);
    } catch (error) {
      if (!(error instanceof AuthError && error.status === 401 && this.worked && this.askAgain())) throw error;
      token = await this.scopedToken(challenge);
    }
    this.worked = true;
    this.reasked = false;
    if (token.refreshToken && this.credentials?.identityToken && token.refreshToken !== this.credentials.identityToken) {
      this.opts.onSecret?.(token.refreshToken);
      this.credentials = { ...this.credentials, identityToken: token.refreshToken };
    }
    return token;
  }

  /** The credentials from the credential helper again (masked), after the registry rejected those that
   *  had worked: false when there is no helper to ask, it was asked already, or it has none now. */
  private askAgain(): boolean {
    const again = this.opts.reloadCredentials;
    if (!again || this.reasked) return false;
    this.reasked = true;
    const fresh = again();
    if (!fresh) return false;
    for (const secret of [fresh.password, fresh.identityToken]) if (secret) this.opts.onSecret?.(secret);
    this.credentials = fresh;
    this.exchanged = false;
    if (this.auth.kind === 'basic') this.auth.header = basicHeader(fresh);
    this.opts.logger.info(`registry ${this.opts.registry} rejected the credentials that had worked (401): asked their credential helper again`);
    return true;
  }

  /** A token for our scopes. A token server that refuses the pull scopes on other repositories (rather
   *  than granting less, as the spec has it) is asked again for this repository alone: reuse from there
   *  then finds nothing, and the push goes on. An Azure AD identity token is exchanged first (ACR). */
  private async scopedToken(challenge: Challenge): Promise<Token> {
    const { registry, insecure } = this.opts;
    if (!this.exchanged) {
      const refresh = await exchangeAadToken(this.transport, { challenge, credentials: this.credentials, registry, insecure: insecure ?? false, plainHosts: this.opts.plainHosts });
      this.exchanged = true;
      if (refresh) {
        this.opts.onSecret?.(refresh);
        this.credentials = { ...this.credentials!, identityToken: refresh };
        this.opts.logger.info(`registry ${registry}: exchanged the Azure AD token of the Docker config for a registry refresh token`);
      }
    }
    const credentials = this.credentials;
    const scopes = this.scopes();
    const request = (s: string[]) => fetchToken(this.transport, { challenge, scopes: s, credentials, registry, insecure: insecure ?? false, plainHosts: this.opts.plainHosts });
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
   * once; under basic auth that had worked, asks the credential helper again once. Follows redirects for
   * reads, each hop judged against the registry's origin (not the previous hop): blob storage gets no
   * credentials, and once a hop has left the registry's origin no later hop of the chain gets them, one
   * back at the registry included (the other origin chose where it sends us). A hop to plain HTTP that
   * insecure does not cover is refused (sentTo).
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
    } else if (res.status === 401 && this.auth.kind === 'basic' && this.toRegistry(req.url) && this.worked && this.askAgain()) {
      res = await this.transport.request(await withAuth(req));
      if (res.status !== 401) this.reasked = false;
    }
    let left = !this.toRegistry(req.url);
    for (let hops = 0; (req.method === 'GET' || req.method === 'HEAD') && REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
      const location = header(res, 'location');
      if (!location) break;
      req = { ...req, url: this.sentTo(location, req.url, `redirected ${req.method} ${req.url.pathname} to`) };
      left ||= !this.toRegistry(req.url);
      res = await this.transport.request(left ? req : await withAuth(req));
    }
    return res;
  }

  /**
   * A Location the registry sent (a redirect, an upload session), resolved against `from`. Refused in one
   * line when it is plain HTTP that insecure does not cover (another host, or a registry not insecure) or
   * not HTTP at all: layers and secrets never cross in cleartext where the user did not allow it.
   * `how` reads "registry <host> <how> <where>", e.g. "sent the upload of sha256:… to".
   */
  private sentTo(location: string, from: URL, how: string): URL {
    const url = new URL(location, from);
    const { registry } = this.opts;
    if (cleartextAllowed(url, registry, this.opts.insecure ?? false, this.opts.plainHosts)) return url;
    if (url.protocol !== 'http:') throw new CleartextError(`registry ${registry} ${how} ${url.protocol}//${url.host}${url.pathname}, which is not HTTP(S): refused`);
    throw new CleartextError(`registry ${registry} ${how} plain-HTTP ${url.origin}: refused, bytes and credentials go ${cleartextRule(registry)}`);
  }

  /** Cancels an upload session we will not use: best effort, once (a registry purges abandoned sessions anyway). */
  private async cancelUpload(location: string, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.send({ method: 'DELETE', url: this.sentTo(location, this.base!, 'sent an upload session to cancel to'), signal });
    } catch {
      // best effort
    }
  }

  private fail(what: string, res: HttpResponse): RegistryError {
    return httpError({ registry: this.opts.registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'], headers: res.headers });
  }

  /** A 403 without a body to a HEAD in this repository, which the credentials were checked to push to: a
   *  HEAD's answer cannot say it is a rate limit (ghcr.io's secondary one), and a refusal is unlikely
   *  there, so it is retried as a rate limit (a real refusal still fails, after the retries). */
  private rateLimitedHead(what: string, r: HttpRequest, res: HttpResponse): RegistryError | undefined {
    if (r.method !== 'HEAD' || res.status !== 403 || res.body.length > 0 || !isInRepository(r.url.pathname, this.opts.repository)) return undefined;
    const error = this.fail(what, res);
    if (error instanceof RateLimitError) return error;
    return new RateLimitError(
      `registry ${this.opts.registry} answered 403${res.statusText ? ` ${res.statusText}` : ''} to ${what} (no body to say why: taken for a rate limit and retried)`,
      403,
      undefined,
      error.retryAfterMs,
    );
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
        const r = req();
        if (!ok.includes(res.status)) throw this.rateLimitedHead(what, r, res) ?? this.fail(what, res);
        // A 403 a caller takes as an answer (a refused mount) may be a rate limit: retried as one.
        if (res.status === 403) {
          const error = this.fail(what, res);
          if (error instanceof RateLimitError) throw error;
        }
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
    const digest = sha256Digest(res.body);
    // Asked for by digest: the bytes must be those (a mirror, a proxy or a registry that converts manifests
    // may answer with others), or a merge indexes, and a referrer credits, a manifest nobody asked for.
    const asked = /^(sha256|sha512):[0-9a-f]+$/.exec(ref);
    const got = asked?.[1] === 'sha512' ? `sha512:${createHash('sha512').update(res.body).digest('hex')}` : digest;
    if (asked && got !== ref) throw new RegistryError(`registry ${this.opts.registry} answered GET manifest ${ref}${this.from(opts)} with other bytes (${got})`);
    return { mediaType: header(res, 'content-type') ?? '', digest, bytes: res.body };
  }

  /**
   * HEAD of a manifest: whether `ref` exists and the digest the registry gives for it
   * (Docker-Content-Digest; undefined when it gives none). Never counted as a pull by Docker Hub.
   */
  async headManifest(ref: string, opts: ReadOptions = {}): Promise<{ exists: boolean; digest?: string }> {
    const res = await this.call(
      `HEAD manifest ${ref}${this.from(opts)}`,
      () => ({ method: 'HEAD', url: this.url(`manifests/${ref}`, opts.repository), headers: { accept: MANIFEST_ACCEPT } }),
      [200, 404],
      opts.signal,
    );
    if (res.status === 404) return { exists: false };
    const digest = header(res, 'docker-content-digest');
    return { exists: true, ...(digest && /^sha256:[0-9a-f]{64}$/.test(digest) ? { digest } : {}) };
  }

  /** Whether the repository holds the manifest `ref` (a HEAD: nothing downloaded). */
  async hasManifest(ref: string, opts: ReadOptions = {}): Promise<boolean> {
    return (await this.headManifest(ref, opts)).exists;
  }

  /**
   * Puts `manifest` under `tag`. The tag is read first (one HEAD, unless the caller knows what it holds:
   * `held`, null for absent): a tag that already names this digest is left as it is, nothing PUT, so a
   * registry with immutable tags (ECR, Harbor) takes a push that changes nothing. A PUT refused for
   * immutability fails in one line naming the setting and the tag. Returns the digest the tag names now,
   * as the registry filed it.
   */
  /**
   * The digest a tag names, for putTag to skip a PUT that would change nothing. Only a help: a 401/403 (a
   * push-only policy without manifest reads, e.g. ECR's minimal one) or any other failure means "unknown",
   * and the PUT is sent, as it would be without this HEAD.
   */
  private async tagDigest(tag: string, signal?: AbortSignal): Promise<string | null | undefined> {
    try {
      const res = await this.call(
        `HEAD manifest ${tag}`,
        () => ({ method: 'HEAD', url: this.url(`manifests/${tag}`), headers: { accept: MANIFEST_ACCEPT } }),
        [200, 404, 401, 403],
        signal,
      );
      if (res.status === 404) return null;
      if (res.status !== 200) return undefined;
      const digest = header(res, 'docker-content-digest');
      return digest && /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : undefined;
    } catch (error) {
      if (signal?.aborted) throw error;
      return undefined;
    }
  }

  async putTag(tag: string, manifest: { bytes: Buffer; mediaType: string; digest: string }, opts: CallOptions & { held?: string | null } = {}): Promise<string> {
    const held = opts.held !== undefined ? opts.held : await this.tagDigest(tag, opts.signal);
    if (held === manifest.digest) return held;
    try {
      return await this.putManifest(tag, manifest.bytes, manifest.mediaType, opts);
    } catch (error) {
      if (error instanceof RegistryError && isImmutableTag(error)) {
        // A PUT whose answer was lost and was sent again finds the tag moved already (by itself): done.
        const now = await this.tagDigest(tag, opts.signal).catch(() => undefined);
        if (now === manifest.digest) return now;
        throw new RegistryError(
          `registry ${this.opts.registry} will not move tag ${tag} of ${this.opts.repository} to ${manifest.digest}: the repository has tag immutability on` +
            `${held ? `, and ${tag} holds ${held}` : ''} (push under a tag not used yet, or turn tag immutability off; ${error.status}${error.code ? ` ${error.code}` : ''})`,
          error.status,
          error.code,
        );
      }
      throw error;
    }
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
   * session instead (202: it does not mount, or cannot see the blob there), which is cancelled, or
   * refused the mount (401, 403, 404: Harbor and others when the credentials may not read `from`, or
   * the blob is not visible there): the caller uploads the blob the usual way. A refusal of the source
   * repository (401, 403) is said in one info line, and no further mount from there is asked for.
   */
  async mountBlob(digest: string, from: string, opts: CallOptions = {}): Promise<boolean> {
    const refused = this.mountRefused.get(from);
    if (refused !== undefined) {
      this.mountRefusals.set(`${from}@${digest}`, refused);
      return false;
    }
    const res = await this.call(
      `POST blob mount of ${digest} from ${from}`,
      () => {
        const url = this.url('blobs/uploads/');
        url.searchParams.set('mount', digest);
        url.searchParams.set('from', from);
        return { method: 'POST', url, headers: { 'content-length': '0' } };
      },
      [201, 202, ...MOUNT_REFUSED],
      opts.signal,
    );
    if (res.status === 201) return true;
    if (MOUNT_REFUSED.includes(res.status)) {
      this.mountRefusals.set(`${from}@${digest}`, res.status);
      // 404 may be about this blob alone (the caller says it uploads it); 401 and 403 are about the
      // source repository as a whole: said once, and no further mount from there is asked for.
      if (res.status !== 404) {
        this.mountRefused.set(from, res.status);
        const { text } = describeBody(res.body);
        this.opts.logger.info(`registry ${this.opts.registry} refused to mount blobs from ${from} into ${this.opts.repository} (${res.status}${text ? `: ${text}` : ''}): they are uploaded instead`);
      }
      return false;
    }
    const location = header(res, 'location');
    if (location) await this.cancelUpload(location, opts.signal);
    return false;
  }

  /**
   * Whether the repository takes pushes, before anything is built: opens an upload session and cancels
   * it (one POST, one DELETE). A registry that creates no repository on push (ECR), a missing project or
   * namespace (Harbor answers 401), or a name the registry refuses (too many path components) fails
   * here, in one line saying what to do.
   */
  async checkPush(opts: CallOptions = {}): Promise<void> {
    const { registry, repository } = this.opts;
    const res = await this.call(
      `POST blob upload (checking that ${repository} takes pushes)`,
      () => ({ method: 'POST', url: this.url('blobs/uploads/'), headers: { 'content-length': '0' } }),
      [201, 202, 400, 401, 403, 404],
      opts.signal,
    );
    if (res.status === 201 || res.status === 202) {
      const location = header(res, 'location');
      if (location) await this.cancelUpload(location, opts.signal);
      return;
    }
    const { code, text } = describeBody(res.body);
    const said = `${res.status}${text ? `: ${text}` : ''}`;
    if (res.status === 404) {
      throw new RegistryError(
        isEcr(registry) || /does not exist in the registry with id/.test(text)
          ? `registry ${registry} has no repository ${repository} (ECR creates none on push: create it first, e.g. aws ecr create-repository --repository-name ${repository}; ${said})`
          : `registry ${registry} has no repository ${repository} (${said}): this registry creates none on push, so create it first, or check the image and tags inputs`,
        res.status,
        code,
      );
    }
    if (res.status === 400) {
      throw new RegistryError(
        `registry ${registry} refuses the repository name ${repository} (${said}): check the image and tags inputs; some registries take only so many path components (Docker Hub: namespace/name)`,
        res.status,
        code,
      );
    }
    // ghcr.io's own hint (package write access) says it; elsewhere the project or namespace may be missing.
    if (registry === 'ghcr.io') throw httpError({ registry, what: `a push to ${repository}`, status: res.status, statusText: res.statusText, body: res.body });
    const why = this.credentials
      ? `the credentials were accepted, so its project or namespace may not exist (Harbor: create the project first), or they may not push there`
      : `no credentials were found for it (${this.opts.credentialsHint ?? 'set the username and password inputs'}), and its project or namespace must exist`;
    throw new AuthError(`registry ${registry} refuses pushes to ${repository} (${said}): ${why}`, res.status, code);
  }

  /** The status a mount of `digest` from `from` was refused with (401, 403, 404), if it was. */
  mountRefusal(digest: string, from: string): number | undefined {
    return this.mountRefusals.get(`${from}@${digest}`);
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
   * registry asks for chunks (OCI-Chunk-Min-Length on the POST's answer): then the body goes in ranged
   * PATCHes of the largest size the registry takes in one chunk (chunkLimit; ghcr.io's 4 MiB), never
   * under its minimum (the last excepted), or as one ranged chunk when no limit is known. The session's
   * Location may be on another host (blob storage): the PATCH and PUT then carry no registry credentials;
   * on plain HTTP only as insecure allows it (sentTo), or the upload fails before a byte is sent.
   *
   * Each request retries on its own: the POST; the PATCH on the same session, with the body opened
   * afresh (a chunk: the same bytes), when the registry answered 408, 429 or 5xx; the PUT. A new session
   * is opened only when the one we had is gone: the registry answers 404 / BLOB_UPLOAD_UNKNOWN (or says
   * the session no longer matches what we sent: BLOB_UPLOAD_INVALID, DIGEST_INVALID, 416), or the
   * connection dropped or stalled mid-PATCH, leaving the session in a state we cannot know. Before a new
   * session, HEAD: the blob may have landed anyway (the PUT went through and only its answer was lost),
   * and then nothing is sent again.
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

  /** POST: a new upload session (with the registry's minimum chunk size, when it asks for chunks), or
   *  undefined when the registry says the blob is already complete. */
  private async openUpload(digest: string, signal: AbortSignal | undefined): Promise<Session | undefined> {
    const start = await this.call(`POST blob upload for ${digest}`, () => ({ method: 'POST', url: this.url('blobs/uploads/'), headers: { 'content-length': '0' } }), [201, 202], signal);
    if (start.status === 201) return undefined;
    const min = header(start, 'oci-chunk-min-length');
    if (min === undefined) return { url: this.location(start, digest) };
    const n = /^\s*\d+\s*$/.test(min) ? Number(min) : 0;
    return { url: this.location(start, digest), minChunk: n > 0 ? n : 1 };
  }

  /** Bytes per ranged PATCH for a session that asks for chunks: the largest the registry takes in one, but
   *  never under its minimum; undefined (one chunk, streamed) when no limit is known. */
  private chunkSize(session: Session): number | undefined {
    const limit = this.opts.chunkLimit ?? (this.opts.registry === 'ghcr.io' ? GHCR_CHUNK_LIMIT : undefined);
    return limit === undefined ? undefined : Math.max(limit, session.minChunk ?? 1);
  }

  /** PATCH(es) then PUT on one session: undefined when the blob is in, the error when the session is lost. */
  private async sendThrough(session: Session, blob: { digest: string; size: number }, open: () => Readable, signal: AbortSignal | undefined): Promise<RegistryError | undefined> {
    const chunk = session.minChunk !== undefined ? this.chunkSize(session) : undefined;
    let next: URL;
    try {
      if (chunk !== undefined && chunk < blob.size) next = await this.sendChunks(session.url, blob, open, chunk, signal);
      else {
        const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) };
        if (session.minChunk !== undefined) headers['content-range'] = `0-${Math.max(0, blob.size - 1)}`;
        // 202 per the spec; ECR answers 201, some registries 204 (go-containerregistry accepts all three).
        const patch = await this.call(`PATCH blob ${blob.digest}`, () => ({ method: 'PATCH', url: session.url, headers, body: open }), [201, 202, 204], signal, retryableStatus);
        next = header(patch, 'location') ? this.location(patch, blob.digest) : session.url;
      }
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

  /** The body in ranged PATCHes of `chunk` bytes (the last shorter), each held in memory while it goes (and
   *  sent again as it is when the registry refuses it whole); each to the Location the last one gave.
   *  Returns where the session is after the last. */
  private async sendChunks(url: URL, blob: { digest: string; size: number }, open: () => Readable, chunk: number, signal: AbortSignal | undefined): Promise<URL> {
    const body = open();
    let at = 0;
    try {
      for await (const piece of pieces(body, chunk)) {
        const range = `${at}-${at + piece.length - 1}`;
        const patch = await this.call(
          `PATCH blob ${blob.digest} (bytes ${range})`,
          () => ({ method: 'PATCH', url, headers: { 'content-type': 'application/octet-stream', 'content-length': String(piece.length), 'content-range': range }, body: piece }),
          [201, 202, 204],
          signal,
          retryableStatus,
        );
        if (header(patch, 'location')) url = this.location(patch, blob.digest);
        at += piece.length;
      }
    } finally {
      body.destroy();
    }
    if (at !== blob.size) throw new RegistryError(`blob ${blob.digest} is ${blob.size} bytes, but ${at} were read to upload it`);
    return url;
  }

  private location(res: HttpResponse, digest: string): URL {
    const loc = header(res, 'location');
    if (!loc) throw new RegistryError(`registry ${this.opts.registry} opened an upload for ${digest} without a Location`);
    return this.sentTo(loc, this.base!, `sent the upload of ${digest} to`);
  }

  close(): void {
    this.transport.close();
  }
}

/** Whether an API path is this repository's own (not a repository nested under it, e.g. org/app/base). */
function isInRepository(pathname: string, repository: string): boolean {
  const rest = pathname.startsWith(`/v2/${repository}/`) ? pathname.slice(`/v2/${repository}/`.length) : undefined;
  return rest !== undefined && /^(blobs|manifests)\/[^/]+$/.test(rest);
}

/** A PATCH is sent again on its session only for an answer (the registry refused it whole), never after its
 *  connection dropped mid-body. */
function retryableStatus(error: unknown): boolean {
  return error instanceof RegistryError && !(error instanceof NetworkError) && isRetryable(error);
}

/** The registry no longer has the session, or it no longer matches what we sent. */
function sessionLost(error: unknown): boolean {
  if (!(error instanceof RegistryError) || error instanceof AuthError) return false;
  if (error.status === 404 || error.status === 416) return true;
  return error.code === 'BLOB_UPLOAD_UNKNOWN' || error.code === 'BLOB_UPLOAD_INVALID' || error.code === 'DIGEST_INVALID';
}

/** Amazon ECR's private registries (<account>.dkr.ecr.<region>.amazonaws.com[.cn]) and ECR Public (also
 *  known by its answer: "The repository with name '…' does not exist in the registry with id '…'"). */
function isEcr(registry: string): boolean {
  return /\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?(?::\d+)?$/i.test(registry) || /^public\.ecr\.aws$/i.test(registry);
}

/** A manifest PUT refused because the tag may not move (ECR's TAG_INVALID "…cannot be overwritten because
 *  the repository is immutable", Harbor's "…configured as immutable"). */
function isImmutableTag(error: RegistryError): boolean {
  if (error.status === undefined || error.status < 400 || error.status >= 500) return false;
  return /immutab|cannot be overwritten/i.test(error.message) || (error.code === 'TAG_INVALID' && /exist/i.test(error.message));
}

/** An upload session: where it is, and the minimum chunk size when the registry asks for chunks. */
interface Session {
  url: URL;
  minChunk?: number;
}

/** The stream's bytes as Buffers of exactly `size` bytes (the last one shorter). */
async function* pieces(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let n = 0;
  for await (const data of stream) {
    let b = Buffer.isBuffer(data) ? data : Buffer.from(data as string);
    while (n + b.length >= size) {
      const take = size - n;
      held.push(b.subarray(0, take));
      yield Buffer.concat(held);
      held = [];
      n = 0;
      b = b.subarray(take);
    }
    if (b.length > 0) {
      held.push(b);
      n += b.length;
    }
  }
  if (n > 0) yield Buffer.concat(held);
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
