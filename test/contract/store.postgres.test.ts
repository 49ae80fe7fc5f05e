/** The store contract suites against a real PostgreSQL cluster started for this file (a database per test). */
import { afterAll, beforeAll, describe } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Secret } from '../../src/secret.js';
import { openStore } from '../../src/store/index.js';
import type { PostgresStoreConfig } from '../../src/config.js';
import { postgresAvailable, startPostgres, type PgCluster } from '../helpers/postgres.js';
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
