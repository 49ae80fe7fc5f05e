/**
 * Consumed nonces. A challenge stores nothing (its nonce is a self-authenticating token, see
 * attestation/nonceToken.ts); a nonce is recorded only when an attempt uses it, by inserting its
 * id under a unique key inside the release (or refusal) transaction: exactly one caller, across
 * every process and replica on the store, ever inserts it. Expiry is decided by the store's clock
 * (the database's with PostgreSQL) so that the decision and the purge use one clock.
 */
import type { Sql, TxSql } from './sql.js';
import { num } from './sql.js';

export type ConsumeResult = 'consumed' | 'replayed' | 'expired';

/** Consumes nonce `id`, good until `expiresAt` (epoch ms, inclusive). */
export async function consumeNonce(tx: TxSql, id: Buffer, expiresAt: number): Promise<ConsumeResult> {
  if ((await tx.now()) > expiresAt) return 'expired';
  const n = await tx.run('INSERT INTO consumed_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING', [id, expiresAt]);
  return n === 1 ? 'consumed' : 'replayed';
}

/**
 * Deletes up to `batch` consumed nonces that expired before `before` (store clock). A purged nonce
 * can never be consumed again: consumption refuses it as expired first. Returns how many went.
 */
export async function purgeNonces(tx: TxSql, before: number, batch: number): Promise<number> {
  return tx.run(
    'DELETE FROM consumed_nonces WHERE nonce IN (SELECT nonce FROM consumed_nonces WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)',
    [before, batch],
  );
}

export async function countConsumed(sql: Sql): Promise<number> {
  const [r] = await sql.all('SELECT COUNT(*) AS n FROM consumed_nonces');
  return num(r?.n);
}
