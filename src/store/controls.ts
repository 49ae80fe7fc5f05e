/**
 * The crypto-anchor controls' part of a release transaction in one call: charge every rate-limit
 * window (all of them or none, limits.ts's GCRA) and add to the alarm counts, returning the counts
 * after the addition (counters.ts's exactly-once crossing). Three statements whatever the numbers
 * of windows and counts:
 *
 * - SQLite (the transaction holds the database's write lock): read the windows and the counts in
 *   one statement, then write the windows, then add to the counts (each count after is the one read
 *   plus the addition);
 * - PostgreSQL: lock and read the windows, then write them, then add to the counts returning them.
 *
 * When a window refuses, nothing is written: the caller refuses the request (its transaction then
 * rolls back, and the refusal is counted in its own).
 */
import { gcra, type GcraDecision, type LimitWindow } from '../limits/gcra.js';
import { addCounters, addCountersReturning, mergeCounts, type CounterAdd } from './counters.js';
import { lockWindows, writeWindows } from './limits.js';
import type { TxSql } from './sql.js';
import { num, serialised } from './sql.js';

export interface Charged {
  limits: GcraDecision;
  /** The counts after the addition (empty when a window refused). */
  counts: Array<{ key: string; bucket: number; count: number }>;
}

export async function chargeAndCount(tx: TxSql, windows: readonly LimitWindow[], adds: readonly CounterAdd[], now: number): Promise<Charged> {
  const keys = [...new Set(windows.map((w) => w.key))].sort();
  const rows = mergeCounts(adds);
  if (!serialised(tx.dialect)) {
    const limits = gcra(windows, keys.length ? await lockWindows(tx, keys) : new Map(), now);
    if (!limits.allowed) return { limits, counts: [] };
    await writeWindows(tx, limits.tats);
    return { limits, counts: await addCountersReturning(tx, rows) };
  }
  const { tats, counts } = await readBoth(tx, keys, rows);
  const limits = gcra(windows, tats, now);
  if (!limits.allowed) return { limits, counts: [] };
  await writeWindows(tx, limits.tats);
  await addCounters(tx, rows);
  return { limits, counts: rows.map((r) => ({ key: r.key, bucket: r.bucket, count: (counts.get(`${r.bucket}\u0000${r.key}`) ?? 0) + r.n })) };
}

const texts = new Map<string, string>();
/** The read of `w` windows and `c` counts (SQLite), made once per shape. */
function readText(w: number, c: number): string {
  const id = `${w}/${c}`;
  let t = texts.get(id);
  if (t === undefined) {
    const parts: string[] = [];
    if (w) parts.push(`SELECT 0 AS kind, window_key AS k, 0 AS b, tat AS v FROM limit_windows WHERE ${Array.from({ length: w }, (_, i) => `window_key = $${i + 1}`).join(' OR ')}`);
    if (c) parts.push(`SELECT 1 AS kind, counter_key AS k, bucket AS b, count AS v FROM counters WHERE ${Array.from({ length: c }, (_, i) => `(counter_key = $${w + 2 * i + 1} AND bucket = $${w + 2 * i + 2})`).join(' OR ')}`);
    texts.set(id, (t = parts.join(' UNION ALL ')));
  }
  return t;
}

/** SQLite: the windows' TATs and the counts, in one statement. */
async function readBoth(tx: TxSql, keys: readonly string[], rows: ReadonlyArray<{ key: string; bucket: number }>): Promise<{ tats: Map<string, number>; counts: Map<string, number> }> {
  const tats = new Map<string, number>();
  const counts = new Map<string, number>();
  if (keys.length === 0 && rows.length === 0) return { tats, counts };
  const params = [...keys, ...rows.flatMap((r) => [r.key, r.bucket])];
  for (const r of await tx.all(readText(keys.length, rows.length), params)) {
    if (num(r.kind) === 0) tats.set(String(r.k), num(r.v));
    else counts.set(`${num(r.b)}\u0000${String(r.k)}`, num(r.v));
  }
  return { tats, counts };
}
