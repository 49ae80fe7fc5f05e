/**
 * The audit trail's rows. Records are hash-chained per writer: every writer (a process's
 * connection to the store; with PostgreSQL, each of its pooled connections) starts its own chain
 * with a random id, so replicas and connections never wait for one another on a chain head. A
 * record's hash covers its chain id, sequence number, the previous record's hash, its time and its
 * body, so an edited, removed or reordered record breaks its chain.
 *
 * A writer's chain advances only when its transaction commits; a writer whose transaction fails in
 * an uncertain way (a lost connection at COMMIT) abandons the chain and starts a new one, so a
 * chain never has a gap or a fork. A chain's first record registers the chain (`audit_chains`) in
 * the same transaction. Search terms are added afterwards, in bulk, by the indexer (auditIndex.ts),
 * so the release transaction writes one row as before.
 *
 * `appendAudit(tx, event, at)` is the one way the broker writes a record.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BrokerError } from '../errors.js';
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

/** Inserts a prepared row (also used by `audit import`), and advances `head` past it. */
export async function insertAuditRow(tx: Sql, row: Omit<AuditRow, 'hash'>, head: ChainHead): Promise<AuditRow> {
  const full: AuditRow = { ...row, hash: recordHash(row) };
  await tx.run('INSERT INTO audit (chain_id, seq, at, event, prev, hash, body) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
    full.chainId, full.seq, full.at, full.event, full.prev, full.hash, full.body,
  ]);
  if (full.seq === 1) await tx.run('INSERT INTO audit_chains (chain_id, started_at) VALUES ($1, $2)', [full.chainId, full.at]);
  head.seq = full.seq;
  head.hash = full.hash;
  return full;
}

/** Thrown inside the probe's transaction to roll it back; passes through StateStore.transaction as is. */
class ProbeRolledBack extends BrokerError {
  constructor() {
    super('internal', 'audit write probe: rolled back on purpose');
  }
}

/**
 * Proves that an audit record can be written now: inserts one under a chain id of its own, then
 * rolls the transaction back, so nothing stays. Throws what the write threw (store_unavailable).
 */
export async function probeAuditWrite(transaction: (fn: (tx: TxSql) => Promise<void>) => Promise<void>, at: number): Promise<void> {
  try {
    await transaction(async (tx) => {
      const chain = `~probe-${randomBytes(6).toString('hex')}`;
      await tx.run('INSERT INTO audit (chain_id, seq, at, event, prev, hash, body) VALUES ($1, 1, $2, $3, $4, $4, $5)', [chain, at, 'probe', GENESIS, '{"event":"probe"}']);
      throw new ProbeRolledBack();
    });
  } catch (e) {
    if (!(e instanceof ProbeRolledBack)) throw e;
  }
}

export const AUDIT_COLUMNS = 'chain_id, seq, at, event, prev, hash, body';

export const toRow = (r: Record<string, unknown>): AuditRow => ({
  chainId: String(r.chain_id), seq: num(r.seq), at: num(r.at), event: String(r.event), prev: String(r.prev), hash: String(r.hash), body: String(r.body),
});

/** Every chain that has records, from the records themselves (a full index scan: for verification). */
export async function auditChains(sql: Sql): Promise<string[]> {
  return (await sql.all('SELECT DISTINCT chain_id FROM audit ORDER BY chain_id')).map((r) => String(r.chain_id));
}

/** One chain's records in order, from `after`, a page at a time (bounded memory however long the chain is). */
export async function* readChain(sql: Sql, chainId: string, page = 5000, after = 0): AsyncGenerator<AuditRow> {
  for (;;) {
    const rows = await sql.all(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [chainId, after, page]);
    for (const r of rows) yield toRow(r);
    if (rows.length < page) return;
    after = num(rows[rows.length - 1]!.seq);
  }
}

/** A chain's first and last record numbers; undefined when it has none. */
export async function chainExtent(sql: Sql, chainId: string): Promise<{ first: number; last: number } | undefined> {
  const [r] = await sql.all('SELECT MIN(seq) AS first, MAX(seq) AS last FROM audit WHERE chain_id = $1', [chainId]);
  return r?.last === null || r?.last === undefined ? undefined : { first: num(r.first), last: num(r.last) };
}

export async function auditRecord(sql: Sql, chainId: string, seq: number): Promise<AuditRow | undefined> {
  const [r] = await sql.all(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE chain_id = $1 AND seq = $2`, [chainId, seq]);
  return r ? toRow(r) : undefined;
}
