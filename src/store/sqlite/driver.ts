/**
 * The SQLite backend (the embedded default): one database file in the state directory, WAL mode,
 * better-sqlite3 (loaded only here). better-sqlite3 is synchronous, so this driver serialises
 * transactions in-process: jobs wait in a queue, and the jobs waiting at one moment run as one
 * transaction, each in its own SAVEPOINT (group commit: one commit, and with synchronous=FULL one
 * flush, for all of them). A job that throws rolls back to its savepoint and fails alone; if the
 * commit fails, every job of the batch fails. Several processes on one host share the file
 * through SQLite's own locks (BEGIN IMMEDIATE, busy_timeout).
 *
 * Reads outside transactions use a second connection, so they only ever see committed state.
 */
import { chmodSync, existsSync, statSync } from 'node:fs';
import type BetterSqlite3 from 'better-sqlite3';
import type { Clock } from '../../clock.js';
import { newChain } from '../audit.js';
import type { Driver } from '../driver.js';
import type { ChainHead, CommittedHead, Dialect, Row, Sql, TxSql } from '../sql.js';

export interface SqliteOptions {
  file: string;
  clock: Clock;
  /** `normal`: no flush per commit (WAL synced at checkpoints); `full`: one flush per commit (per batch). */
  synchronous: 'normal' | 'full';
  busyTimeoutMs: number;
  /** Create the file when it does not exist. */
  create: boolean;
  /** Most jobs per batch. */
  maxBatch?: number;
}

export class SqliteStoreMissing extends Error {
  readonly code = 'store_missing';
}

export const DIALECT: Dialect = { name: 'sqlite', forUpdate: '', tableExists: "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1" };
/** `$1` → `@p1`: named parameters, bound from an object (better-sqlite3 binds `?1` positionally). */
const toSqlite = (text: string) => text.replace(/\$(\d+)/g, '@p$1');
const bind = (params: readonly unknown[]): [Record<string, unknown>] | [] => {
  if (params.length === 0) return [];
  const o: Record<string, unknown> = {};
  params.forEach((v, i) => (o[`p${i + 1}`] = v));
  return [o];
};

export class Connection implements Sql {
  readonly dialect = DIALECT;
  readonly #stmts = new Map<string, BetterSqlite3.Statement>();
  constructor(readonly db: BetterSqlite3.Database) {}

  #prepare(text: string): BetterSqlite3.Statement {
    let s = this.#stmts.get(text);
    if (!s) this.#stmts.set(text, (s = this.db.prepare(toSqlite(text))));
    return s;
  }
  allSync<R extends Row>(text: string, params: readonly unknown[] = []): R[] {
    return this.#prepare(text).all(...bind(params)) as R[];
  }
  runSync(text: string, params: readonly unknown[] = []): number {
    const s = this.#prepare(text);
    if (s.reader) {
      s.all(...bind(params));
      return 0;
    }
    return s.run(...bind(params)).changes;
  }
  async all<R extends Row>(text: string, params?: readonly unknown[]): Promise<R[]> {
    return this.allSync<R>(text, params);
  }
  async run(text: string, params?: readonly unknown[]): Promise<number> {
    return this.runSync(text, params);
  }
}

interface Job {
  fn: (tx: TxSql) => Promise<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export async function openSqliteDriver(o: SqliteOptions): Promise<Driver> {
  if (!o.create && !existsSync(o.file)) throw new SqliteStoreMissing(`the store ${o.file} does not exist`);
  const writer = await openConnection(o);
  chmodSync(o.file, 0o600);
  writer.db.pragma('journal_mode = WAL');
  const reader = await openConnection(o);
  const { dev, ino } = statSync(o.file);
  return new SqliteDriver(writer, reader, o.clock, o.maxBatch ?? 256, { file: o.file, dev, ino });
}

/** The database file as opened: a file removed or replaced under the broker takes no more writes. */
interface FileIdentity {
  file: string;
  dev: number;
  ino: number;
}

/** One connection to an existing file, with the store's pragmas (a worker's reader: store/remote/). */
export async function openConnection(o: Pick<SqliteOptions, 'file' | 'busyTimeoutMs' | 'synchronous'>): Promise<Connection> {
  const { default: Database } = await import('better-sqlite3');
  const c = new Connection(new Database(o.file, { timeout: o.busyTimeoutMs }));
  c.db.pragma(`synchronous = ${o.synchronous.toUpperCase()}`);
  c.db.pragma('secure_delete = ON');
  c.db.pragma('foreign_keys = ON');
  return c;
}

class SqliteDriver implements Driver {
  readonly dialect = DIALECT;
  readonly #queue: Job[] = [];
  #scheduled = false;
  #head: ChainHead = newChain();
  readonly #committed = new Map<string, { seq: number; hash: string }>();
  #closed = false;

