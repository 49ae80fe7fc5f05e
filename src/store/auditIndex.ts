/**
 * The search index of the trail (`audit_terms`), filled behind the records: the indexer reads the
 * records in commit order from its cursor (the tail cursor, auditTail.ts, kept in meta
 * `audit_indexed`), computes their terms (auditTerms.ts) and inserts them a batch at a time. The
 * release transaction thus writes its record alone, and the terms of thousands of records cost one
 * commit. A batch's rows are inserted in index order, so the rows of one term share their pages
 * (a 5000-record batch costs about half what the records' own order would). Any process may run it (the broker every few seconds, a search before it reads): inserts are
 * idempotent and the cursor only moves forward, so concurrent indexers repeat work, never lose it.
 */
import { auditTerms } from './auditTerms.js';
import { formatTailCursor, parseTailCursor, tailRows, TAIL_START, type TailCursor } from './auditTail.js';
import { getMeta } from './meta.js';
import type { Sql, TxSql } from './sql.js';
import { num, valuesList } from './sql.js';

const CURSOR = 'audit_indexed';
/** Term rows per INSERT statement. */
const ROWS_PER_STATEMENT = 24;

export async function indexCursor(sql: Sql): Promise<TailCursor> {
  const v = await getMeta(sql, CURSOR);
  return (v && parseTailCursor(v)) || TAIL_START;
}

/** Inserts the terms of records (their body read as JSON; an unreadable one has its event term only). */
export async function insertTerms(tx: TxSql, rows: ReadonlyArray<{ chainId: string; seq: number; at: number; event: string; body: string }>): Promise<void> {
  const values: unknown[][] = [];
  for (const r of rows) {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(r.body) as Record<string, unknown>;
    } catch {
      /* the event alone */
    }
    for (const t of auditTerms(r.event, body)) values.push([t, r.at, r.chainId, r.seq]);
  }
  values.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : (a[1] as number) - (b[1] as number)));
  for (let i = 0; i < values.length; i += ROWS_PER_STATEMENT) {
    const chunk = values.slice(i, i + ROWS_PER_STATEMENT);
    await tx.run(`INSERT INTO audit_terms (term, at, chain_id, seq) VALUES ${valuesList(chunk.length, 4)} ON CONFLICT DO NOTHING`, chunk.flat());
  }
}

/**
 * Indexes up to `maxBatches` batches of records past the cursor; resolves to the number of records
 * indexed (0: caught up).
 */
export async function indexAudit(sql: Sql, transaction: <T>(fn: (tx: TxSql) => Promise<T>) => Promise<T>, o: { batch?: number; maxBatches?: number } = {}): Promise<number> {
  const batch = o.batch ?? 5000;
  let done = 0;
  for (let i = 0; i < (o.maxBatches ?? Infinity); i++) {
    const from = await indexCursor(sql);
    const rows = (await tailRows(sql, from, batch, 'chain_id, seq, at, event, body')).map((r) => ({ pos: num(r.pos), chainId: String(r.chain_id), seq: num(r.seq), at: num(r.at), event: String(r.event), body: String(r.body) }));
    if (rows.length === 0) return done;
    const last = rows.at(-1)!;
    const to = { pos: last.pos, chain: last.chainId, seq: last.seq };
    await transaction(async (tx) => {
      await insertTerms(tx, rows);
      // Forward only: another indexer may have gone further meanwhile.
      await tx.run(`INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE meta.value = $3`, [CURSOR, formatTailCursor(to), formatTailCursor(from)]);
    });
    done += rows.length;
    if (rows.length < batch) return done;
  }
  return done;
}
