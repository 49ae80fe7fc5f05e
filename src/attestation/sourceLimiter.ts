/**
 * Bounds unauthenticated work per source address: a token bucket per address (`ratePerSecond`,
 * `burst`), in this broker process, kept in a bounded LRU of sources (an evicted source starts
 * again with a full bucket; with more live sources than `maxSources`, the bound per source
 * loosens but memory does not grow). Several replicas each keep their own buckets, so a source
 * spread over N replicas gets up to N times the rate: put the bound that must hold across replicas
 * on the load balancer.
 */
import type { Clock } from '../clock.js';
import { BrokerError } from '../errors.js';

interface Bucket {
  tokens: number;
  at: number;
}

export class SourceLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    private readonly opts: { ratePerSecond: number; burst: number; maxSources: number },
    private readonly clock: Clock,
  ) {}

  /** Takes one token for `source`, or throws rate_limited with the seconds until the next one. */
  take(source: string): void {
    const now = this.clock.now();
    const b = this.#buckets.get(source);
    let tokens = this.opts.burst;
    if (b) {
      this.#buckets.delete(source); // re-inserted below: most recently used last
      // A clock stepped back refills nothing, and takes nothing either.
      tokens = Math.min(this.opts.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.opts.ratePerSecond);
    } else if (this.#buckets.size >= this.opts.maxSources) {
      this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    if (tokens < 1) {
      this.#buckets.set(source, { tokens, at: now });
      const waitMs = ((1 - tokens) / this.opts.ratePerSecond) * 1000;
      throw new BrokerError('rate_limited', `source ${source} is over ${this.opts.ratePerSecond} challenges/s`, { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) });
    }
    this.#buckets.set(source, { tokens: tokens - 1, at: now });
  }

  get size(): number {
    return this.#buckets.size;
  }
}
