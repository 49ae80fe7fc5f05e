/**
 * Rate-limit windows: the GCRA decision of limits/gcra.ts, run inside the transaction over the
 * windows' stored state. All windows are read first (with PostgreSQL, locked: rows are made to
 * exist and locked in one statement, in key order so concurrent transactions cannot deadlock; a
 * SQLite transaction holds the database's write lock already); then either every window is
 * charged or none is. Two statements whatever the number of windows.
 */
import { gcra, type GcraDecision, type LimitWindow } from '../limits/gcra.js';
import type { TxSql } from './sql.js';
import { inList, num, serialised, valuesList } from './sql.js';

/** Statement texts by number of windows (a release charges the same few counts over and over). */
const texts = new Map<string, string>();
const text = (kind: 'lock' | 'read' | 'write', n: number): string => {
  const id = `${kind}${n}`;
  let t = texts.get(id);
  if (t === undefined) {
    t =
      kind === 'read' ? `SELECT window_key, tat FROM limit_windows WHERE window_key IN (${inList(n)})`
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
  const rows = serialised(tx.dialect) ? await tx.all(text('read', keys.length), keys) : await tx.all(text('lock', keys.length), keys.flatMap((k) => [k, 0]));
  const stored = new Map(rows.map((r) => [String(r.window_key), num(r.tat)]));
  const decision = gcra(windows, stored, now, cost);
  if (decision.allowed) {
    const tats = [...decision.tats].sort(([a], [b]) => (a < b ? -1 : 1));
    await tx.run(text('write', tats.length), tats.flat());
  }
  return decision;
}

/** Forgets up to `batch` windows idle since before `now`: an absent window is an idle one. */
export async function purgeLimits(tx: TxSql, now: number, batch: number): Promise<number> {
  return tx.run('DELETE FROM limit_windows WHERE window_key IN (SELECT window_key FROM limit_windows WHERE tat < $1 LIMIT $2)', [now, batch]);
}
