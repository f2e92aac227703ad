// The token flow: the registry's Bearer challenge names a realm; we ask it for a token for our scopes,
// sending the credentials (if any) with basic auth. The answer says how long the token lives
// (`expires_in`; 60 s when it does not say, per the token spec): token.ts keeps it that long.
// The credentials go to the realm's origin only (not to where it redirects), and never over plain
// HTTP unless the client is insecure: a plain-HTTP realm, or a redirect to one, is refused.
import type { Credentials } from '../types.js';
import { MAX_HOPS, REDIRECTS } from '../constants.js';
import { basicHeader } from './basic.js';
import type { Challenge } from './challenge.js';
import { AuthError, httpError } from './error.js';
import type { HttpResponse, HttpTransport } from './http.js';
import { isPlainHttp, sameOrigin } from './origin.js';

export interface TokenRequest {
  challenge: Challenge;
  /** e.g. repository:owner/app:pull,push and repository:owner/base:pull, each sent as its own scope parameter. */
  scopes: string[];
  credentials: Credentials | undefined;
  registry: string;
  insecure: boolean;
  signal?: AbortSignal;
}

export interface Token {
  value: string;
  /** Seconds it lives, from when it was received. */
  expiresInS: number;
  /** Date.now() when it was received. */
  receivedAt: number;
}

/** The token spec's lifetime of a token whose answer gives no expires_in. */
export const DEFAULT_TOKEN_SECONDS = 60;

export async function fetchToken(transport: HttpTransport, t: TokenRequest): Promise<Token> {
  const { challenge, credentials, registry } = t;
  const realm = challenge.params.realm;
  if (!realm) throw new AuthError(`registry ${registry} asked for a bearer token but named no realm to get it from`);
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new AuthError(`registry ${registry} named a token realm that is not a URL: ${realm}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AuthError(`registry ${registry} named a token realm that is not HTTP(S): ${realm}`);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  for (const scope of t.scopes) url.searchParams.append('scope', scope);
  const realmUrl = url;
  const refusePlain = (hop: URL, how: string): void => {
    if (isPlainHttp(hop) && !t.insecure) {
      throw new AuthError(`registry ${registry} ${how} ${hop.origin}${hop.pathname} over plain HTTP: set insecure: true to get a token there`);
    }
  };
  refusePlain(url, 'names the token realm');
  const auth: Record<string, string> = credentials ? { authorization: basicHeader(credentials) } : {};
  let res: HttpResponse = await transport.request({ method: 'GET', url, headers: auth, signal: t.signal });
  for (let hops = 0; REDIRECTS.includes(res.status) && hops < MAX_HOPS; hops++) {
    const location = res.headers.location;
    if (!location) break;
    url = new URL(location, url);
    refusePlain(url, 'sent the token request on to');
    res = await transport.request({ method: 'GET', url, headers: sameOrigin(url, realmUrl) ? auth : {}, signal: t.signal });
  }
  if (res.status === 401 || res.status === 403) {
    const who = credentials ? `the credentials of ${credentials.username}` : 'anonymous access';
    const err = httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body });
    throw new AuthError(`registry ${registry} rejected ${who}: ${err.message}`, res.status, err.code);
  }
  if (res.status !== 200) {
    throw httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
  }
  let body: { token?: string; access_token?: string; expires_in?: unknown };
  try {
    body = JSON.parse(res.body.toString('utf8')) as typeof body;
  } catch {
    throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered with something that is not JSON`);
  }
  const token = body.token ?? body.access_token;
  if (!token) throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered without a token`);
  const expiresIn = typeof body.expires_in === 'number' && Number.isFinite(body.expires_in) && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS;
  return { value: token, expiresInS: expiresIn, receivedAt: Date.now() };
}
