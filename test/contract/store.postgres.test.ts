/** The store contract suites against a real PostgreSQL cluster started for this file (a database per test). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Secret } from '../../src/secret.js';
import { openStore } from '../../src/store/index.js';
import type { PostgresStoreConfig } from '../../src/config.js';
import { postgresAvailable, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { bumpChange } from '../../src/store/changes.js';
import { registerStoreContracts } from './store/all.js';

const available = postgresAvailable();
let pg: PgCluster;
beforeAll(async () => {
  if (available) pg = await startPostgres();
});
afterAll(() => pg?.cleanup());

describe.skipIf(!available)('store contract: postgres', () => {
  registerStoreContracts(async () => {
    const db = await pg.createDatabase();
    const config: PostgresStoreConfig = {
      kind: 'postgres', url: pg.url(db), password: new Secret(pg.password), pool: { max: 8, acquireTimeoutMs: 5000 }, statementTimeoutMs: 5000, changePollMs: 50,
    };
    const clock = new ManualClock(Date.now());
    const store = await openStore(config, { clock, migrate: true });
    return { store, clock, clockIsInjected: false, another: () => openStore(config, { clock }) };
  });
});

describe.skipIf(!available)('postgres change feed: NOTIFY', () => {
  it('a change reaches a watcher on another store through NOTIFY, long before its next poll', async () => {
    const db = await pg.createDatabase();
    const config: PostgresStoreConfig = {
      kind: 'postgres', url: pg.url(db), password: new Secret(pg.password), pool: { max: 4, acquireTimeoutMs: 5000 }, statementTimeoutMs: 5000, changePollMs: 10_000,
    };
    const clock = new ManualClock(Date.now());
    const writer = await openStore(config, { clock, migrate: true });
    const watcher = await openStore({ ...config, changePollMs: 10_000 }, { clock });
    try {
      let seen: string | undefined;
      const arrived = new Promise<void>((resolve) => watcher.changes.watch((topic) => {
        seen = topic;
        resolve();
      }));
      await watcher.changes.poke(); // the baseline
      await new Promise((r) => setTimeout(r, 300)); // let LISTEN connect
      await writer.transaction((tx) => bumpChange(tx, 'keys'));
      // The poll interval is 10 s: only the notification can deliver this within the 5 s wait.
      await Promise.race([arrived, new Promise((_, reject) => setTimeout(() => reject(new Error('no notification within 5 s')), 5000))]);
      expect(seen).toBe('keys');
    } finally {
      await writer.close();
      await watcher.close();
    }
  });
});
