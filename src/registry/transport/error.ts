// Registry errors as one clear line: HTTP status, the registry's error code and message, and what was asked for.

export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    /** Milliseconds the registry asked us to wait (Retry-After), when it said. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The connection failed before an HTTP answer arrived (refused, reset, timed out). Retryable. */
export class NetworkError extends RegistryError {
  override name = 'NetworkError';
}

/** No bytes moved either way for the stall timeout: treated as a dropped connection. Retryable. */
export class StallError extends NetworkError {
  override name = 'StallError';
}

/** The registry refused the credentials, or wants some and none were given. Not retryable. */
export class AuthError extends RegistryError {
  override name = 'AuthError';
}

interface ErrorBody {
  errors?: { code?: string; message?: string; detail?: unknown }[];
}

/** "CODE: message; CODE2: message2" from an OCI error body, or a short excerpt of whatever it is. */
export function describeBody(body: Buffer): { code?: string; text: string } {
  const raw = body.toString('utf8').trim();
  if (raw === '') return { text: '' };
  try {
    const parsed = JSON.parse(raw) as ErrorBody;
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      const text = parsed.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
      return { code: parsed.errors[0]?.code, text };
    }
  } catch {
    // not JSON: fall through
  }
  const line = raw.replace(/\s+/g, ' ');
  return { text: line.length > 200 ? `${line.slice(0, 200)}…` : line };
}

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** What to check when the credentials were accepted but may not do this. */
function deniedHint(registry: string): string {
  if (registry === 'ghcr.io') {
    return "the token may not write this package: give the job 'permissions: packages: write', and if the package was first pushed from elsewhere, add this repository under the package's Manage Actions access";
  }
  return 'the credentials were accepted but may not push to this repository';
}

export function httpError(opts: {
  registry: string;
  what: string;
  status: number;
  statusText?: string;
  body: Buffer;
  retryAfter?: string | string[];
}): RegistryError {
  const { code, text } = describeBody(opts.body);
  const message =
    `registry ${opts.registry} answered ${opts.status}${opts.statusText ? ` ${opts.statusText}` : ''} to ${opts.what}` +
    (text ? `: ${text}` : '') +
    (opts.status === 403 ? ` (${deniedHint(opts.registry)})` : '');
  const Kind = opts.status === 401 || opts.status === 403 ? AuthError : RegistryError;
  return new Kind(message, opts.status, code, parseRetryAfter(opts.retryAfter));
}
