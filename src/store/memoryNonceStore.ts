import type { ConsumeResult, IssueResult, NonceStore } from './nonceStore.js';

interface Entry {
  expiresAt: number;
  used: boolean;
}

/**
 * In-process nonce store. Entries are kept until `retainMs` after expiry so that a late or
 * repeated answer is reported as expired/replayed rather than unknown; after that they are
 * forgotten. The map is capped: a flood of challenges cannot grow memory without bound.
 *
 * Consumption is atomic because it is one synchronous step on the event loop.
 */
export class MemoryNonceStore implements NonceStore {
  readonly kind = 'memory';
  readonly #entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries: number,
    private readonly retainMs: number,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  async issue(nonce: string, expiresAt: number, now: number): Promise<IssueResult> {
    if (this.#entries.size >= this.maxEntries) this.#sweep(now);
    if (this.#entries.size >= this.maxEntries) return 'capacity';
    if (this.#entries.has(nonce)) return 'exists';
    this.#entries.set(nonce, { expiresAt, used: false });
    return 'inserted';
  }

  async consume(nonce: string, now: number): Promise<ConsumeResult> {
    const e = this.#entries.get(nonce);
    if (!e || now > e.expiresAt + this.retainMs) return 'unknown';
    if (e.used) return 'replayed';
    e.used = true;
    return now > e.expiresAt ? 'expired' : 'fresh';
  }

  /**
   * Drops entries past retention. Entries are inserted in expiry order (one TTL for all), so
   * the stale ones are at the front of the map and the sweep stops at the first live one.
   */
  #sweep(now: number): void {
    for (const [k, e] of this.#entries) {
      if (now <= e.expiresAt + this.retainMs) break;
      this.#entries.delete(k);
    }
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}
