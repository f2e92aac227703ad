// The token flow: the registry's Bearer challenge names a realm; we ask it for a token for our scopes,
// sending the credentials (if any) with basic auth, or an identity token (an OAuth2 refresh token) in a
// POSTed refresh_token grant; an Azure AD token for ACR is first exchanged for an ACR refresh token. The answer says how long the token lives
// (`expires_in`; 60 s when it does not say, per the token spec): token.ts keeps it that long.
// The credentials go to the realm's origin only: not to where it redirects, nor back to the realm once a
// redirect has left its origin (for the rest of that chain). Never over plain HTTP unless the client is
// insecure and the realm is on the registry's own host (any port): a plain-HTTP realm, a redirect to one
// or an Azure AD exchange at one is refused otherwise.
import type { Credentials } from '../types.js';
import { MAX_HOPS, REDIRECTS } from '../constants.js';
import { basicHeader } from './basic.js';
import type { Challenge } from './challenge.js';
import { AuthError, httpError } from './error.js';
import type { HttpResponse, HttpTransport } from './http.js';
import { cleartextAllowed, cleartextRule, hostnameOf, sameOrigin } from './origin.js';

export interface TokenRequest {
  challenge: Challenge;
  /** e.g. repository:owner/app:pull,push and repository:owner/base:pull, each sent as its own scope parameter. */
  scopes: string[];
  credentials: Credentials | undefined;
  registry: string;
  insecure: boolean;
  /** Other hosts plain HTTP may go to (insecure-registries). */
  plainHosts?: readonly string[];
  signal?: AbortSignal;
}

export interface Token {
  value: string;
  /** Seconds it lives, from when it was received. */
  expiresInS: number;
  /** Date.now() when it was received. */
  receivedAt: number;
  /** A new refresh token the token server handed out with it (refresh_token grant), to use next time. */
  refreshToken?: string;
}

/** The token spec's lifetime of a token whose answer gives no expires_in. */
export const DEFAULT_TOKEN_SECONDS = 60;

/** The realm of a challenge as a URL, checked: HTTP(S), and plain HTTP only as refusePlain allows. */
function realmOf(t: Pick<TokenRequest, 'challenge' | 'registry' | 'insecure' | 'plainHosts'>): URL {
  const { challenge, registry } = t;
  const realm = challenge.params.realm;
  if (!realm) throw new AuthError(`registry ${registry} asked for a bearer token but named no realm to get it from`);
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new AuthError(`registry ${registry} named a token realm that is not a URL: ${realm}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AuthError(`registry ${registry} named a token realm that is not HTTP(S): ${realm}`);
  refusePlain(url, t, 'names the token realm');
  return url;
}

/** A plain-HTTP hop (the realm, where it redirects, the exchange) is refused unless the client is insecure
 *  and the hop is on the registry's own host: the credentials and the token would cross in cleartext. */
function refusePlain(hop: URL, t: Pick<TokenRequest, 'registry' | 'insecure' | 'plainHosts'>, how: string): void {
  if (cleartextAllowed(hop, t.registry, t.insecure, t.plainHosts)) return;
  if (hop.protocol !== 'http:') throw new AuthError(`registry ${t.registry} ${how} ${hop.protocol}//${hop.host}${hop.pathname}, which is not HTTP(S)`);
  const where = `registry ${t.registry} ${how} ${hop.origin}${hop.pathname} over plain HTTP`;
  if (hop.hostname === hostnameOf(t.registry)) throw new AuthError(`${where}: set insecure: true to get a token there`);
  throw new AuthError(`${where}: refused, credentials go ${cleartextRule(t.registry)}`);
}

const FORM = 'application/x-www-form-urlencoded';

export async function fetchToken(transport: HttpTransport, t: TokenRequest): Promise<Token> {
  const { challenge, credentials, registry } = t;
  let url = realmOf(t);
  let res: HttpResponse;
  if (credentials?.identityToken) {
    // The OAuth2 form of the token spec: POST, the identity token as a refresh_token grant, every scope in
    // one space-separated parameter. No redirect is followed: the refresh token goes to the realm only.
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.identityToken, client_id: CLIENT_ID });
    if (challenge.params.service) form.set('service', challenge.params.service);
    if (t.scopes.length > 0) form.set('scope', t.scopes.join(' '));
    res = await transport.request({ method: 'POST', url, headers: { 'content-type': FORM }, body: Buffer.from(form.toString()), signal: t.signal });
  } else {
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const scope of t.scopes) url.searchParams.append('scope', scope);
    const realmUrl = url;
    const auth: Record<string, string> = credentials ? { authorization: basicHeader(credentials) } : {};
    res = await transport.request({ method: 'GET', url, headers: auth, signal: t.signal });
    // Once a hop has left the realm's origin, no hop of the chain gets the credentials, back there included:
    // the other origin chose where it sends us.
    let left = false;
    for (let hops = 0; REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
      const location = res.headers.location;
      if (!location) break;
      url = new URL(location, url);
      refusePlain(url, t, 'sent the token request on to');
      left ||= !sameOrigin(url, realmUrl);
      res = await transport.request({ method: 'GET', url, headers: left ? {} : auth, signal: t.signal });
    }
  }
  const failure = () => httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'], headers: res.headers });
  if (res.status === 401 || res.status === 403) {
    const err = failure();
    if (!(err instanceof AuthError)) throw err; // a rate limit answered with 403: retried
    const who = credentials ? `the credentials of ${credentials.username}` : 'anonymous access';
    throw new AuthError(`registry ${registry} rejected ${who}: ${err.message}`, res.status, err.code);
  }
  if (res.status !== 200) throw failure();
  let body: { token?: string; access_token?: string; expires_in?: unknown; refresh_token?: unknown };
  try {
    body = JSON.parse(res.body.toString('utf8')) as typeof body;
  } catch {
    throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered with something that is not JSON`);
  }
  const token = body.token ?? body.access_token;
  if (!token) throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered without a token`);
  const expiresIn = typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
  return { value: token, expiresInS: expiresIn, receivedAt: Date.now(), ...(typeof body.refresh_token === 'string' && body.refresh_token ? { refreshToken: body.refresh_token } : {}) };
}

