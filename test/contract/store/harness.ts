/**
 * What a store contract suite gets from a backend: a fresh, migrated store on a real database (a
 * SQLite file on disk, or a database of a real PostgreSQL cluster), a second store opened on the
 * same database (another "process" or replica), and the clock the SQLite store uses.
 */
import { ManualClock } from '../../../src/clock.js';
import type { StateStore } from '../../../src/store/index.js';
import type { CommittedHead } from '../../../src/store/sql.js';

export interface StoreUnderTest {
  store: StateStore;
  /** Another store on the same database, as another broker process would open it. */
  another(): Promise<StateStore>;
  clock: ManualClock;
  /** Whether `tx.now()` follows `clock` (SQLite) or is the database's own clock (PostgreSQL). */
  clockIsInjected: boolean;
  /**
   * The audit chains a store's records go to, as of their last commit: its own (the default), or,
   * when every store shares one writer (`serve --workers` on SQLite), the writer's.
   */
  heads?: (s: StateStore) => CommittedHead[];
  /** False when `another()` shares the first store's writer, so that no store writes a chain of its own. */
  writersOfTheirOwn?: boolean;
}

export const headsOf = (t: StoreUnderTest, s: StateStore): CommittedHead[] => (t.heads ? t.heads(s) : s.committedHeads());

export type MakeStore = () => Promise<StoreUnderTest>;

/** Opened stores are closed after each test by the suite that opened them. */
export class Opened {
  readonly #stores: StateStore[] = [];
  add<T extends StateStore>(s: T): T {
    this.#stores.push(s);
    return s;
  }
  async closeAll(): Promise<void> {
    await Promise.all(this.#stores.splice(0).map((s) => s.close().catch(() => undefined)));
  }
}
