/**
 * Migration 3: what makes the audit trail searchable, streamable and checkpointed.
 *
 * - `audit.pos`, a cursor in commit order for `audit tail`. SQLite: the rowid, made an explicit
 *   `INTEGER PRIMARY KEY` (VACUUM keeps it) by rebuilding the table, in its old insertion order;
 *   one writer at a time holds the write lock, so positions grow in commit order. A new row takes
 *   the largest position + 1, and the largest is never deleted (prune writes its own record first,
 *   audit/prune.ts), so no position is used twice (AUTOINCREMENT would cost a write per record). PostgreSQL: the id of the inserting transaction
 *   (`txid_current()`); a reader takes only rows below its snapshot's xmin, whose transactions have
 *   all ended, so no row can still appear below the cursor (see auditTail.ts). Old rows get 0.
 * - `audit_at` on (at, chain, seq): a time-range search reads it in the order it answers in.
 * - `audit_terms`: one row per searchable fact of a record (`e:` event but release, `c:` code, `k:` key, `n:`
 *   node, `s:` software entry, `a:` actor; see auditTerms.ts), keyed (term, at, chain, seq), so a
 *   search reads one index range in time order. Filled by the indexer (auditIndex.ts), which
 *   starts with the records written before this migration.
 * - `audit_chains`: one row per writer chain (written with its first record), so checkpoint sweeps
 *   find chains without scanning the records.
 * - `audit_checkpoints`: the signed checkpoint log (checkpoints and prune anchors), one hash chain
 *   over every writer (see audit/checkpoint.ts).
 */
import type { Dialect } from './sql.js';

/** Longest value kept in a search term (after its two-character prefix). */
export const TERM_MAX = 512;

const checkpoints = (d: Dialect['name']) => `CREATE TABLE audit_checkpoints (
  n BIGINT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('checkpoint', 'anchor')),
  chain_id TEXT, seq BIGINT, hash TEXT,
  at BIGINT NOT NULL,
  text TEXT NOT NULL,
  digest TEXT NOT NULL,
  sig ${d === 'postgres' ? 'BYTEA' : 'BLOB'} NOT NULL,
  key_id TEXT NOT NULL,
  witnessed_at BIGINT, witnessed_by TEXT)`;

export function auditMigration(d: Dialect['name']): string[] {
  const common = [
    `CREATE TABLE audit_terms (term TEXT NOT NULL, at BIGINT NOT NULL, chain_id TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (term, at, chain_id, seq))${d === 'sqlite' ? ' WITHOUT ROWID' : ''}`,
    `CREATE TABLE audit_chains (chain_id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, closed_at BIGINT)`,
    `INSERT INTO audit_chains (chain_id, started_at) SELECT chain_id, MIN(at) FROM audit GROUP BY chain_id`,
    checkpoints(d),
    `CREATE INDEX audit_checkpoints_chain ON audit_checkpoints (chain_id, seq)`,
    `CREATE INDEX audit_checkpoints_kind ON audit_checkpoints (kind, n)`,
  ];
  if (d === 'postgres') {
    return [
      `ALTER TABLE audit ADD COLUMN pos BIGINT NOT NULL DEFAULT 0`,
      `ALTER TABLE audit ALTER COLUMN pos SET DEFAULT txid_current()`,
      `CREATE INDEX audit_pos ON audit (pos, chain_id, seq)`,
      `DROP INDEX audit_at`,
      `CREATE INDEX audit_at ON audit (at, chain_id, seq)`,
      ...common,
    ];
  }
  return [
    `CREATE TABLE audit_v3 (
       pos INTEGER PRIMARY KEY,
       chain_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, event TEXT NOT NULL,
       prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL,
       UNIQUE (chain_id, seq))`,
    `INSERT INTO audit_v3 (chain_id, seq, at, event, prev, hash, body) SELECT chain_id, seq, at, event, prev, hash, body FROM audit ORDER BY rowid`,
    `DROP TABLE audit`,
    `ALTER TABLE audit_v3 RENAME TO audit`,
    `CREATE INDEX audit_at ON audit (at, chain_id, seq)`,
    ...common,
  ];
}
