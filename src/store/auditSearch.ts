/**
 * Searching the trail: by search terms (auditTerms.ts) and a time range, oldest first, a page at a
 * time from a cursor (time, chain, seq). The most selective term drives the query: an index range
 * of `audit_terms` in time order; every other term is a primary-key probe of the same record. A
 * search by time alone reads the `audit_at` index. Memory is bounded by the page size.
 */
import { AUDIT_COLUMNS, toRow, type AuditRow } from './audit.js';
import type { Sql } from './sql.js';
import { num } from './sql.js';

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
const START: SearchCursor = { at: -1, chain: '', seq: 0 };

export const formatCursor = (c: SearchCursor): string => `${c.at}.${c.chain}.${c.seq}`;

export function parseCursor(s: string): SearchCursor | undefined {
  const m = /^(\d{1,16})\.([A-Za-z0-9_~-]{1,128})\.(\d{1,16})$/.exec(s);
  return m ? { at: Number(m[1]), chain: m[2]!, seq: Number(m[3]) } : undefined;
}

/** A search by time alone (and the event column): the `audit_at` index in order. */
export function timeSql(q: AuditQuery): { text: string; params: unknown[] } {
  const after = q.after ?? START;
  const params: unknown[] = [q.since ?? 0, q.until ?? NEVER, after.at, after.chain, after.seq, q.limit];
  const event = q.event === undefined ? '' : ` AND event = $${params.push(q.event)}`;
  return {
    text: `SELECT ${AUDIT_COLUMNS} FROM audit WHERE at >= $1 AND at < $2 AND (at, chain_id, seq) > ($3, $4, $5)${event} ORDER BY at, chain_id, seq LIMIT $6`,
    params,
  };
}

/** The driving term's next records, in order: one range of the terms' primary key. */
export function candidatesSql(term: string, q: AuditQuery, after: SearchCursor, n: number): { text: string; params: unknown[] } {
  return {
    text: `SELECT at, chain_id, seq FROM audit_terms WHERE term = $1 AND at >= $2 AND at < $3 AND (at, chain_id, seq) > ($4, $5, $6) ORDER BY at, chain_id, seq LIMIT $7`,
    params: [term, q.since ?? 0, q.until ?? NEVER, after.at, after.chain, after.seq, n],
  };
}

type Key = SearchCursor;
const keyValues = (keys: readonly Key[], offset: number) =>
  keys.map((_, i) => `(CAST($${offset + 3 * i + 1} AS BIGINT), CAST($${offset + 3 * i + 2} AS TEXT), CAST($${offset + 3 * i + 3} AS BIGINT))`).join(', ');
const keyParams = (keys: readonly Key[]) => keys.flatMap((k) => [k.at, k.chain, k.seq]);
const keyOf = (k: { at: number; chain: string; seq: number }) => `${k.at}.${k.chain}.${k.seq}`;

/** Which of `keys` also have `term`: one primary-key probe each. */
export function probeSql(term: string, keys: readonly Key[]): { text: string; params: unknown[] } {
  return { text: `SELECT at, chain_id, seq FROM audit_terms WHERE term = $1 AND (at, chain_id, seq) IN (VALUES ${keyValues(keys, 1)})`, params: [term, ...keyParams(keys)] };
}

/** Candidates examined per round of a search by terms. */
const CHUNK = 500;

/**
 * One page of matching records, and the cursor of the next page (absent on the last).
 *
 * By terms, a round at a time: the next CHUNK records of the driving term (in order), kept when
 * they have every other term too (a probe per term and round), their rows read; until the page is
 * full or the range ends. Done in rounds rather than one statement so that no planner can choose
 * to gather every record of a term and sort them: a page costs what it reads, whatever the size.
 */
export async function searchAudit(sql: Sql, q: AuditQuery): Promise<{ rows: AuditRow[]; next?: SearchCursor }> {
  const page = (rows: AuditRow[]) => {
    const last = rows.at(-1);
    return rows.length === q.limit && last ? { rows, next: { at: last.at, chain: last.chainId, seq: last.seq } } : { rows };
  };
  const [first, ...rest] = q.terms;
  if (first === undefined) {
    const { text, params } = timeSql(q);
    return page((await sql.all(text, params)).map(toRow));
  }
  const out: AuditRow[] = [];
  let after = q.after ?? START;
  for (;;) {
    const c = candidatesSql(first, q, after, CHUNK);
    const candidates = (await sql.all(c.text, c.params)).map((r) => ({ at: num(r.at), chain: String(r.chain_id), seq: num(r.seq) }));
    let keep = candidates;
    for (const term of rest) {
      if (keep.length === 0) break;
      const p = probeSql(term, keep);
      const has = new Set((await sql.all(p.text, p.params)).map((r) => keyOf({ at: num(r.at), chain: String(r.chain_id), seq: num(r.seq) })));
      keep = keep.filter((k) => has.has(keyOf(k)));
    }
    if (keep.length) {
      const params: unknown[] = keyParams(keep);
      const event = q.event === undefined ? '' : ` AND event = $${params.push(q.event)}`;
      const rows = new Map((await sql.all(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE (at, chain_id, seq) IN (VALUES ${keyValues(keep, 0)})${event}`, params)).map((r) => {
        const row = toRow(r);
        return [keyOf({ at: row.at, chain: row.chainId, seq: row.seq }), row] as const;
      }));
      for (const k of keep) {
        const row = rows.get(keyOf(k));
        if (row) out.push(row);
        if (out.length === q.limit) return page(out);
      }
    }
    if (candidates.length < CHUNK) return page(out);
    after = candidates.at(-1)!;
  }
}
