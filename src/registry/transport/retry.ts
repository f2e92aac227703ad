// Retries of one request: 408, 429, 5xx, a 403 that is a rate limit (RateLimitError) and dropped
// connections (reset, refused, stalled), with exponential backoff and jitter, honouring Retry-After, a
// bounded number of tries, and within the client's retry budget (budget.ts); never a spent quota
// (QuotaSpentError: it resets too far off to wait for). An abort ends the loop at once. What is retried is the caller's
// `fn`: one request (the client never retries a sequence of requests as a whole).
import type { Logger } from '../types.js';
import { AbortError, isAbortError, sleep, throwIfAborted } from './abort.js';
import type { RetryBudget } from './budget.js';
import { AuthError, NetworkError, QuotaSpentError, RateLimitError, RegistryError, StallError, isRetryableStatus } from './error.js';

export interface RetryPolicy {
  /** Tries of one request, the first included. */
  attempts: number;
  baseMs: number;
  /** Ceiling of the computed backoff (and of a Retry-After). */
  maxMs: number;
  /** Per client: retries stop once the registry has answered nothing but failures for this long. */
  budgetMs: number;
}

/** Backoff ceilings 0.5, 1, 2, 4, 8, 16, 30 s (waits of half to all of each): a request that keeps failing
 *  gives up after 31–62 s; the budget stops a push whose requests fail one after another within 2 min. */
export const defaultRetry: RetryPolicy = { attempts: 8, baseMs: 500, maxMs: 30_000, budgetMs: 120_000 };

export function isRetryable(error: unknown): boolean {
  if (error instanceof QuotaSpentError) return false;
  if (error instanceof RateLimitError) return true;
  if (error instanceof AuthError) return false;
  if (error instanceof NetworkError) return true;
  if (error instanceof RegistryError) return error.status !== undefined && isRetryableStatus(error.status);
  return false;
}

/** What a retry is counted under: the status, or how the connection failed. */
export function retryCause(error: unknown): string {
  if (error instanceof StallError) return 'stall';
  if (error instanceof NetworkError) return 'connection';
  if (error instanceof RegistryError && error.status !== undefined) return String(error.status);
  return 'other';
}

/** Delay before try number `attempt + 1` (attempt counts from 1): half jitter, or what Retry-After says. */
export function backoff(attempt: number, policy: Pick<RetryPolicy, 'baseMs' | 'maxMs'>, retryAfterMs?: number, random = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxMs);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export interface RetryOptions {
  /** Shared by every request of a client; without one, only `attempts` bounds the retries. */
  budget?: RetryBudget;
  /** Which failures this request may be sent again for (default isRetryable): a PATCH is not resent
   *  on the same session after its connection dropped mid-body. */
  retryable?: (error: unknown) => boolean;
}

function tries(n: number): string {
  return `${n} ${n === 1 ? 'try' : 'tries'}`;
}

export async function withRetry<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  policy: Pick<RetryPolicy, 'attempts' | 'baseMs' | 'maxMs'>,
  logger?: Logger,
  signal?: AbortSignal,
  opts: RetryOptions = {},
): Promise<T> {
  const retryable = opts.retryable ?? isRetryable;
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal, what);
    try {
      const result = await fn(attempt);
      opts.budget?.progress();
      return result;
    } catch (error) {
      if (signal?.aborted) throw isAbortError(error) ? error : new AbortError(what, signal.reason);
      if (!retryable(error) || !(error instanceof Error)) throw error;
      if (attempt >= policy.attempts) {
        if (attempt > 1) error.message += ` (after ${tries(attempt)})`;
        throw error;
      }
      const wait = backoff(attempt, policy, error instanceof RegistryError ? error.retryAfterMs : undefined);
      if (opts.budget && !opts.budget.allows(wait)) {
        error.message += ` (after ${tries(attempt)}; retrying would pass the retry budget of ${formatSeconds(opts.budget.ms)})`;
        throw error;
      }
      opts.budget?.count(retryCause(error));
      logger?.info(`${what}: ${error.message}; retrying in ${(wait / 1000).toFixed(1)} s (try ${attempt + 1} of ${policy.attempts})`);
      await sleep(wait, signal, what);
    }
  }
}

export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
