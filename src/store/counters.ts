/**
 * Counters per (key, bucket), e.g. refusals of one code per minute, for alarm windows. Added to in
 * the transaction of the decision they count; read by key and bucket range. A bucket is the start
 * of its period in epoch milliseconds, so one purge by time serves every period length.
 */
import type { Sql, TxSql } from './sql.js';
import { num, serialised, valuesList } from './sql.js';

export interface CounterAdd {
  key: string;
  bucket: number;
  n?: number;
}

export async function addCounters(tx: TxSql, adds: readonly CounterAdd[]): Promise<void> {
  if (adds.length === 0) return;
  const rows = mergeCounts(adds);
  await tx.run(upsert(rows.length), rows.flatMap((r) => [r.key, r.bucket, r.n]));
}

/**
 * Adds like addCounters and returns each counter's count after the addition. The row stays locked
 * by the addition until the transaction ends (with SQLite, the whole database is), so of the
 * transactions that add 1 to a counter exactly one sees any given count: the one that crosses a
 * threshold. PostgreSQL returns the counts from the addition itself; SQLite, whose RETURNING
 * costs more than a second statement, reads them back.
 */
export async function addCountersReturning(tx: TxSql, adds: readonly CounterAdd[]): Promise<Array<{ key: string; bucket: number; count: number }>> {
  if (adds.length === 0) return [];
  const rows = mergeCounts(adds);
  const params = rows.flatMap((r) => [r.key, r.bucket, r.n]);
  let out;
  if (serialised(tx.dialect)) {
    await tx.run(upsert(rows.length), params);
    const which = rows.map((_, i) => `(counter_key = $${2 * i + 1} AND bucket = $${2 * i + 2})`).join(' OR ');
    out = await tx.all(`SELECT counter_key, bucket, count FROM counters WHERE ${which}`, rows.flatMap((r) => [r.key, r.bucket]));
  } else out = await tx.all(`${upsert(rows.length)} RETURNING counter_key, bucket, count`, params);
  return out.map((r) => ({ key: String(r.counter_key), bucket: num(r.bucket), count: num(r.count) }));
}

/** One row per (key, bucket), in key order: an upsert may not touch a row twice, and a fixed order cannot deadlock. */
export function mergeCounts(adds: readonly CounterAdd[]): Array<CounterAdd & { n: number }> {
  const merged = new Map<string, CounterAdd & { n: number }>();
  for (const a of adds) {
    const id = `${a.bucket}\u0000${a.key}`;
    const m = merged.get(id);
    if (m) m.n += a.n ?? 1;
    else merged.set(id, { key: a.key, bucket: a.bucket, n: a.n ?? 1 });
  }
  return [...merged.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.bucket - b.bucket));
}

const upserts = new Map<number, string>();
const upsert = (rows: number): string => {
  let t = upserts.get(rows);
  if (t === undefined) {
    t = `INSERT INTO counters (counter_key, bucket, count) VALUES ${valuesList(rows, 3)} ON CONFLICT (counter_key, bucket) DO UPDATE SET count = counters.count + excluded.count`;
    upserts.set(rows, t);
  }
  return t;
};

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
