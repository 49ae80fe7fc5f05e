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

/**
 * Consumes nonce `id`, good until `expiresAt` (epoch ms, inclusive): one statement that compares
 * with the store's clock and inserts; only when it inserts nothing, a second one tells why.
 */
export async function consumeNonce(tx: TxSql, id: Buffer, expiresAt: number): Promise<ConsumeResult> {
  const now = tx.dialect.nowMs ?? '$3';
  const params = tx.dialect.nowMs ? [id, expiresAt] : [id, expiresAt, await tx.now()];
  const n = await tx.run(`INSERT INTO consumed_nonces (nonce, expires_at) SELECT $1, $2 WHERE $2 >= ${now} ON CONFLICT (nonce) DO NOTHING`, params);
  if (n === 1) return 'consumed';
  return (await tx.all('SELECT 1 AS x FROM consumed_nonces WHERE nonce = $1', [id])).length ? 'replayed' : 'expired';
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
