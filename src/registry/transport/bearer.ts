// The token flow: the registry's Bearer challenge names a realm; we ask it for a token for our scope,
// sending the credentials (if any) with basic auth, and use the token until the registry refuses it.
import type { Credentials } from '../types.js';
import { basicHeader } from './basic.js';
import type { Challenge } from './challenge.js';
import { AuthError, httpError } from './error.js';
import type { HttpTransport } from './http.js';

export async function fetchToken(
  transport: HttpTransport,
  challenge: Challenge,
  scope: string,
  credentials: Credentials | undefined,
  registry: string,
): Promise<string> {
  const realm = challenge.params.realm;
  if (!realm) throw new AuthError(`registry ${registry} asked for a bearer token but named no realm to get it from`);
  const url = new URL(realm);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  url.searchParams.set('scope', scope);
  const headers: Record<string, string> = {};
  if (credentials) headers.authorization = basicHeader(credentials);
  const res = await transport.request({ method: 'GET', url, headers });
  if (res.status === 401 || res.status === 403) {
    const who = credentials ? `the credentials of ${credentials.username}` : 'anonymous access';
    const err = httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body });
    throw new AuthError(`registry ${registry} rejected ${who}: ${err.message}`, res.status, err.code);
  }
  if (res.status !== 200) {
    throw httpError({ registry, what: `a token request (${url.host})`, status: res.status, statusText: res.statusText, body: res.body, retryAfter: res.headers['retry-after'] });
  }
  const body = JSON.parse(res.body.toString('utf8')) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new AuthError(`registry ${registry}: the token endpoint ${url.host} answered without a token`);
  return token;
}