/** The client_id the OAuth2 token requests name, as the token spec asks. */
const CLIENT_ID = 'nix-image-action';

/** The claims of a JWT, unverified (to tell what kind of token it is), or undefined. */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The user name ACR gives with its refresh tokens (`az acr login`, `--expose-token`). */
export const ACR_TOKEN_USER = '00000000-0000-0000-0000-000000000000';

/**
 * An Azure AD (Entra ID) access token for ACR's all-zero user, exchanged for an ACR refresh token at the
 * token server's POST /oauth2/exchange (grant_type=access_token, with the service and the token's
 * tenant), as the Azure CLI does. Undefined when the identity token is not an Azure AD token (an ACR refresh
 * token already, as `az acr login` leaves in the Docker config): it is used as it is.
 */
export async function exchangeAadToken(transport: HttpTransport, t: Omit<TokenRequest, 'scopes'>): Promise<string | undefined> {
  const { credentials, registry } = t;
  if (!credentials?.identityToken || credentials.username !== ACR_TOKEN_USER) return undefined;
  const claims = jwtClaims(credentials.identityToken);
  if (!claims || typeof claims.tid !== 'string' || claims.iss === 'Azure Container Registry') return undefined;
  const url = new URL('/oauth2/exchange', realmOf(t));
  const form = new URLSearchParams({ grant_type: 'access_token', access_token: credentials.identityToken, tenant: claims.tid });
  if (t.challenge.params.service) form.set('service', t.challenge.params.service);
  const res = await transport.request({ method: 'POST', url, headers: { 'content-type': FORM }, body: Buffer.from(form.toString()), signal: t.signal });
  const what = `the exchange of an Azure AD token for a refresh token (${url.host}${url.pathname})`;
  if (res.status !== 200) {
    const err = httpError({ registry, what, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'], headers: res.headers });
    if (err instanceof AuthError) throw new AuthError(`registry ${registry} rejected the Azure AD token of the Docker config: ${err.message}`, res.status, err.code);
    throw err;
  }
  let body: { refresh_token?: unknown };
  try {
    body = JSON.parse(res.body.toString('utf8')) as typeof body;
  } catch {
    throw new AuthError(`registry ${registry}: ${what} answered with something that is not JSON`);
  }
  if (typeof body.refresh_token !== 'string' || body.refresh_token === '') throw new AuthError(`registry ${registry}: ${what} answered without a refresh_token`);
  return body.refresh_token;
}
