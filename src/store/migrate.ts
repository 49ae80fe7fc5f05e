/** Applies the schema migrations, and checks that a store's schema is the one this broker knows. */
import { appendAudit } from './audit.js';
import type { Driver } from './driver.js';
import { META, getMeta, setMeta } from './meta.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import type { Sql } from './sql.js';
import { num } from './sql.js';

export class StoreSchemaError extends Error {
  readonly code = 'store_schema';
}

/** The schema version a store is at: 0 for an empty database. */
export async function schemaVersion(sql: Sql): Promise<number> {
  const [t] = await sql.all(sql.dialect.tableExists, ['meta']);
  if (num(t?.n) === 0) return 0;
  const v = await getMeta(sql, META.schemaVersion);
  return v === undefined ? 0 : Number(v);
}

/** The first schema whose audit tables take a `store.migrate` record (terms, chains); earlier steps are named in it. */
const RECORDED_FROM = 3;

/**
 * Brings the store to SCHEMA_VERSION, one transaction per step; idempotent and safe to run
 * concurrently. From schema 3 on, each step's transaction also writes a `store.migrate` audit
 * record naming the steps it completes (earlier steps of the same run included).
 */
export async function migrate(driver: Driver): Promise<{ from: number; to: number }> {
  const from = await schemaVersion(driver.reader);
  refuseNewer(from);
  let unrecorded: Array<{ version: number; what: string }> = [];
  for (const m of MIGRATIONS) {
    await driver.migrationTransaction(async (tx) => {
      const at = await schemaVersion(tx);
      refuseNewer(at);
      if (at >= m.version) return;
      if (at !== m.version - 1) throw new StoreSchemaError(`the store is at schema ${at}; migration ${m.version} needs ${m.version - 1}`);
      for (const stmt of m.sql(driver.dialect.name)) await tx.run(stmt);
      await setMeta(tx, META.schemaVersion, String(m.version));
      const steps = [...unrecorded, { version: m.version, what: m.what }];
      if (m.version < RECORDED_FROM) unrecorded = steps;
      else await appendAudit(tx, { event: 'store.migrate', from: steps[0]!.version - 1, to: m.version, steps: steps.map((s) => `${s.version}: ${s.what}`) }, await tx.now());
    });
    if (unrecorded.at(-1)?.version !== m.version) unrecorded = [];
  }
  return { from, to: SCHEMA_VERSION };
}

/** Throws unless the store's schema is exactly the one this broker knows. */
export async function checkSchema(sql: Sql, where: string): Promise<void> {
  const v = await schemaVersion(sql);
  refuseNewer(v);
  if (v < SCHEMA_VERSION) {
    throw new StoreSchemaError(`${where} is at schema ${v}, this broker needs ${SCHEMA_VERSION}: run \`keyanchor store migrate\``);
  }
}

function refuseNewer(v: number): void {
  if (v > SCHEMA_VERSION) {
    throw new StoreSchemaError(`the store's schema ${v} is newer than this broker knows (${SCHEMA_VERSION}): upgrade keyanchor before using this store`);
  }
}
