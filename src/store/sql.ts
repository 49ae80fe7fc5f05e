/**
 * The tiny SQL layer both backends share: plain, portable SQL with numbered parameters (`$1`,
 * `$2`, …), run through one executor interface. A backend supplies the executor and a dialect for
 * the few places where SQLite and PostgreSQL differ (row locks, the database clock). Every query of
 * the state layer is written once, in the files beside this one.
 */
export type Row = Record<string, unknown>;

export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** Appended to a SELECT that reads rows the transaction will update (a row lock where there are row locks). */
  readonly forUpdate: string;
  /** A query with one parameter, a table name, answering one row `{ n }`: 1 if the table exists. */
  readonly tableExists: string;
  /**
   * The database clock in epoch ms as an SQL expression, so a statement can compare with it without
   * a round trip of its own; undefined where the store's clock is the broker's (SQLite).
   */
  readonly nowMs?: string;
}

/**
 * Whether a transaction of this dialect holds the whole database's write lock from its start
 * (SQLite: BEGIN IMMEDIATE), so that reading rows and writing them back is atomic without row
 * locks; PostgreSQL needs `forUpdate` (or an upsert) to lock what it will change.
 */
export const serialised = (d: Dialect): boolean => d.name === 'sqlite';

/** Runs statements: inside a transaction, or on a connection that sees committed state only. */
export interface Sql {
  readonly dialect: Dialect;
  all<R extends Row = Row>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(text: string, params?: readonly unknown[]): Promise<number>;
}

/** The head of an audit chain: one per writer (see audit.ts). */
export interface ChainHead {
  readonly chainId: string;
  seq: number;
  hash: string;
}

/** A writer chain's head as of its last commit (what a checkpoint may sign). */
export interface CommittedHead {
  readonly chainId: string;
  readonly seq: number;
  readonly hash: string;
  /** False once the writer abandoned the chain (after an uncertain commit): it will not grow. */
  readonly live: boolean;
}

/** A statement executor inside one transaction. */
export interface TxSql extends Sql {
  /**
   * The store's clock, in epoch ms: the database's clock with PostgreSQL, so every replica agrees
   * on whether a nonce has expired; the broker's (injected) clock with SQLite, which is on its host.
   */
  now(): Promise<number>;
  /** The audit chain this transaction appends to; it advances only if the transaction commits. */
  chain(): ChainHead;
  /** Tells listeners on every replica that `topic` changed, once the transaction commits. */
  notify(topic: ChangeTopic): Promise<void>;
}

export type ChangeTopic = 'keys' | 'suspensions' | 'policy';
export const CHANGE_TOPICS: readonly ChangeTopic[] = ['keys', 'suspensions', 'policy'];

/** Numbers come back as numbers from both backends (PostgreSQL's BIGINT is parsed, see postgres/). */
export const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
export const optStr = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));

/** `($1, $2), ($3, $4)…`: placeholders for `rows` rows of `width` values, starting after `offset`. */
export function valuesList(rows: number, width: number, offset = 0): string {
  const out: string[] = [];
  for (let r = 0; r < rows; r++) out.push(`(${Array.from({ length: width }, (_, c) => `$${offset + r * width + c + 1}`).join(', ')})`);
  return out.join(', ');
}

/** `$1, $2, …` for an IN list. */
export const inList = (n: number, offset = 0): string => Array.from({ length: n }, (_, i) => `$${offset + i + 1}`).join(', ');
