/**
 * Retries with exponential backoff and full jitter (delay = random × min(max, base × 2^attempt)).
 * Only errors marked `retryable` (network failures, timeouts, 5xx) are retried, at most `retries`
 * times; 4xx answers and local failures are final. When every attempt failed, the error says how
 * many there were: a broker whose custody is misconfigured answers 503 every time, and the agent
 * gives up after its bounded retries with that said, rather than looping.
 *
 * `rate_limited` (429) is final too, unless the caller allows waiting (`--wait-on-rate-limit S`):
 * then the agent sleeps for the broker's Retry-After and tries again, as long as the sleeps
 * together stay within S seconds. A wait never counts as a retry, and there is none by default.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import { AgentError } from './errors.js';

export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Seconds the agent may spend, in all, waiting out rate limits (default 0: it does not wait). */
  rateLimitWaitSeconds?: number;
  /** Injected for tests. */
  random?: () => number;
  sleep?: (ms: number) => Promise<unknown>;
  /** Called before each retry with the error that caused it. */
  onRetry?: (err: AgentError, attempt: number, delayMs: number) => void;
}

export const DEFAULT_RETRY = { retries: 3, baseDelayMs: 250, maxDelayMs: 4000 } as const;

/** Seconds to wait on a rate limit that sent no Retry-After. */
const RATE_LIMIT_DEFAULT_WAIT = 1;

export function backoffDelay(attempt: number, policy: RetryPolicy): number {
  const base = policy.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs;
  const max = policy.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs;
  const ceiling = Math.min(max, base * 2 ** attempt);
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}

const restated = (err: AgentError, message: string) =>
  new AgentError(err.code, message, {
    cause: err,
    retryable: err.retryable,
    ...(err.requestId === undefined ? {} : { requestId: err.requestId }),
    ...(err.status === undefined ? {} : { status: err.status }),
    ...(err.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: err.retryAfterSeconds }),
  });

function rateLimitFinal(err: AgentError, budget: number, waited: number): AgentError {
  const after = err.retryAfterSeconds === undefined ? 'no Retry-After given' : `the broker asks to retry after ${err.retryAfterSeconds} s`;
  const advice = budget === 0
    ? 'pass --wait-on-rate-limit SECONDS to wait for it'
    : `longer than what is left of --wait-on-rate-limit ${budget} (${budget - waited} s)`;
  return restated(err, `${err.message} (${after}; ${advice})`);
}

export async function withRetries<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy): Promise<T> {
  const sleep = policy.sleep ?? sleepMs;
  const budget = policy.rateLimitWaitSeconds ?? 0;
  let waited = 0;
  for (let attempt = 0, retriesUsed = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof AgentError)) throw err;
      if (err.code === 'rate_limited') {
        const wait = err.retryAfterSeconds ?? RATE_LIMIT_DEFAULT_WAIT;
        if (budget === 0 || waited + wait > budget) throw rateLimitFinal(err, budget, waited);
        waited += wait;
        policy.onRetry?.(err, attempt + 1, wait * 1000);
        await sleep(wait * 1000);
        continue;
      }
      if (!err.retryable) throw err;
      if (retriesUsed >= policy.retries) throw retriesUsed === 0 ? err : restated(err, `${err.message} (gave up after ${retriesUsed + 1} attempts)`);
      const delay = backoffDelay(retriesUsed, policy);
      retriesUsed++;
      policy.onRetry?.(err, attempt + 1, delay);
      await sleep(delay);
    }
  }
}