  constructor(
    private readonly writer: Connection,
    readonly reader: Connection,
    private readonly clock: Clock,
    private readonly maxBatch: number,
    private readonly identity: FileIdentity,
  ) {}

  /**
   * Throws when the path no longer names the file this driver opened (removed, or replaced by
   * another): writes would go to a file no one will open again, and their records would vanish.
   */
  #checkFile(): void {
    const st = statSync(this.identity.file, { throwIfNoEntry: false });
    if (!st || st.ino !== this.identity.ino || st.dev !== this.identity.dev) {
      throw new Error(`the store file ${this.identity.file} was ${st ? 'replaced' : 'removed'} while open: nothing more is written to it; restart the broker`);
    }
  }

  transaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the I/O callbacks of this turn: everything that arrives meanwhile joins the batch.
        setImmediate(() => void this.#flush());
      }
    });
  }

  async migrationTransaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T> {
    return this.transaction((tx) => fn(tx));
  }

  async #flush(): Promise<void> {
    const batch = this.#queue.splice(0, this.maxBatch);
    const w = this.writer;
    const start = { ...this.#head };
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    let committed = false;
    try {
      this.#checkFile();
      w.runSync('BEGIN IMMEDIATE');
      for (const [i, job] of batch.entries()) {
        const before = { seq: this.#head.seq, hash: this.#head.hash };
        w.runSync(`SAVEPOINT j${i}`);
        try {
          const value = await job.fn(this.#tx());
          w.runSync(`RELEASE j${i}`);
          results.push({ ok: true, value });
        } catch (error) {
          w.runSync(`ROLLBACK TO j${i}`);
          w.runSync(`RELEASE j${i}`);
          Object.assign(this.#head, before);
          results.push({ ok: false, error });
        }
      }
      w.runSync('COMMIT');
      committed = true;
      if (this.#head.seq > 0) this.#committed.set(this.#head.chainId, { seq: this.#head.seq, hash: this.#head.hash });
    } catch (error) {
      if (w.db.inTransaction) {
        try {
          w.runSync('ROLLBACK');
        } catch {
          /* the connection reports the failure below */
        }
      }
      // Whether a failed COMMIT left anything is uncertain: continue on a new chain.
      this.#head = start.seq === this.#head.seq && start.hash === this.#head.hash ? this.#head : newChain();
      for (const job of batch) job.reject(error);
    }
    if (committed) batch.forEach((job, i) => {
      const r = results[i]!;
      if (r.ok) job.resolve(r.value);
      else job.reject(r.error);
    });
    this.#scheduled = this.#queue.length > 0;
    if (this.#scheduled) setImmediate(() => void this.#flush());
  }

  #tx(): TxSql {
    const w = this.writer;
    return {
      dialect: DIALECT,
      all: (text, params) => w.all(text, params),
      run: (text, params) => w.run(text, params),
      now: async () => this.clock.now(),
      chain: () => this.#head,
      notify: async () => {},
    };
  }

  committedHeads(): CommittedHead[] {
    return [...this.#committed].map(([chainId, h]) => ({ chainId, ...h, live: chainId === this.#head.chainId }));
  }

  async ping(): Promise<void> {
    this.#checkFile();
    this.reader.allSync('SELECT 1 AS one');
  }

  async close(): Promise<void> {
    this.#closed = true;
    while (this.#scheduled || this.#queue.length) await new Promise((r) => setImmediate(r));
    this.reader.db.close();
    this.writer.db.close();
  }
}
