/**
 * Retries with exponential backoff and full jitter (delay = random × min(max, base × 2^attempt)).
 * Only errors marked `retryable` (network failures, timeouts, 5xx) are retried; 4xx answers and
 * local failures are final.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import { AgentError } from './errors.js';

export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Injected for tests. */
  random?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
  /** Called before each retry with the error that caused it. */
  onRetry?: (err: AgentError, attempt: number, delayMs: number) => void;
}

export const DEFAULT_RETRY = { retries: 3, baseDelayMs: 250, maxDelayMs: 4000 } as const;

export function backoffDelay(attempt: number, policy: RetryPolicy): number {
  const base = policy.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs;
  const max = policy.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs;
  const ceiling = Math.min(max, base * 2 ** attempt);
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}

export async function withRetries<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const sleep = policy.sleep ?? sleepMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof AgentError) || !err.retryable || attempt >= policy.retries) throw err;
      const delay = backoffDelay(attempt, policy);
      policy.onRetry?.(err, attempt + 1, delay);
      await sleep(delay);
    }
  }
}
