/**
 * Migration 3: what makes the audit trail searchable, streamable and checkpointed.
 *
 * - `audit.pos`, a cursor in commit order for `audit tail`. SQLite: the rowid, made an explicit
 *   `INTEGER PRIMARY KEY AUTOINCREMENT` (VACUUM keeps it, a deleted maximum is never reused) by
 *   rebuilding the table, in its old insertion order; one writer at a time holds the write lock, so
 *   positions grow in commit order. PostgreSQL: the id of the inserting transaction
 *   (`txid_current()`); a reader takes only rows below its snapshot's xmin, whose transactions have
 *   all ended, so no row can still appear below the cursor (see auditTail.ts). Old rows get 0.
 * - `audit_at` on (at, chain, seq): a time-range search reads it in the order it answers in.
 * - `audit_terms`: one row per searchable fact of a record (`e:` event, `c:` code, `k:` key, `n:`
 *   node, `s:` software entry, `a:` actor; see auditTerms.ts), keyed (term, at, chain, seq), so a
 *   search reads one index range in time order. Filled for the existing records here, with the
 *   same rules as auditTerms.ts.
 * - `audit_chains`: one row per writer chain (written with its first record), so checkpoint sweeps
 *   find chains without scanning the records.
 * - `audit_checkpoints`: the signed checkpoint log (checkpoints and prune anchors), one hash chain
 *   over every writer (see audit/checkpoint.ts).
 */
import type { Dialect } from './sql.js';

/** Longest value kept in a search term (after its two-character prefix). */
export const TERM_MAX = 512;

const sqliteTerms = `
  INSERT OR IGNORE INTO audit_terms (term, at, chain_id, seq)
  SELECT 'e:' || substr(event, 1, ${TERM_MAX}), at, chain_id, seq FROM audit
  UNION ALL SELECT 'c:' || substr(json_extract(body, '$.code'), 1, ${TERM_MAX}), at, chain_id, seq FROM audit
    WHERE json_valid(body) AND json_type(body, '$.code') = 'text'
  UNION ALL SELECT 'c:' || substr(j.key, 1, ${TERM_MAX}), a.at, a.chain_id, a.seq FROM audit a, json_each(a.body, '$.codes') j
    WHERE json_valid(a.body) AND json_type(a.body, '$.codes') = 'object'
  UNION ALL SELECT 'k:' || substr(json_extract(body, '$.key'), 1, ${TERM_MAX}), at, chain_id, seq FROM audit
    WHERE json_valid(body) AND json_type(body, '$.key') = 'text'
  UNION ALL SELECT 'k:' || substr(json_extract(j.value, '$.name'), 1, ${TERM_MAX}), a.at, a.chain_id, a.seq FROM audit a, json_each(a.body, '$.requested') j
    WHERE json_valid(a.body) AND json_type(a.body, '$.requested') = 'array' AND json_type(j.value, '$.name') = 'text'
  UNION ALL SELECT 'n:' || substr(CASE WHEN json_type(body, '$.node.sanUris[0]') = 'text' THEN json_extract(body, '$.node.sanUris[0]') ELSE json_extract(body, '$.node.subject') END, 1, ${TERM_MAX}),
      at, chain_id, seq FROM audit
    WHERE json_valid(body) AND json_type(body, '$.node') = 'object' AND (json_type(body, '$.node.sanUris[0]') = 'text' OR json_type(body, '$.node.subject') = 'text')
  UNION ALL SELECT 's:' || substr(j.value, 1, ${TERM_MAX}), a.at, a.chain_id, a.seq FROM audit a, json_each(a.body, '$.software') j
    WHERE json_valid(a.body) AND json_type(a.body, '$.software') = 'array' AND j.type = 'text'
  UNION ALL SELECT 'a:' || substr(json_extract(body, '$.actor'), 1, ${TERM_MAX}), at, chain_id, seq FROM audit
    WHERE json_valid(body) AND json_type(body, '$.actor') = 'text'`;

/** PostgreSQL: `json` (not jsonb) accepts every text JSON.stringify writes, \u0000 included (the fields read here are checked ones). */
const postgresTerms = `
  INSERT INTO audit_terms (term, at, chain_id, seq)
  SELECT t.term, a.at, a.chain_id, a.seq
  FROM audit a
  CROSS JOIN LATERAL (SELECT a.body::json AS j) b
  CROSS JOIN LATERAL (
    SELECT 'e:' || left(a.event, ${TERM_MAX}) AS term
    UNION ALL SELECT 'c:' || left(b.j->>'code', ${TERM_MAX}) WHERE json_typeof(b.j->'code') = 'string'
    UNION ALL SELECT 'c:' || left(k.v, ${TERM_MAX}) FROM json_object_keys(CASE WHEN json_typeof(b.j->'codes') = 'object' THEN b.j->'codes' ELSE '{}'::json END) AS k(v)
    UNION ALL SELECT 'k:' || left(b.j->>'key', ${TERM_MAX}) WHERE json_typeof(b.j->'key') = 'string'
    UNION ALL SELECT 'k:' || left(r.v->>'name', ${TERM_MAX}) FROM json_array_elements(CASE WHEN json_typeof(b.j->'requested') = 'array' THEN b.j->'requested' ELSE '[]'::json END) AS r(v)
      WHERE json_typeof(r.v->'name') = 'string'
    UNION ALL SELECT 'n:' || left(CASE WHEN json_typeof(b.j->'node'->'sanUris'->0) = 'string' THEN b.j->'node'->'sanUris'->>0 ELSE b.j->'node'->>'subject' END, ${TERM_MAX})
      WHERE json_typeof(b.j->'node') = 'object' AND (json_typeof(b.j->'node'->'sanUris'->0) = 'string' OR json_typeof(b.j->'node'->'subject') = 'string')
    UNION ALL SELECT 's:' || left(e.v#>>'{}', ${TERM_MAX}) FROM json_array_elements(CASE WHEN json_typeof(b.j->'software') = 'array' THEN b.j->'software' ELSE '[]'::json END) AS e(v)
      WHERE json_typeof(e.v) = 'string'
    UNION ALL SELECT 'a:' || left(b.j->>'actor', ${TERM_MAX}) WHERE json_typeof(b.j->'actor') = 'string'
  ) t
  ON CONFLICT DO NOTHING`;

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
    d === 'sqlite' ? sqliteTerms : postgresTerms,
    `CREATE TABLE audit_chains (chain_id TEXT PRIMARY KEY, started_at BIGINT NOT NULL, closed_at BIGINT)`,
    `INSERT INTO audit_chains (chain_id, started_at) SELECT chain_id, MIN(at) FROM audit GROUP BY chain_id`,
    checkpoints(d),
    `CREATE INDEX audit_checkpoints_chain ON audit_checkpoints (chain_id, seq)`,
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
       pos INTEGER PRIMARY KEY AUTOINCREMENT,
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
