// Origins (scheme, host, port) decide where credentials may go: the registry's Authorization only to the
// registry's own origin, never to the hosts it sends us to (upload sessions and blobs on S3 or a CDN).
// Another port or another scheme of the same host is another origin.

/** "https://host:port" with the default port left out, as URL#origin normalizes it. */
export function originOf(url: URL | string): string {
  return new URL(url).origin;
}

export function sameOrigin(a: URL | string, b: URL | string): boolean {
  return originOf(a) === originOf(b);
}

/** Whether a request to `url` would carry secrets over plain HTTP. */
export function isPlainHttp(url: URL): boolean {
  return url.protocol === 'http:';
}
