/**
 * The state layer the broker uses, over either backend: transactions (failures of the database
 * become `503 store_unavailable`; a BrokerError thrown by the caller's own step passes through),
 * reads of committed state, the change feed, a readiness probe and bounded purges.
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock.js';
import { BrokerError, isBrokerError } from '../errors.js';
import { purgeCounters } from './counters.js';
import { ChangeFeed } from './changes.js';
import type { Driver } from './driver.js';
import { purgeLimits } from './limits.js';
import { purgeNonces } from './nonces.js';
import { isTxProcedure, txProcedure, type TxProcedure } from './procedures.js';
import type { CommittedHead, Row, Sql, TxSql } from './sql.js';

/** Rows deleted per purge statement: a purge never holds locks for long. */
export const PURGE_BATCH = 1000;
/**
 * Consumed nonces are kept this long past their expiry before they are purged: longer than any
 * transaction can last (statement and idle-in-transaction timeouts), so no attempt that read the
 * clock before the expiry can still be inserting when the row goes.
 */
export const NONCE_PURGE_GRACE_MS = 5 * 60_000;

export const storeUnavailable = (e: unknown, what: string): BrokerError =>
  isBrokerError(e) ? e : new BrokerError('store_unavailable', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });

const probeWrite = txProcedure('store.probe', (tx, at: string) =>
  tx.run("INSERT INTO meta (name, value) VALUES ('probe', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [at]));

/** Reads whose failures are store_unavailable too. */
class GuardedSql implements Sql {
  constructor(private readonly inner: Sql) {}
  get dialect() {
    return this.inner.dialect;
  }
  all<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<R[]> {
    return this.inner.all<R>(text, params).catch((e: unknown) => Promise.reject(storeUnavailable(e, 'store read failed')));
  }
  run(text: string, params?: readonly unknown[]): Promise<number> {
    return this.inner.run(text, params).catch((e: unknown) => Promise.reject(storeUnavailable(e, 'store statement failed')));
  }
}

export class StateStore {
  readonly read: Sql;
  readonly changes: ChangeFeed;
  #stopListen: (() => void) | undefined;

  constructor(
    readonly kind: 'sqlite' | 'postgres',
    /** Where the store is, for messages: the file, or the URL without credentials. */
    readonly where: string,
    private readonly driver: Driver,
    private readonly clock: Clock,
    changePollMs: number,
    onError: (e: unknown) => void,
  ) {
    this.read = new GuardedSql(driver.reader);
    this.changes = new ChangeFeed(driver.reader, changePollMs, onError);
    const watch = this.changes.watch.bind(this.changes);
    // The push channel (PostgreSQL LISTEN) runs only while someone watches.
    this.changes.watch = (l) => {
      const stop = watch(l);
      this.#stopListen ??= driver.listen?.(() => void this.changes.poke());
      return stop;
    };
  }

  /** Told of each transaction's outcome and duration, commit included (the metrics). */
  observe: ((committed: boolean, seconds: number) => void) | undefined;

  /** One transaction (see Driver.transaction): a closure, or a procedure and its input (procedures.ts). */
  transaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T>;
  transaction<I, O>(procedure: TxProcedure<I, O>, input: I): Promise<O>;
  transaction(f: ((tx: TxSql) => Promise<unknown>) | TxProcedure<unknown, unknown>, input?: unknown): Promise<unknown> {
    const d = this.driver;
    const observe = this.observe;
    const started = observe ? performance.now() : 0;
    const done = !isTxProcedure(f) ? d.transaction(f) : d.call ? d.call(f.name, input) : d.transaction((tx) => f.run(tx, input));
    return done.then(
      (v) => {
        observe?.(true, (performance.now() - started) / 1000);
        return v;
      },
      (e: unknown) => {
        observe?.(false, (performance.now() - started) / 1000);
        return Promise.reject(storeUnavailable(e, `store ${this.kind} transaction failed`));
      },
    );
  }

  /** This process's audit chains as of their last commit (see Driver.committedHeads). */
  committedHeads(): CommittedHead[] {
    return this.driver.committedHeads();
  }

  /** Ready when the store takes a write within its timeouts (so a read-only or full disk is not ready). */
  async probe(): Promise<void> {
    await this.transaction(probeWrite, String(this.clock.now()));
  }

  /** Deletes expired state in bounded batches: consumed nonces, idle limit windows, counter buckets before `countersBefore`. */
  async purge(countersBefore?: number): Promise<{ nonces: number; limits: number; counters: number }> {
    const out = { nonces: 0, limits: 0, counters: 0 };
    for (let n = PURGE_BATCH; n === PURGE_BATCH; ) {
      n = await this.transaction(async (tx) => purgeNonces(tx, (await tx.now()) - NONCE_PURGE_GRACE_MS, PURGE_BATCH));
      out.nonces += n;
    }
    for (let n = PURGE_BATCH; n === PURGE_BATCH; ) {
      n = await this.transaction(async (tx) => purgeLimits(tx, await tx.now(), PURGE_BATCH));
      out.limits += n;
    }
    if (countersBefore !== undefined) {
      for (let n = PURGE_BATCH; n === PURGE_BATCH; ) {
        n = await this.transaction((tx) => purgeCounters(tx, countersBefore, PURGE_BATCH));
        out.counters += n;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.changes.stop();
    this.#stopListen?.();
    await this.driver.close();
  }
}
