/**
 * Searching the trail: by search terms (auditTerms.ts) and a time range, oldest first, a page at a
 * time from a cursor (time, chain, seq). The most selective term drives the query: an index range
 * of `audit_terms` in time order; every other term is a primary-key probe of the same record. A
 * search by time alone reads the `audit_at` index. Memory is bounded by the page size.
 */
import { AUDIT_COLUMNS, toRow, type AuditRow } from './audit.js';
import type { Sql } from './sql.js';

export interface SearchCursor {
  at: number;
  chain: string;
  seq: number;
}

export interface AuditQuery {
  /** Every term must hold; the first drives the query (put the most selective first). */
  terms: readonly string[];
  /** The record's event, for events with no term (auditTerms.ts: releases). */
  event?: string;
  /** Time range [since, until), epoch ms. */
  since?: number;
  until?: number;
  after?: SearchCursor;
  limit: number;
}

const NEVER = Number.MAX_SAFE_INTEGER;

export const formatCursor = (c: SearchCursor): string => `${c.at}.${c.chain}.${c.seq}`;

export function parseCursor(s: string): SearchCursor | undefined {
  const m = /^(\d{1,16})\.([A-Za-z0-9_~-]{1,128})\.(\d{1,16})$/.exec(s);
  return m ? { at: Number(m[1]), chain: m[2]!, seq: Number(m[3]) } : undefined;
}

/** The SQL of a search (also what EXPLAIN is asked about in tests). */
export function searchSql(q: AuditQuery): { text: string; params: unknown[] } {
  const after = q.after ?? { at: -1, chain: '', seq: 0 };
  const params: unknown[] = [q.since ?? 0, q.until ?? NEVER, after.at, after.chain, after.seq];
  const event = (prefix: string) => {
    if (q.event === undefined) return '';
    params.push(q.event);
    return ` AND ${prefix}event = $${params.length}`;
  };
  if (q.terms.length === 0) {
    const filter = event('');
    params.push(q.limit);
    return {
      text: `SELECT ${AUDIT_COLUMNS} FROM audit WHERE at >= $1 AND at < $2 AND (at, chain_id, seq) > ($3, $4, $5)${filter} ORDER BY at, chain_id, seq LIMIT $${params.length}`,
      params,
    };
  }
  const [first, ...rest] = q.terms;
  params.push(first);
  const also = rest.map((t) => {
    params.push(t);
    return ` AND EXISTS (SELECT 1 FROM audit_terms u WHERE u.term = $${params.length} AND u.at = t.at AND u.chain_id = t.chain_id AND u.seq = t.seq)`;
  });
  const filter = event('a.');
  params.push(q.limit);
  const cols = AUDIT_COLUMNS.split(', ').map((c) => `a.${c}`).join(', ');
  return {
    text: `SELECT ${cols} FROM audit_terms t JOIN audit a ON a.chain_id = t.chain_id AND a.seq = t.seq
      WHERE t.term = $6 AND t.at >= $1 AND t.at < $2 AND (t.at, t.chain_id, t.seq) > ($3, $4, $5)${also.join('')}${filter}
      ORDER BY t.at, t.chain_id, t.seq LIMIT $${params.length}`,
    params,
  };
}

/** One page of matching records, and the cursor of the next page (absent on the last). */
export async function searchAudit(sql: Sql, q: AuditQuery): Promise<{ rows: AuditRow[]; next?: SearchCursor }> {
  const { text, params } = searchSql(q);
  const rows = (await sql.all(text, params)).map(toRow);
  const last = rows.at(-1);
  return rows.length === q.limit && last ? { rows, next: { at: last.at, chain: last.chainId, seq: last.seq } } : { rows };
}
