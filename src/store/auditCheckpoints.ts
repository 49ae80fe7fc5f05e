/**
 * The checkpoint log's rows (`audit_checkpoints`, see audit/checkpoint.ts for what an entry says)
 * and the writer-chain registry (`audit_chains`). An entry is inserted at the next log position
 * only if no other writer took it first (`ON CONFLICT DO NOTHING`): the caller signs, tries, and
 * on a lost race reads the new head and signs again, so nothing is signed while a lock is held.
 */
import type { Row, Sql, TxSql } from './sql.js';
import { num, optStr } from './sql.js';

export interface LogEntry {
  n: number;
  kind: 'checkpoint' | 'anchor';
  /** For a checkpoint: the chain, its last record's number and hash. */
  chainId?: string;
  seq?: number;
  hash?: string;
  at: number;
  /** The signed text, and its SHA-256 (hex): the next entry's `prev`. */
  text: string;
  digest: string;
  sig: Buffer;
  keyId: string;
  /** When a witness that confirms delivery (a file, a webhook) had it, and which. */
  witnessedAt?: number;
  witnessedBy?: string;
}

const COLUMNS = 'n, kind, chain_id, seq, hash, at, text, digest, sig, key_id, witnessed_at, witnessed_by';

const toEntry = (r: Row): LogEntry => {
  const e: LogEntry = { n: num(r.n), kind: r.kind as LogEntry['kind'], at: num(r.at), text: String(r.text), digest: String(r.digest), sig: Buffer.from(r.sig as Uint8Array), keyId: String(r.key_id) };
  if (r.chain_id !== null && r.chain_id !== undefined) Object.assign(e, { chainId: String(r.chain_id), seq: num(r.seq), hash: String(r.hash) });
  const by = optStr(r.witnessed_by);
  if (by !== undefined) Object.assign(e, { witnessedAt: num(r.witnessed_at), witnessedBy: by });
  return e;
};

/** The newest entry's position and text; undefined for an empty log. */
export async function logHead(sql: Sql): Promise<{ n: number; text: string } | undefined> {
  const [r] = await sql.all('SELECT n, text FROM audit_checkpoints ORDER BY n DESC LIMIT 1');
  return r ? { n: num(r.n), text: String(r.text) } : undefined;
}

/** Inserts `e` at its position; false when another writer took that position first. */
export async function insertEntry(tx: TxSql, e: Omit<LogEntry, 'witnessedAt' | 'witnessedBy'>): Promise<boolean> {
  const changed = await tx.run(
    `INSERT INTO audit_checkpoints (n, kind, chain_id, seq, hash, at, text, digest, sig, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (n) DO NOTHING`,
    [e.n, e.kind, e.chainId ?? null, e.seq ?? null, e.hash ?? null, e.at, e.text, e.digest, e.sig, e.keyId],
  );
  return changed === 1;
}

/** The log in order from position `after`, a page at a time. */
export async function* readLog(sql: Sql, page = 1000, after = -1): AsyncGenerator<LogEntry> {
  for (;;) {
    const rows = await sql.all(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE n > $1 ORDER BY n LIMIT $2`, [after, page]);
    for (const r of rows) yield toEntry(r);
    if (rows.length < page) return;
    after = num(rows[rows.length - 1]!.n);
  }
}

export async function logEntry(sql: Sql, n: number): Promise<LogEntry | undefined> {
  const [r] = await sql.all(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE n = $1`, [n]);
  return r ? toEntry(r) : undefined;
}

/** The checkpoint of `chainId` covering the most records. */
export async function lastCheckpointOf(sql: Sql, chainId: string): Promise<LogEntry | undefined> {
  const [r] = await sql.all(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE chain_id = $1 ORDER BY seq DESC, n DESC LIMIT 1`, [chainId]);
  return r ? toEntry(r) : undefined;
}

/** The newest entry a confirming witness had, at or before `at` (for prune). */
export async function lastWitnessed(sql: Sql, at: number): Promise<LogEntry | undefined> {
  const [r] = await sql.all(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE witnessed_at IS NOT NULL AND at <= $1 ORDER BY n DESC LIMIT 1`, [at]);
  return r ? toEntry(r) : undefined;
}

export async function markWitnessed(tx: TxSql, n: number, by: string, at: number): Promise<void> {
  await tx.run('UPDATE audit_checkpoints SET witnessed_at = $1, witnessed_by = $2 WHERE n = $3 AND witnessed_at IS NULL', [at, by, n]);
}

/** Chains whose writer has not said it is done (a final checkpoint at shutdown, or a sweep of a quiet chain). */
export async function openChains(sql: Sql): Promise<string[]> {
  return (await sql.all('SELECT chain_id FROM audit_chains WHERE closed_at IS NULL ORDER BY chain_id')).map((r) => String(r.chain_id));
}

/** Marks chains done (`at`) or, with null, open again (their writer wrote on after a sweep closed them). */
export async function setChainsClosed(tx: TxSql, chainIds: readonly string[], at: number | null): Promise<void> {
  for (const id of chainIds) await tx.run('UPDATE audit_chains SET closed_at = $1 WHERE chain_id = $2', [at, id]);
}

/** The newest prune anchor (it retires the most). */
export async function lastAnchor(sql: Sql): Promise<LogEntry | undefined> {
  const [r] = await sql.all(`SELECT ${COLUMNS} FROM audit_checkpoints WHERE kind = 'anchor' ORDER BY n DESC LIMIT 1`);
  return r ? toEntry(r) : undefined;
}
