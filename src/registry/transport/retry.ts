// Retries owned by the transport: 408, 429, 5xx and dropped connections, with exponential backoff and
// full jitter, honouring Retry-After, a bounded number of times. An abort ends the loop at once.
import type { Logger } from '../types.js';
import { AbortError, isAbortError, sleep, throwIfAborted } from './abort.js';
import { AuthError, NetworkError, RegistryError, isRetryableStatus } from './error.js';

export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
}

export const defaultRetry: RetryPolicy = { attempts: 5, baseMs: 400, maxMs: 20_000 };

export function isRetryable(error: unknown): boolean {
  if (error instanceof AuthError) return false;
  if (error instanceof NetworkError) return true;
  if (error instanceof RegistryError) return error.status !== undefined && isRetryableStatus(error.status);
  return false;
}

/** Delay before try number `attempt + 1` (attempt counts from 1). */
export function backoff(attempt: number, policy: RetryPolicy, retryAfterMs?: number, random = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxMs);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export async function withRetry<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  logger?: Logger,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(signal, what);
    try {
      return await fn(attempt);
    } catch (error) {
      if (signal?.aborted) throw isAbortError(error) ? error : new AbortError(what, signal.reason);
      if (!isRetryable(error) || attempt >= policy.attempts) {
        if (attempt > 1 && error instanceof Error) error.message += ` (after ${attempt} tries)`;
        throw error;
      }
      const wait = backoff(attempt, policy, error instanceof RegistryError ? error.retryAfterMs : undefined);
      logger?.info(`${what}: ${(error as Error).message}; retrying in ${(wait / 1000).toFixed(1)} s (try ${attempt + 1} of ${policy.attempts})`);
      await sleep(wait, signal, what);
    }
  }
}
