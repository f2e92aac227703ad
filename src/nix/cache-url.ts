// The `binary-cache` input: a Nix store URL the action reads before the build and writes after it.
// s3://bucket?region=…&endpoint=…&scheme=…, https://host/path, http://host/path, file:///dir. Syntax only,
// no I/O: inputs/index.ts checks it in the first second. Credentials never go in the URL (the runner's
// netrc file for HTTP, the runner's AWS_* variables for S3), so the URL is not a secret and is printed.

export type CacheKind = 'http' | 's3' | 'file';

export interface CacheUrl {
  /** The URL as given. */
  url: string;
  kind: CacheKind;
  /** http(s): the base URL without a trailing slash; file: the directory; s3: the bucket. */
  base: string;
  /** s3 only: the URL's parameters (region, endpoint, scheme, …). */
  params: Record<string, string>;
}

/** The parameters Nix's S3 binary cache store takes that make sense here. `secret-key` (binary-cache-key
 *  signs), `trusted` (never: a path needs a signature) and `priority` (the action sets it) are refused. */
const S3_PARAMS = new Set([
  'region',
  'endpoint',
  'scheme',
  'profile',
  'compression',
  'parallel-compression',
  'narinfo-compression',
  'ls-compression',
  'log-compression',
  'multipart-upload',
  'buffer-size',
  'write-nar-listing',
  'index-debug-info',
]);

const REFUSED: Record<string, string> = {
  'secret-key': 'the signing key goes in binary-cache-key, never in the URL',
  trusted: 'a path from it is taken only with a signature by binary-cache-public-key (or binary-cache-key)',
  priority: 'the action sets it: after every upstream cache and after the GitHub store cache',
};

/** Why `value` is not a binary cache URL this action takes, or undefined. Never quotes the value's userinfo. */
export function cacheUrlProblem(value: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (!scheme || !['s3', 'http', 'https', 'file'].includes(scheme)) return 'expected an s3://, https://, http:// or file:// Nix store URL';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.username || url.password) return 'must not hold credentials (user:password@): HTTP credentials come from the runner\'s netrc file, S3 ones from its AWS_* variables';
  if (url.hash) return 'must not have a #fragment';
  if (scheme === 'file') {
    if (url.host !== '') return 'expected file:///absolute/directory';
    if (url.search) return 'a file:// cache takes no ?parameters';
    if (decodeURIComponent(url.pathname) === '/' || /\s/.test(decodeURIComponent(url.pathname))) return 'expected file:///absolute/directory (not / nor a path with whitespace)';
    return undefined;
  }
  if (scheme === 's3') {
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(url.hostname) || url.port) return 'expected s3://<bucket> with a valid bucket name';
    if (url.pathname !== '' && url.pathname !== '/') return 'expected s3://<bucket>?… without a path (Nix writes to the bucket\'s top level)';
    for (const [name] of url.searchParams) {
      if (REFUSED[name]) return `takes no ${name} parameter: ${REFUSED[name]}`;
      if (!S3_PARAMS.has(name)) return `has the parameter ${name}, which Nix's S3 store does not take here (expected ${[...S3_PARAMS].join(', ')})`;
    }
    const s3scheme = url.searchParams.get('scheme');
    if (s3scheme && s3scheme !== 'https' && s3scheme !== 'http') return 'scheme= must be https or http';
    const endpoint = url.searchParams.get('endpoint');
    if (endpoint !== null && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(endpoint)) return 'endpoint= must be a host[:port] (e.g. <account>.r2.cloudflarestorage.com), without scheme or path';
    return undefined;
  }
  if (!url.hostname) return `expected ${scheme}://host/path`;
  if (url.search) return `an ${scheme}:// cache takes no ?parameters`;
  return undefined;
}

/** The URL parsed; call cacheUrlProblem first. */
export function parseCacheUrl(value: string): CacheUrl {
  const url = new URL(value);
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme === 'file') return { url: value, kind: 'file', base: decodeURIComponent(url.pathname).replace(/\/+$/, ''), params: {} };
  if (scheme === 's3') return { url: value, kind: 's3', base: url.hostname, params: Object.fromEntries(url.searchParams) };
  return { url: value, kind: 'http', base: `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`, params: {} };
}

/** Whether a path of the cache names a file a binary cache holds (what the front forwards). */
export function isCacheFile(path: string): boolean {
  return /^\/(nix-cache-info|[0-9a-z]{32}\.narinfo|[0-9a-z]{32}\.ls|nar\/[0-9a-z]+\.nar(\.[a-z0-9]+)?|log\/[A-Za-z0-9._+-]+|realisations\/[A-Za-z0-9._+!:-]+\.doi|debuginfo\/[A-Za-z0-9._+-]+)$/.test(path) && !path.includes('..');
}
