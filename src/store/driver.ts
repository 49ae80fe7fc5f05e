/**
 * What a backend provides to the state layer: a transaction runner, a connection that reads
 * committed state, and (optionally) a push channel for the change feed. Everything above it
 * (sqlStore.ts and the query files) is shared by both backends.
 */
import type { CommittedHead, Dialect, Sql, TxSql } from './sql.js';

export interface Driver {
  readonly dialect: Dialect;
  /** Reads committed state, outside any transaction. */
  readonly reader: Sql;
  /**
   * Runs `fn` as one transaction: it commits when `fn` resolves and rolls back when it throws
   * (rejecting with what `fn` threw). Transactions of one process never interleave on one
   * connection; `fn` must do nothing but store work.
   */
  transaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T>;
  /**
   * Runs the procedure defined under `name` (procedures.ts) as one transaction where the writer
   * is, when that is another process (remote/); absent where `transaction` runs it here.
   */
  call?(name: string, input: unknown): Promise<unknown>;
  /** Runs `fn` in a transaction that holds the schema-migration lock (one migrator at a time). */
  migrationTransaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T>;
  /**
   * The heads of the audit chains this driver wrote, as of their last commit: only records that are
   * certainly committed are behind them (the writer's own knowledge, never read back from the store).
   */
  committedHeads(): CommittedHead[];
  /** Calls `onChange` when another connection reports a change (PostgreSQL NOTIFY); returns a stop function. */
  listen?(onChange: () => void): () => void;
  /** Resolves when the database answers a trivial query within the statement timeout. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
