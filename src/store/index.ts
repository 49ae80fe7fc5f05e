/**
 * Opens the state store named by `config.store.kind`. Backend-only dependencies (better-sqlite3,
 * pg) load inside their backend. The embedded SQLite store may be created and migrated by the
 * process that opens it (`create`); a PostgreSQL database is migrated only by `keyanchor store
 * migrate`, and every process refuses a schema other than the one it knows.
 */
import { readFileSync } from 'node:fs';
import type { Clock } from '../clock.js';
import type { StoreConfig } from '../config.js';
import type { Driver } from './driver.js';
import { checkSchema, migrate } from './migrate.js';
import type { Channel } from './remote/protocol.js';
import { StateStore } from './stateStore.js';

export { StateStore } from './stateStore.js';
export type { TxSql, Sql } from './sql.js';

export class StoreMissingError extends Error {
  readonly code = 'store_missing';
}

export interface OpenStoreOptions {
  clock: Clock;
  /** SQLite: create the file and migrate it when needed. Never applies to PostgreSQL. */
  create?: boolean;
  /** Apply migrations (PostgreSQL: `keyanchor store migrate` only). */
  migrate?: boolean;
  onError?: (e: unknown) => void;
  /**
   * SQLite: the store's writer is in another process (the primary of `serve --workers`), reached
   * over this channel; this process only reads the file itself (remote/). Ignored for PostgreSQL.
   */
  writer?: Channel;
}

/** Where a store is, for messages: the file, or the URL (it never holds the password). */
export const storeWhere = (c: StoreConfig): string => (c.kind === 'sqlite' ? c.file : c.url);

export async function openDriver(c: StoreConfig, o: OpenStoreOptions): Promise<Driver> {
  const onError = o.onError ?? (() => undefined);
  switch (c.kind) {
    case 'sqlite': {
      if (o.writer) {
        const { openRemoteSqliteDriver } = await import('./remote/driver.js');
        return openRemoteSqliteDriver({ file: c.file, busyTimeoutMs: c.busyTimeoutMs, synchronous: c.synchronous, channel: o.writer });
      }
      const { openSqliteDriver, SqliteStoreMissing } = await import('./sqlite/driver.js');
      try {
        return await openSqliteDriver({ file: c.file, clock: o.clock, synchronous: c.synchronous, busyTimeoutMs: c.busyTimeoutMs, create: o.create ?? false });
      } catch (e) {
        if (e instanceof SqliteStoreMissing) throw new StoreMissingError(`${e.message}: start the broker (keyanchor serve) or run \`keyanchor keys create --init NAME\``);
        throw e;
      }
    }
    case 'postgres': {
      const { openPostgresDriver } = await import('./postgres/driver.js');
      const read = (f: string | undefined) => (f ? readFileSync(f, 'utf8') : undefined);
      const ssl = c.tls ? { ca: read(c.tls.ca), cert: read(c.tls.cert), key: read(c.tls.key), rejectUnauthorized: true } : undefined;
      return openPostgresDriver({
        url: c.url,
        ...(c.password ? { password: c.password.reveal() } : {}),
        ...(ssl ? { ssl } : {}),
        poolMax: c.pool.max,
        connectTimeoutMs: c.pool.acquireTimeoutMs,
        statementTimeoutMs: c.statementTimeoutMs,
        onError,
      });
    }
  }
}

export async function openStore(c: StoreConfig, o: OpenStoreOptions): Promise<StateStore> {
  const driver = await openDriver(c, o);
  try {
    if (o.migrate || (c.kind === 'sqlite' && o.create && !o.writer)) await migrate(driver);
    await checkSchema(driver.reader, `the store ${storeWhere(c)}`);
  } catch (e) {
    await driver.close();
    throw e;
  }
  return new StateStore(c.kind, storeWhere(c), driver, o.clock, c.changePollMs, o.onError ?? (() => undefined));
}
