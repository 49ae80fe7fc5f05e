/**
 * Counters per (key, bucket), e.g. refusals of one code per minute, for alarm windows. Added to in
 * the transaction of the decision they count; read by key and bucket range.
 */
import type { Sql, TxSql } from './sql.js';
import { num, valuesList } from './sql.js';

export interface CounterAdd {
  key: string;
  bucket: number;
  n?: number;
}

export async function addCounters(tx: TxSql, adds: readonly CounterAdd[]): Promise<void> {
  if (adds.length === 0) return;
  // One row per (key, bucket) in one statement: merge duplicates first (an upsert may not touch a row twice).
  const merged = new Map<string, CounterAdd & { n: number }>();
  for (const a of adds) {
    const id = `${a.bucket}\u0000${a.key}`;
    const m = merged.get(id);
    if (m) m.n += a.n ?? 1;
    else merged.set(id, { key: a.key, bucket: a.bucket, n: a.n ?? 1 });
  }
  const rows = [...merged.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.bucket - b.bucket));
  await tx.run(
    `INSERT INTO counters (counter_key, bucket, count) VALUES ${valuesList(rows.length, 3)}
     ON CONFLICT (counter_key, bucket) DO UPDATE SET count = counters.count + excluded.count`,
    rows.flatMap((r) => [r.key, r.bucket, r.n]),
  );
}

/** Counts of `key` for buckets in [from, to], ascending; buckets never added to are absent. */
export async function readCounters(sql: Sql, key: string, from: number, to: number): Promise<Array<{ bucket: number; count: number }>> {
  const rows = await sql.all('SELECT bucket, count FROM counters WHERE counter_key = $1 AND bucket >= $2 AND bucket <= $3 ORDER BY bucket', [key, from, to]);
  return rows.map((r) => ({ bucket: num(r.bucket), count: num(r.count) }));
}

/** Deletes up to `batch` counter rows in buckets below `before`. */
export async function purgeCounters(tx: TxSql, before: number, batch: number): Promise<number> {
  return tx.run(
    `DELETE FROM counters WHERE (counter_key, bucket) IN (SELECT counter_key, bucket FROM counters WHERE bucket < $1 LIMIT $2)`,
    [before, batch],
  );
}
