/**
 * The SQLite store as a worker process of `serve --workers` sees it: its writes go to the process
 * that owns the database file (host.ts) over its IPC channel (server/workers.ts), so that one writer
 * group-commits every worker's transactions (several processes writing one SQLite file would
 * queue on its write lock, each one's event loop blocked while SQLite's busy handler sleeps:
 * docs/benchmarks.md). Its reads use its own connection to the file, which sees committed state.
 *
 * A procedure (procedures.ts) is one message each way; a closure is run here, statement by
 * statement (protocol.ts). If the writer goes away, every transaction fails as store_unavailable.
 */
import type { Driver } from '../driver.js';
import { DIALECT, openConnection, type Connection } from '../sqlite/driver.js';
import type { ChainHead, CommittedHead, Row, TxSql } from '../sql.js';
import { fromWire, isEnvelope, Outbox, RemoteStoreError, type Channel, type FromWriter, type ToWriter } from './protocol.js';

export interface RemoteSqliteOptions {
  file: string;
  busyTimeoutMs: number;
  synchronous: 'normal' | 'full';
  /** The channel to the writer. */
  channel: Channel;
}

interface Pending {
  resolve(m: FromWriter): void;
  reject(e: Error): void;
}

export async function openRemoteSqliteDriver(o: RemoteSqliteOptions): Promise<Driver> {
  return new RemoteDriver(await openConnection(o), o.channel);
}

class RemoteDriver implements Driver {
  readonly dialect = DIALECT;
  readonly #out: Outbox<ToWriter>;
  /** Answers awaited, by transaction id; an interactive transaction awaits one answer at a time. */
  readonly #waiting = new Map<number, Pending>();
  /** Interactive transactions the writer ended before their worker did, until the worker ends them too. */
  readonly #ended = new Map<number, FromWriter>();
  readonly #stop: () => void;
  #nextId = 1;
  #gone: Error | undefined;

  constructor(
    readonly reader: Connection,
    channel: Channel,
  ) {
    this.#out = new Outbox(channel);
    this.#stop = channel.onMessage((m) => {
      if (!isEnvelope<FromWriter>(m)) return;
      for (const msg of m.keyanchorStore) {
        const p = this.#waiting.get(msg.id);
        this.#waiting.delete(msg.id);
        if (p) p.resolve(msg);
        // An interactive transaction the writer ended on its own (deadline): its next step fails.
        else if (msg.k === 'done') this.#ended.set(msg.id, msg);
      }
    });
    channel.onClose?.(() => this.writerGone());
  }

  /** The writer is gone (the channel closed): every transaction waiting, and every later one, fails. */
  writerGone(): void {
    this.#gone ??= new RemoteStoreError('the store writer (the primary process) is gone');
    for (const p of this.#waiting.values()) p.reject(this.#gone);
    this.#waiting.clear();
  }

  #ask(msg: ToWriter): Promise<FromWriter> {
    if (this.#gone) return Promise.reject(this.#gone);
    const ended = this.#ended.get(msg.id);
    if (ended) {
      if (msg.k === 'end') this.#ended.delete(msg.id);
      return Promise.resolve(ended);
    }
    return new Promise((resolve, reject) => {
      this.#waiting.set(msg.id, { resolve, reject });
      this.#out.push(msg);
    });
  }

  async call(proc: string, input: unknown): Promise<unknown> {
    const r = await this.#ask({ k: 'call', id: this.#nextId++, proc, input });
    if (r.k !== 'done') throw new RemoteStoreError(`unexpected answer ${r.k} to a call`);
    if (r.error) throw fromWire(r.error);
    return r.value;
  }

  async transaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T> {
    const id = this.#nextId++;
    const begun = await this.#ask({ k: 'begin', id });
    if (begun.k === 'done') throw begun.error ? fromWire(begun.error) : new RemoteStoreError('the writer ended the transaction before it began');
    if (begun.k !== 'begun') throw new RemoteStoreError(`unexpected answer ${begun.k} to begin`);
    const head: ChainHead = begun.head;
    const statement = async (op: 'all' | 'run', text: string, params: readonly unknown[] = []): Promise<unknown> => {
      const r = await this.#ask({ k: 'sql', id, op, text, params });
      if (r.k === 'done') throw r.error ? fromWire(r.error) : new RemoteStoreError('the writer ended the transaction');
      if (r.k !== 'rows') throw new RemoteStoreError(`unexpected answer ${r.k} to a statement`);
      if (r.error) throw fromWire(r.error);
      return r.value;
    };
    const tx: TxSql = {
      dialect: DIALECT,
      all: <R extends Row>(text: string, params?: readonly unknown[]) => statement('all', text, params) as Promise<R[]>,
      run: (text, params) => statement('run', text, params) as Promise<number>,
      now: async () => begun.now,
      chain: () => head,
      notify: async () => {},
    };
    let value: T;
    try {
      value = await fn(tx);
    } catch (e) {
      await this.#ask({ k: 'end', id, commit: false }).catch(() => undefined);
      throw e;
    }
    const done = await this.#ask({ k: 'end', id, commit: true, head: { seq: head.seq, hash: head.hash } });
    if (done.k !== 'done') throw new RemoteStoreError(`unexpected answer ${done.k} to end`);
    if (done.error) throw fromWire(done.error);
    return value;
  }

  async migrationTransaction<T>(): Promise<T> {
    throw new RemoteStoreError('a worker does not migrate the store: the primary process does, before it starts workers');
  }

  /** None: this process's records are appended to the writer's chain, and the writer's process checkpoints them. */
  committedHeads(): CommittedHead[] {
    return [];
  }

  async ping(): Promise<void> {
    this.reader.allSync('SELECT 1 AS one');
  }

  async close(): Promise<void> {
    while (this.#waiting.size > 0 && !this.#gone) await new Promise((r) => setTimeout(r, 5));
    this.#stop();
    this.reader.db.close();
  }
}

