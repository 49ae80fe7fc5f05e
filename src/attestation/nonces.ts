import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { BrokerError } from '../errors.js';
import type { NonceStore } from '../store/nonceStore.js';

export interface IssuedNonce {
  nonce: string;
  expiresAt: number;
}

/** Issues 256-bit nonces from the CSPRNG and consumes them exactly once. */
export class NonceService {
  constructor(
    private readonly store: NonceStore,
    private readonly clock: Clock,
    readonly ttlMs: number,
  ) {}

  async issue(): Promise<IssuedNonce> {
    const now = this.clock.now();
    const nonce = randomBytes(32).toString('base64url');
    const expiresAt = now + this.ttlMs;
    const r = await this.#call(() => this.store.issue(nonce, expiresAt, now));
    if (r === 'capacity') throw new BrokerError('challenge_capacity', 'outstanding nonce limit reached');
    if (r === 'exists') throw new BrokerError('internal', 'CSPRNG produced a duplicate nonce');
    return { nonce, expiresAt };
  }

  /** Consumes the nonce; throws unless this was its first use within its lifetime. */
  async consume(nonce: string): Promise<void> {
    const r = await this.#call(() => this.store.consume(nonce, this.clock.now()));
    switch (r) {
      case 'fresh':
        return;
      case 'unknown':
        throw new BrokerError('nonce_unknown', 'nonce was never issued or is long gone');
      case 'expired':
        throw new BrokerError('nonce_expired', 'nonce used after its expiry');
      case 'replayed':
        throw new BrokerError('nonce_replayed', 'nonce was already used');
    }
  }

  async #call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new BrokerError('store_unavailable', `nonce store ${this.store.kind} failed`, { cause: e });
    }
  }
}
