/**
 * The audit trail's rows. Records are hash-chained per writer: every writer (a process's
 * connection to the store; with PostgreSQL, each of its pooled connections) starts its own chain
 * with a random id, so replicas and connections never wait for one another on a chain head. A
 * record's hash covers its chain id, sequence number, the previous record's hash, its time and its
 * body, so an edited, removed or reordered record breaks its chain.
 *
 * A writer's chain advances only when its transaction commits; a writer whose transaction fails in
 * an uncertain way (a lost connection at COMMIT) abandons the chain and starts a new one, so a
 * chain never has a gap or a fork.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ChainHead, Sql, TxSql } from './sql.js';
import { num } from './sql.js';

export const GENESIS = '0'.repeat(64);

/** What an audit record says; the store adds chain, seq, prev, hash and time. */
export interface AuditEvent {
  event: string;
  [field: string]: unknown;
}

export interface AuditRow {
  chainId: string;
  seq: number;
  at: number;
  event: string;
  prev: string;
  hash: string;
  body: string;
}

export const newChain = (): ChainHead => ({ chainId: randomBytes(12).toString('base64url'), seq: 0, hash: GENESIS });

export const recordHash = (r: Omit<AuditRow, 'hash' | 'event'>): string =>
  createHash('sha256').update(`keyanchor-audit/1\n${r.chainId}\n${r.seq}\n${r.prev}\n${r.at}\n${r.body}`).digest('hex');

/** Appends `e` to this transaction's chain. */
export async function appendAudit(tx: TxSql, e: AuditEvent, at: number): Promise<AuditRow> {
  const head = tx.chain();
  const row: Omit<AuditRow, 'hash'> = { chainId: head.chainId, seq: head.seq + 1, at, event: e.event, prev: head.hash, body: JSON.stringify(e) };
  return insertAuditRow(tx, row, head);
}

/** Inserts a prepared row (also used by `audit import`) and advances `head` past it. */
export async function insertAuditRow(tx: Sql, row: Omit<AuditRow, 'hash'>, head: ChainHead): Promise<AuditRow> {
  const full: AuditRow = { ...row, hash: recordHash(row) };
  await tx.run('INSERT INTO audit (chain_id, seq, at, event, prev, hash, body) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
    full.chainId, full.seq, full.at, full.event, full.prev, full.hash, full.body,
  ]);
  head.seq = full.seq;
  head.hash = full.hash;
  return full;
}

const toRow = (r: Record<string, unknown>): AuditRow => ({
  chainId: String(r.chain_id), seq: num(r.seq), at: num(r.at), event: String(r.event), prev: String(r.prev), hash: String(r.hash), body: String(r.body),
});

export async function auditChains(sql: Sql): Promise<string[]> {
  return (await sql.all('SELECT DISTINCT chain_id FROM audit ORDER BY chain_id')).map((r) => String(r.chain_id));
}

/** One chain's records in order, a page at a time (bounded memory however long the chain is). */
export async function* readChain(sql: Sql, chainId: string, page = 5000): AsyncGenerator<AuditRow> {
  let after = 0;
  for (;;) {
    const rows = await sql.all('SELECT chain_id, seq, at, event, prev, hash, body FROM audit WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [chainId, after, page]);
    for (const r of rows) yield toRow(r);
    if (rows.length < page) return;
    after = num(rows[rows.length - 1]!.seq);
  }
}

/** Records of any chain with time in [from, to), newest last, at most `limit`. */
export async function auditBetween(sql: Sql, from: number, to: number, limit = 10_000): Promise<AuditRow[]> {
  const rows = await sql.all('SELECT chain_id, seq, at, event, prev, hash, body FROM audit WHERE at >= $1 AND at < $2 ORDER BY at, chain_id, seq LIMIT $3', [from, to, limit]);
  return rows.map(toRow);
}

export async function countAudit(sql: Sql): Promise<number> {
  const [r] = await sql.all('SELECT COUNT(*) AS n FROM audit');
  return num(r?.n);
}
