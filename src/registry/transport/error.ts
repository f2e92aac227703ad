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

/** A rate limit answered with 403 rather than 429 (ghcr.io's "secondary rate limit"): not a refusal of
 *  the credentials; retried like a 429, after Retry-After when given. */
export class RateLimitError extends RegistryError {
  override name = 'RateLimitError';
}

/** The registry's quota is spent until a time too far off to wait for (Docker Hub's pull limit:
 *  `ratelimit-remaining: 0`): not retried, the message says when it resets. */
export class QuotaSpentError extends RegistryError {
  override name = 'QuotaSpentError';
}

/** A reset sooner than this is waited for like a Retry-After; a later one fails at once. */
const SHORT_RESET_MS = 30_000;

/** What `ratelimit-limit`, `ratelimit-remaining` (`0;w=21600`: count and window in seconds) and
 *  `ratelimit-reset` (seconds from now, or a Unix time) say, when the registry sends them. */
export interface Quota {
  remaining: number;
  limit?: number;
  windowS?: number;
  resetMs?: number;
}

type Headers = Record<string, string | string[] | undefined>;

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function parseQuota(headers: Headers | undefined, now = Date.now()): Quota | undefined {
  const remaining = /^\s*(\d+)(?:\s*;\s*w\s*=\s*(\d+))?/.exec(first(headers?.['ratelimit-remaining']) ?? '');
  if (!remaining) return undefined;
  const limit = /^\s*(\d+)(?:\s*;\s*w\s*=\s*(\d+))?/.exec(first(headers?.['ratelimit-limit']) ?? '');
  const window = remaining[2] ?? limit?.[2];
  const reset = /^\s*(\d+)\s*$/.exec(first(headers?.['ratelimit-reset']) ?? '');
  let resetMs: number | undefined;
  if (reset) {
    const n = Number(reset[1]);
    // A Unix time (GitHub's style) or seconds from now (the IETF RateLimit fields').
    resetMs = n > 1_000_000_000 ? Math.max(0, n * 1000 - now) : n * 1000;
  }
  return {
    remaining: Number(remaining[1]),
    ...(limit ? { limit: Number(limit[1]) } : {}),
    ...(window ? { windowS: Number(window) } : {}),
    ...(resetMs !== undefined ? { resetMs } : {}),
  };
}

/** "6 h", "59 min", "40 s". */
function span(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 3600) return `${(s / 3600).toFixed(1)} h`;
  if (s >= 60) return `${Math.round(s / 60)} min`;
  return `${s} s`;
}

/** Whether an answer's text says it is a rate limit (ghcr.io's 403 "You have exceeded a secondary rate
 *  limit", Docker Hub's TOOMANYREQUESTS). */
function saysRateLimit(code: string | undefined, text: string): boolean {
  return code === 'TOOMANYREQUESTS' || /rate.?limit|too many requests/i.test(text);
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
  /** The answer's headers: rate limit fields (ratelimit-remaining, ratelimit-reset) are read from them. */
  headers?: Headers;
  now?: number;
}): RegistryError {
  const now = opts.now ?? Date.now();
  const { code, text } = describeBody(opts.body);
  const base = `registry ${opts.registry} answered ${opts.status}${opts.statusText ? ` ${opts.statusText}` : ''} to ${opts.what}` + (text ? `: ${text}` : '');
  let retryAfterMs = parseRetryAfter(opts.retryAfter, now);
  if (opts.status === 429 || opts.status === 403) {
    const quota = parseQuota(opts.headers, now);
    if (quota?.remaining === 0) {
      if (quota.resetMs === undefined || quota.resetMs > SHORT_RESET_MS) {
        const per = quota.windowS ? ` per ${span(quota.windowS * 1000)}` : '';
        const when = quota.resetMs !== undefined ? `resets in ${span(quota.resetMs)} (${new Date(now + quota.resetMs).toISOString().replace(/\.\d{3}Z$/, 'Z')})` : `resets within ${quota.windowS ? span(quota.windowS * 1000) : 'its window'}`;
        return new QuotaSpentError(
          `${base} (its rate limit is spent: 0 of ${quota.limit ?? '?'} left${per}, ${when}; not retried: log in to it for a higher limit, or run again after then)`,
          opts.status,
          code,
        );
      }
      retryAfterMs ??= quota.resetMs;
    }
    if (opts.status === 403 && (saysRateLimit(code, text) || retryAfterMs !== undefined)) {
      return new RateLimitError(`${base} (a rate limit, not a refusal: retried)`, opts.status, code, retryAfterMs);
    }
  }
  const message = base + (opts.status === 403 ? ` (${deniedHint(opts.registry)})` : '');
  const Kind = opts.status === 401 || opts.status === 403 ? AuthError : RegistryError;
  return new Kind(message, opts.status, code, retryAfterMs);
}
