/**
 * Rate-limit windows: the GCRA decision of limits/gcra.ts, run inside the transaction over the
 * windows' stored state. All windows are read (and locked, with PostgreSQL) first, in key order so
 * concurrent transactions cannot deadlock; then either every window is charged or none is. Three
 * statements whatever the number of windows: make the rows exist, read and lock them, write them.
 */
import { gcra, type GcraDecision, type LimitWindow } from '../limits/gcra.js';
import type { TxSql } from './sql.js';
import { inList, num, valuesList } from './sql.js';

export async function chargeLimits(tx: TxSql, windows: readonly LimitWindow[], now: number, cost = 1): Promise<GcraDecision> {
  if (windows.length === 0) return { allowed: true, tats: new Map() };
  const keys = [...new Set(windows.map((w) => w.key))].sort();
  // Make every row exist so that it can be locked (an idle window's TAT is 0: the distant past).
  await tx.run(`INSERT INTO limit_windows (window_key, tat) VALUES ${valuesList(keys.length, 2)} ON CONFLICT (window_key) DO NOTHING`, keys.flatMap((k) => [k, 0]));
  const rows = await tx.all(`SELECT window_key, tat FROM limit_windows WHERE window_key IN (${inList(keys.length)}) ORDER BY window_key${tx.dialect.forUpdate}`, keys);
  const stored = new Map(rows.map((r) => [String(r.window_key), num(r.tat)]));
  const decision = gcra(windows, stored, now, cost);
  if (decision.allowed) {
    // Every window's new TAT in one statement (the rows exist and are locked: this only updates them).
    const tats = [...decision.tats].sort(([a], [b]) => (a < b ? -1 : 1));
    await tx.run(
      `INSERT INTO limit_windows (window_key, tat) VALUES ${valuesList(tats.length, 2)} ON CONFLICT (window_key) DO UPDATE SET tat = excluded.tat`,
      tats.flat(),
    );
  }
  return decision;
}

/** Forgets up to `batch` windows idle since before `now`: an absent window is an idle one. */
export async function purgeLimits(tx: TxSql, now: number, batch: number): Promise<number> {
  return tx.run('DELETE FROM limit_windows WHERE window_key IN (SELECT window_key FROM limit_windows WHERE tat < $1 LIMIT $2)', [now, batch]);
}
