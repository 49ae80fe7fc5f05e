/** The meta table: schema version, the KEK identity, the nonce key; one row per name. */
import type { Sql } from './sql.js';

export const META = {
  schemaVersion: 'schema_version',
  /** The identity of the KEK that wraps every key version in this store. */
  kekId: 'kek_id',
  custody: 'custody',
  /** The HMAC key of nonce tokens (base64), made once and shared by every replica. */
  nonceKey: 'nonce_key',
  createdAt: 'created_at',
  /** A random id every audit checkpoint of this store names (audit/checkpoint.ts). */
  auditStoreId: 'audit_store_id',
  /** The id of the key that signs this store's audit checkpoints (SHA-256 of its SPKI). */
  auditKeyId: 'audit_key_id',
} as const;

export async function getMeta(sql: Sql, name: string): Promise<string | undefined> {
  const [r] = await sql.all<{ value: string }>('SELECT value FROM meta WHERE name = $1', [name]);
  return r?.value;
}

export async function setMeta(sql: Sql, name: string, value: string): Promise<void> {
  await sql.run('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [name, value]);
}

/** Stores `value` unless the name has one already; returns the value that stands. */
export async function metaOnce(sql: Sql, name: string, value: string): Promise<string> {
  await sql.run('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, value]);
  return (await getMeta(sql, name))!;
}
