/**
 * The policy high-water mark as the broker keeps it — on the state store — for tests that need
 * one: a real SQLite store in `dir` (the file the broker would use), opened on first use. Several
 * instances on one directory share the mark, like a restarted broker or a second process.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../../src/clock.js';
import type { AdvanceResult, PolicyHighWater, PolicyMark } from '../../src/policy/highWater.js';
import { StoreHighWater } from '../../src/store/highWater.js';
import { openStore, type StateStore } from '../../src/store/index.js';

const open: Array<Promise<StateStore>> = [];

export class SqliteHighWater implements PolicyHighWater {
  #store: Promise<StateStore> | undefined;

  constructor(private readonly dir: string) {}

  #hw(): Promise<StoreHighWater> {
    if (!this.#store) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.#store = openStore(
        { kind: 'sqlite', file: path.join(this.dir, 'keyanchor.db'), synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 },
        { clock: systemClock, create: true },
      );
      open.push(this.#store);
    }
    return this.#store.then((s) => new StoreHighWater(s));
  }

  async get(): Promise<PolicyMark | undefined> {
    return (await this.#hw()).get();
  }

  async advance(mark: PolicyMark): Promise<AdvanceResult> {
    return (await this.#hw()).advance(mark);
  }
}

/** Closes every store the instances above opened (call from afterAll). */
export async function closeHighWaters(): Promise<void> {
  await Promise.all(open.splice(0).map((p) => p.then((s) => s.close(), () => undefined)));
}
