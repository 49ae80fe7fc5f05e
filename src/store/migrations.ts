/**
 * The schema, as numbered migrations, one text per dialect where the types differ. A store records
 * the version it is at in `meta.schema_version`; `migrate` applies the missing steps in one
 * transaction each; a broker refuses a store whose version is newer than the newest it knows.
 *
 * Times are epoch milliseconds (BIGINT) or ISO strings where they are shown to people as such;
 * JSON is TEXT in both backends; blobs are BLOB / BYTEA.
 */
import { auditMigration } from './auditSchema.js';
import type { Dialect } from './sql.js';

export interface Migration {
  version: number;
  what: string;
  sql: (d: Dialect['name']) => string[];
}

const bytes = (d: Dialect['name']) => (d === 'postgres' ? 'BYTEA' : 'BLOB');
const double = (d: Dialect['name']) => (d === 'postgres' ? 'DOUBLE PRECISION' : 'REAL');

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'meta, nonces, keystore, release statistics, limits, counters, suspensions, audit, policy high-water mark, change counters',
    sql: (d) => [
      `CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      `CREATE TABLE consumed_nonces (nonce ${bytes(d)} PRIMARY KEY, expires_at BIGINT NOT NULL)`,
      `CREATE INDEX consumed_nonces_expiry ON consumed_nonces (expires_at)`,
      `CREATE TABLE keys (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, created_by TEXT NOT NULL)`,
      `CREATE TABLE key_versions (
         name TEXT NOT NULL REFERENCES keys (name),
         version INTEGER NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('enabled', 'disabled', 'destroyed')),
         created_at TEXT NOT NULL, created_by TEXT NOT NULL,
         changed_at TEXT, changed_by TEXT,
         wrap_alg TEXT, kek_id TEXT, blob ${bytes(d)},
         PRIMARY KEY (name, version),
         CHECK ((state = 'destroyed') = (blob IS NULL)))`,
      `CREATE TABLE release_stats (
         name TEXT NOT NULL, version INTEGER NOT NULL, count BIGINT NOT NULL,
         last_at TEXT NOT NULL, last_node TEXT NOT NULL, last_software TEXT NOT NULL,
         PRIMARY KEY (name, version))`,
      `CREATE TABLE limit_windows (window_key TEXT PRIMARY KEY, tat ${double(d)} NOT NULL)`,
      `CREATE INDEX limit_windows_tat ON limit_windows (tat)`,
      `CREATE TABLE counters (counter_key TEXT NOT NULL, bucket BIGINT NOT NULL, count BIGINT NOT NULL, PRIMARY KEY (counter_key, bucket))`,
      `CREATE TABLE suspensions (
         id TEXT PRIMARY KEY, subject TEXT NOT NULL, reason TEXT NOT NULL, figures TEXT NOT NULL,
         created_by TEXT NOT NULL, created_at BIGINT NOT NULL, cleared_by TEXT, cleared_at BIGINT)`,
      `CREATE UNIQUE INDEX suspensions_active ON suspensions (subject) WHERE cleared_at IS NULL`,
      `CREATE TABLE policy_high_water (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL, manifest_sha256 TEXT NOT NULL, root TEXT)`,
      `CREATE TABLE audit (
         chain_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, event TEXT NOT NULL,
         prev TEXT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL,
         PRIMARY KEY (chain_id, seq))`,
      `CREATE INDEX audit_at ON audit (at)`,
      `CREATE TABLE changes (topic TEXT PRIMARY KEY, counter BIGINT NOT NULL)`,
      `INSERT INTO changes (topic, counter) VALUES ('keys', 0), ('suspensions', 0), ('policy', 0)`,
    ],
  },
  {
    version: 2,
    what: 'suspensions by subject, for their history (keyanchor suspend show); limit windows without an index on their TAT, which every charge rewrote (the purge scans the small table instead, and PostgreSQL can update a window in place)',
    sql: () => [`CREATE INDEX suspensions_subject ON suspensions (subject, created_at)`, `DROP INDEX limit_windows_tat`],
  },
  { version: 3, what: 'audit: commit-order positions, search terms, writer chains, the signed checkpoint log', sql: auditMigration },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
