// Origins (scheme, host, port) decide where credentials may go: the registry's Authorization only to the
// registry's own origin, never to the hosts it sends us to (upload sessions and blobs on S3 or a CDN).
// Another port or another scheme of the same host is another origin. Plain HTTP goes only to the
// registry's own host name, and only for an insecure registry (cleartextAllowed).

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

/** The host name of a registry given as host[:port], as URL#hostname spells it (lower case, IPv6 in brackets). */
export function hostnameOf(registry: string): string {
  return new URL(`https://${registry}/`).hostname;
}

/**
 * Whether a request may go to `url`: HTTPS always; plain HTTP only when the client is insecure and `url`
 * is on the registry's own host (any port: a token server or storage of an insecure registry on another
 * port of it). Anything else (plain HTTP elsewhere, another scheme) is refused: secrets and layers never
 * cross the network in cleartext to a host insecure was not given for.
 */
export function cleartextAllowed(url: URL, registry: string, insecure: boolean, plainHosts: readonly string[] = []): boolean {
  if (url.protocol === 'https:') return true;
  if (url.protocol !== 'http:') return false;
  // Hosts insecure-registries names beside the registries (its token server, its blob storage): by name.
  if (plainHosts.some((h) => h === url.host || h === url.hostname)) return true;
  return insecure && url.hostname === hostnameOf(registry);
}

/** The rule cleartextAllowed applies, for messages: "<what> go over plain HTTP only to …". */
export function cleartextRule(registry: string): string {
  return `over plain HTTP only to the registry's own host (${hostnameOf(registry)}), with insecure: true, or to a host insecure-registries names`;
}
