/**
 * The keystore's rows: keys, their versions (state, who/when, the wrapped blob — never a clear
 * key) and per-version release statistics. Lifecycle operations run these inside a transaction
 * that also writes their audit record (keys/keyService.ts).
 */
import type { WrappedKey } from '../custody/custodian.js';
import type { KeyState } from '../keys/keystoreFile.js';
import type { Row, Sql, TxSql } from './sql.js';
import { inList, num, optStr, valuesList } from './sql.js';

export interface StoredVersion {
  version: number;
  state: KeyState;
  createdAt: string;
  createdBy: string;
  changedAt?: string;
  changedBy?: string;
  /** Absent once destroyed: the blob is erased. */
  wrapped?: WrappedKey;
}

export interface StoredKey {
  name: string;
  createdAt: string;
  createdBy: string;
  versions: StoredVersion[];
}

export interface ReleaseStats {
  count: number;
  lastAt: string;
  lastNode: string;
  lastSoftware: string[];
}

const VERSION_COLUMNS = 'name, version, state, created_at, created_by, changed_at, changed_by, wrap_alg, kek_id, blob';

function version(r: Row, withBlob: boolean): StoredVersion {
  const v: StoredVersion = { version: num(r.version), state: r.state as KeyState, createdAt: String(r.created_at), createdBy: String(r.created_by) };
  const changedAt = optStr(r.changed_at);
  if (changedAt !== undefined) v.changedAt = changedAt;
  const changedBy = optStr(r.changed_by);
  if (changedBy !== undefined) v.changedBy = changedBy;
  if (withBlob && r.blob !== null && r.blob !== undefined) v.wrapped = { alg: String(r.wrap_alg), kekId: String(r.kek_id), blob: Buffer.from(r.blob as Uint8Array) };
  return v;
}

/** Keys (all, or the named ones), sorted by name, versions ascending. Blobs only when asked for. */
export async function readKeys(sql: Sql, opts: { names?: readonly string[]; blobs?: boolean } = {}): Promise<StoredKey[]> {
  const where = opts.names ? ` WHERE name IN (${inList(opts.names.length)})` : '';
  if (opts.names?.length === 0) return [];
  const params = opts.names ?? [];
  const keys = await sql.all(`SELECT name, created_at, created_by FROM keys${where} ORDER BY name`, params);
  const cols = opts.blobs ? VERSION_COLUMNS : 'name, version, state, created_at, created_by, changed_at, changed_by';
  const versions = await sql.all(`SELECT ${cols} FROM key_versions${where} ORDER BY name, version`, params);
  const byName = new Map<string, StoredKey>();
  for (const k of keys) byName.set(String(k.name), { name: String(k.name), createdAt: String(k.created_at), createdBy: String(k.created_by), versions: [] });
  for (const v of versions) byName.get(String(v.name))?.versions.push(version(v, opts.blobs ?? false));
  return [...byName.values()];
}

export async function keyExists(sql: Sql, name: string): Promise<boolean> {
  return (await sql.all('SELECT 1 AS x FROM keys WHERE name = $1', [name])).length > 0;
}

export async function countVersions(sql: Sql): Promise<number> {
  const [r] = await sql.all('SELECT COUNT(*) AS n FROM key_versions');
  return num(r?.n);
}

