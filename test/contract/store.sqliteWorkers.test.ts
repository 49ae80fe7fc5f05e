/**
 * The store contract suites against SQLite as the workers of `serve --workers` see it: every
 * transaction goes to one writer (StoreHost on a real SQLite file) over a channel that clones each
 * message as IPC does, statement by statement for the suites' closures; reads go to the worker's
 * own connection to the file. `another()` is a second worker on the same writer.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { openStore } from '../../src/store/index.js';
import { StoreHost } from '../../src/store/remote/host.js';
import { registerStoreContracts } from './store/all.js';
import { channelPair } from '../helpers/channels.js';

const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-sqlite-workers-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

describe('store contract: sqlite through one writer process', () => {
  registerStoreContracts(async () => {
    const file = path.join(dir, `s${++n}.db`);
    const clock = new ManualClock(Date.now());
    const config = { kind: 'sqlite' as const, file, synchronous: 'full' as const, busyTimeoutMs: 5000, changePollMs: 50 };
    const writer = await openStore(config, { clock, create: true });
    const host = new StoreHost(writer, { interactiveTimeoutMs: 5000 });
    const worker = async () => {
      const [w, h] = channelPair();
      const detach = host.attach(h);
      const store = await openStore(config, { clock, writer: w });
      const close = store.close.bind(store);
      // The writer closes with the last worker of this test.
      store.close = async () => {
        await close();
        detach();
        if (--open === 0) await writer.close();
      };
      open++;
      return store;
    };
    let open = 0;
    return { store: await worker(), clock, clockIsInjected: true, another: worker, heads: () => writer.committedHeads(), writersOfTheirOwn: false };
  });
});
