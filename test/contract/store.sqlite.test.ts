/** The store contract suites against real SQLite files on disk (two connections = two processes' view). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { openStore } from '../../src/store/index.js';
import { registerStoreContracts } from './store/all.js';

const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-sqlite-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describe('store contract: sqlite', () => {
  registerStoreContracts(async () => {
    const file = path.join(dir, `s${++n}.db`);
    const clock = new ManualClock(Date.now());
    const config = { kind: 'sqlite' as const, file, synchronous: 'full' as const, busyTimeoutMs: 5000, changePollMs: 50 };
    const store = await openStore(config, { clock, create: true });
    return { store, clock, clockIsInjected: true, another: () => openStore(config, { clock }) };
  });
});
