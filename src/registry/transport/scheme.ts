// HTTPS or HTTP: HTTPS always; plain HTTP only for registries marked insecure, after HTTPS fails the
// way a plain-HTTP server makes it fail (as Docker treats its insecure registries), or when the runner's
// proxy will not tunnel to it (many tunnel only to port 443).
import { TlsError, TunnelError, type HttpResponse } from './http.js';

export async function pickScheme(
  host: string,
  insecure: boolean,
  probe: (base: URL) => Promise<HttpResponse>,
): Promise<{ base: URL; response: HttpResponse }> {
  const https = new URL(`https://${host}/`);
  try {
    return { base: https, response: await probe(https) };
  } catch (error) {
    if (!insecure || !(error instanceof TlsError || error instanceof TunnelError)) throw error;
  }
  const http = new URL(`http://${host}/`);
  return { base: http, response: await probe(http) };
}
