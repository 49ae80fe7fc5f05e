/**
 * Reading the trail in commit order, for `audit tail` (a SIEM export that resumes where it
 * stopped). The cursor is (pos, chain, seq) of the last record read:
 * - SQLite: `pos` is the rowid; one writer at a time holds the write lock, so a record with a
 *   smaller pos can never commit after one with a larger pos was seen.
 * - PostgreSQL: `pos` is the id of the transaction that inserted the record, which commits in no
 *   particular order. A page takes only records whose transaction id is below the reading
 *   snapshot's xmin: every such transaction has ended, so no record can still appear below the
 *   cursor. A transaction open somewhere in the cluster holds the tail back until it ends.
 */
import { AUDIT_COLUMNS, toRow, type AuditRow } from './audit.js';
import type { Row, Sql } from './sql.js';
import { num } from './sql.js';

export interface TailCursor {
  pos: number;
  chain: string;
  seq: number;
}

export const TAIL_START: TailCursor = { pos: -1, chain: '', seq: 0 };

export const formatTailCursor = (c: TailCursor): string => `${c.pos}.${c.chain}.${c.seq}`;

export function parseTailCursor(s: string): TailCursor | undefined {
  const m = /^(-1|\d{1,19})\.([A-Za-z0-9_~-]{0,128})\.(\d{1,16})$/.exec(s.trim());
  return m ? { pos: Number(m[1]), chain: m[2]!, seq: Number(m[3]) } : undefined;
}

export type TailRow = AuditRow & { cursor: TailCursor };

/** `columns` (with `pos`) of the next records after `after`, at most `limit`. */
export async function tailRows(sql: Sql, after: TailCursor, limit: number, columns: string): Promise<Row[]> {
  return sql.dialect.name === 'sqlite'
    ? sql.all(`SELECT pos, ${columns} FROM audit WHERE pos > $1 ORDER BY pos LIMIT $2`, [after.pos, limit])
    : sql.all(
        `SELECT pos, ${columns} FROM audit WHERE (pos, chain_id, seq) > ($1, $2, $3) AND pos < txid_snapshot_xmin(txid_current_snapshot()) ORDER BY pos, chain_id, seq LIMIT $4`,
        [after.pos, after.chain, after.seq, limit],
      );
}

/** The next records after `after`, at most `limit`. */
export async function tailPage(sql: Sql, after: TailCursor, limit: number): Promise<TailRow[]> {
  const rows = await tailRows(sql, after, limit, AUDIT_COLUMNS);
  return rows.map((r) => {
    const row = toRow(r);
    return { ...row, cursor: { pos: num(r.pos), chain: row.chainId, seq: row.seq } };
  });
}
