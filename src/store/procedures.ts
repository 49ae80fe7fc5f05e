/**
 * Transactions as named procedures: a function of one transaction and plain data, defined once
 * under a stable name. A procedure runs wherever the store's writer is: in this process, or, when
 * `serve --workers` shares one SQLite file among worker processes, in the primary process that owns
 * it (store/remote/), in one message each way. So its input and its result must be plain data
 * (what structured clone carries: objects, arrays, strings, numbers, Buffers), and it may use
 * nothing but the transaction and its input: no closure over a caller's state.
 *
 * The release path's transactions are procedures (release.ts); any other transaction may stay a
 * closure (`store.transaction(async (tx) => …)`), which a worker runs statement by statement over
 * the same channel: correct, and fine for what is rare (lifecycle operations, probes, reloads).
 */
import type { TxSql } from './sql.js';

export interface TxProcedure<I, O> {
  readonly name: string;
  run(tx: TxSql, input: I): Promise<O>;
}

const registry = new Map<string, TxProcedure<never, unknown>>();

/** Defines a procedure; its module must be loaded wherever a store writer may have to run it. */
export function txProcedure<I, O>(name: string, run: (tx: TxSql, input: I) => Promise<O>): TxProcedure<I, O> {
  if (registry.has(name)) throw new Error(`transaction procedure ${name} is defined twice`);
  const p: TxProcedure<I, O> = { name, run };
  registry.set(name, p as TxProcedure<never, unknown>);
  return p;
}

export const isTxProcedure = (v: unknown): v is TxProcedure<unknown, unknown> =>
  typeof v === 'object' && v !== null && typeof (v as TxProcedure<unknown, unknown>).name === 'string' && typeof (v as TxProcedure<unknown, unknown>).run === 'function';

/** The procedure defined under `name`, if its module has been loaded here. */
export const procedureNamed = (name: string): TxProcedure<unknown, unknown> | undefined => registry.get(name) as TxProcedure<unknown, unknown> | undefined;
