/**
 * Rate-limit windows: the GCRA decision of limits/gcra.ts, run inside the transaction over the
 * windows' stored state. All windows are read first (with PostgreSQL, locked: rows are made to
 * exist and locked in one statement, in key order so concurrent transactions cannot deadlock; a
 * SQLite transaction holds the database's write lock already); then either every window is
 * charged or none is. Two statements whatever the number of windows.
 */
import { gcra, type GcraDecision, type LimitWindow } from '../limits/gcra.js';
import type { TxSql } from './sql.js';
import { num, serialised, valuesList } from './sql.js';

/** Statement texts by number of windows (a release charges the same few counts over and over). */
const texts = new Map<string, string>();
const text = (kind: 'lock' | 'read' | 'write', n: number): string => {
  const id = `${kind}${n}`;
  let t = texts.get(id);
  if (t === undefined) {
    t =
      // `key = $1 OR key = $2 …` rather than `IN (…)`: SQLite looks each up in the primary key instead of building a temporary index of the list first.
      kind === 'read' ? `SELECT window_key, tat FROM limit_windows WHERE ${Array.from({ length: n }, (_, i) => `window_key = $${i + 1}`).join(' OR ')}`
      // An idle window's TAT is 0 (the distant past); an existing row is "updated" to itself, which locks it.
      : kind === 'lock' ? `INSERT INTO limit_windows (window_key, tat) VALUES ${valuesList(n, 2)} ON CONFLICT (window_key) DO UPDATE SET tat = limit_windows.tat RETURNING window_key, tat`
      : `INSERT INTO limit_windows (window_key, tat) VALUES ${valuesList(n, 2)} ON CONFLICT (window_key) DO UPDATE SET tat = excluded.tat`;
    texts.set(id, t);
  }
  return t;
};

export async function chargeLimits(tx: TxSql, windows: readonly LimitWindow[], now: number, cost = 1): Promise<GcraDecision> {
  if (windows.length === 0) return { allowed: true, tats: new Map() };
  const keys = [...new Set(windows.map((w) => w.key))].sort();
  const stored = serialised(tx.dialect) ? await readWindows(tx, keys) : await lockWindows(tx, keys);
  const decision = gcra(windows, stored, now, cost);
  if (decision.allowed) await writeWindows(tx, decision.tats);
  return decision;
}

/** The stored TATs of `keys` (sorted), read in a transaction that holds the write lock (SQLite). */
async function readWindows(tx: TxSql, keys: readonly string[]): Promise<Map<string, number>> {
  return new Map((await tx.all(text('read', keys.length), keys)).map((r) => [String(r.window_key), num(r.tat)]));
}

/** The stored TATs of `keys` (sorted), each row made to exist and locked until the transaction ends (PostgreSQL). */
export async function lockWindows(tx: TxSql, keys: readonly string[]): Promise<Map<string, number>> {
  return new Map((await tx.all(text('lock', keys.length), keys.flatMap((k) => [k, 0]))).map((r) => [String(r.window_key), num(r.tat)]));
}

/** Every window's new TAT, in one statement, in key order. */
export async function writeWindows(tx: TxSql, tats: ReadonlyMap<string, number>): Promise<void> {
  if (tats.size === 0) return;
  const sorted = [...tats].sort(([a], [b]) => (a < b ? -1 : 1));
  await tx.run(text('write', sorted.length), sorted.flat());
}

/** Forgets up to `batch` windows idle since before `now`: an absent window is an idle one. */
export async function purgeLimits(tx: TxSql, now: number, batch: number): Promise<number> {
  return tx.run('DELETE FROM limit_windows WHERE window_key IN (SELECT window_key FROM limit_windows WHERE tat < $1 LIMIT $2)', [now, batch]);
}