/** Inserts a key record; false when the name is taken. */
export async function insertKey(tx: TxSql, k: Omit<StoredKey, 'versions'>): Promise<boolean> {
  return (await tx.run('INSERT INTO keys (name, created_at, created_by) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [k.name, k.createdAt, k.createdBy])) === 1;
}

/** Inserts a version; false when that number is taken (another writer rotated first). */
export async function insertVersion(tx: TxSql, name: string, v: StoredVersion): Promise<boolean> {
  const w = v.wrapped;
  const n = await tx.run(
    `INSERT INTO key_versions (${VERSION_COLUMNS}) VALUES ${valuesList(1, 10)} ON CONFLICT (name, version) DO NOTHING`,
    [name, v.version, v.state, v.createdAt, v.createdBy, v.changedAt ?? null, v.changedBy ?? null, w?.alg ?? null, w?.kekId ?? null, w?.blob ?? null],
  );
  return n === 1;
}

export async function newestVersion(sql: Sql, name: string): Promise<number | undefined> {
  const [r] = await sql.all('SELECT MAX(version) AS v FROM key_versions WHERE name = $1', [name]);
  return r?.v === null || r?.v === undefined ? undefined : num(r.v);
}

/** Reads one version for a state change, locked until the transaction ends. */
export async function lockVersion(tx: TxSql, name: string, v: number): Promise<StoredVersion | undefined> {
  const [r] = await tx.all(`SELECT ${VERSION_COLUMNS} FROM key_versions WHERE name = $1 AND version = $2${tx.dialect.forUpdate}`, [name, v]);
  return r ? version(r, true) : undefined;
}

/** Sets a version's state; destroying it erases the wrapped blob (crypto-shredding). */
export async function setVersionState(tx: TxSql, name: string, v: number, to: KeyState, at: string, by: string): Promise<void> {
  const erase = to === 'destroyed' ? ', wrap_alg = NULL, kek_id = NULL, blob = NULL' : '';
  await tx.run(`UPDATE key_versions SET state = $3, changed_at = $4, changed_by = $5${erase} WHERE name = $1 AND version = $2`, [name, v, to, at, by]);
}

/**
 * The versions a release hands out, read inside its transaction (so a rotation committed by any
 * replica an instant before is seen): for each request, the named version if enabled, else the
 * newest enabled one. Undefined for a request with no such version.
 */
export async function resolveVersions(sql: Sql, requests: ReadonlyArray<{ name: string; version?: number }>): Promise<Array<{ name: string; version: StoredVersion } | undefined>> {
  const names = [...new Set(requests.map((r) => r.name))];
  if (names.length === 0) return [];
  const rows = await sql.all(`SELECT ${VERSION_COLUMNS} FROM key_versions WHERE name IN (${inList(names.length)}) AND state = 'enabled' ORDER BY name, version`, names);
  const enabled = new Map<string, StoredVersion[]>();
  for (const r of rows) {
    const list = enabled.get(String(r.name)) ?? [];
    list.push(version(r, true));
    enabled.set(String(r.name), list);
  }
  return requests.map((req) => {
    const list = enabled.get(req.name) ?? [];
    const v = req.version === undefined ? list.at(-1) : list.find((x) => x.version === req.version);
    return v ? { name: req.name, version: v } : undefined;
  });
}

/** Some version that still has a blob (the newest), to prove custody can unwrap: readiness. */
export async function anyWrappedVersion(sql: Sql): Promise<{ name: string; version: StoredVersion } | undefined> {
  const [r] = await sql.all(`SELECT ${VERSION_COLUMNS} FROM key_versions WHERE blob IS NOT NULL ORDER BY created_at DESC, name, version DESC LIMIT 1`);
  return r ? { name: String(r.name), version: version(r, true) } : undefined;
}

/** Adds one release of each version to its statistics. */
export async function countRelease(tx: TxSql, released: ReadonlyArray<{ name: string; version: number }>, at: string, node: string, software: readonly string[]): Promise<void> {
  const sorted = [...released].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version));
  for (const r of sorted) {
    await tx.run(
      `INSERT INTO release_stats (name, version, count, last_at, last_node, last_software) VALUES ($1, $2, 1, $3, $4, $5)
       ON CONFLICT (name, version) DO UPDATE SET count = release_stats.count + 1, last_at = excluded.last_at,
         last_node = excluded.last_node, last_software = excluded.last_software`,
      [r.name, r.version, at, node, JSON.stringify(software)],
    );
  }
}

/** Release statistics per version of the named keys (all keys when none are named). */
export async function readReleaseStats(sql: Sql, names?: readonly string[]): Promise<Map<string, Map<number, ReleaseStats>>> {
  if (names?.length === 0) return new Map();
  const where = names ? ` WHERE name IN (${inList(names.length)})` : '';
  const rows = await sql.all(`SELECT name, version, count, last_at, last_node, last_software FROM release_stats${where}`, names ?? []);
  const out = new Map<string, Map<number, ReleaseStats>>();
  for (const r of rows) {
    const m = out.get(String(r.name)) ?? new Map<number, ReleaseStats>();
    m.set(num(r.version), { count: num(r.count), lastAt: String(r.last_at), lastNode: String(r.last_node), lastSoftware: JSON.parse(String(r.last_software)) as string[] });
    out.set(String(r.name), m);
  }
  return out;
}
