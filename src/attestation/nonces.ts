/**
 * Nonces: issued as self-authenticating tokens (nonceToken.ts), checked cheaply before the
 * evidence signature, consumed inside the release (or refusal) transaction.
 *
 *   issue     no state: a token good for `ttlMs` (broker clock)
 *   check     MAC and expiry against the broker clock, before the signature is verified; an attempt
 *             refused here does not consume the nonce (anyone who saw it on the wire could send it)
 *   consume   insert its id under a unique key in the transaction; expiry decided by the store clock
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import { BrokerError } from '../errors.js';
import { consumeNonce } from '../store/nonces.js';
import type { TxSql } from '../store/sql.js';
import { mintNonce, openNonce, type NonceClaims } from './nonceToken.js';

export interface IssuedNonce {
  nonce: string;
  expiresAt: number;
}

export class NonceService {
  readonly #key: Buffer;

  constructor(
    key: Buffer,
    private readonly clock: Clock,
    readonly ttlMs: number,
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {
    this.#key = Buffer.from(key);
  }

  issue(): IssuedNonce {
    const expiresAt = this.clock.now() + this.ttlMs;
    return { nonce: mintNonce(this.#key, expiresAt, this.random(16)), expiresAt };
  }

  /** Throws nonce_unknown for a nonce this store's brokers never issued, nonce_expired past its expiry. */
  check(nonce: string): NonceClaims {
    const claims = openNonce(this.#key, nonce);
    if (!claims) throw new BrokerError('nonce_unknown', 'not a nonce issued by a broker of this store');
    if (this.clock.now() > claims.expiresAt) throw new BrokerError('nonce_expired', `nonce expired ${new Date(claims.expiresAt).toISOString()}`);
    return claims;
  }

  /** Consumes a checked nonce in `tx` (see consumeChecked). */
  consume(tx: TxSql, claims: NonceClaims): Promise<void> {
    return consumeChecked(tx, claims);
  }
}

/**
 * Consumes a checked nonce in `tx`: throws nonce_replayed for a second use, nonce_expired past its
 * expiry (store clock). Needs no key: the claims were checked by `NonceService.check`.
 */
export async function consumeChecked(tx: TxSql, claims: NonceClaims): Promise<void> {
  const r = await consumeNonce(tx, claims.id, claims.expiresAt);
  if (r === 'replayed') throw new BrokerError('nonce_replayed', 'nonce was already used');
  if (r === 'expired') throw new BrokerError('nonce_expired', 'nonce expired by the store clock before it was consumed');
}
