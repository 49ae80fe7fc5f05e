/**
 * The messages between a worker process and the process that owns the SQLite store's writer (the
 * primary of `serve --workers`), over the IPC channel node:child_process opens (`advanced`
 * serialization: structured clone, so Buffers cross as Buffers). Two kinds of transaction:
 *
 *   call   a procedure (procedures.ts) and its input → done: its result or its error. One message
 *          each way; the writer runs it in its next group commit with everyone else's.
 *   begin  an interactive transaction: the worker runs its own closure, sending each statement
 *          (sql → rows) until end (commit or roll back) → done. The writer's batch waits for it,
 *          so it is for what is rare; it has a deadline.
 *
 * Messages sent in one turn of the event loop travel as one envelope. Errors cross as data:
 * a BrokerError keeps its code, reason and Retry-After; anything else its message and `code`.
 */
import { BrokerError, isBrokerError } from '../../errors.js';
import type { ProblemCode } from '../../protocol.js';
import type { ChainHead } from '../sql.js';

export type ToWriter =
  | { k: 'call'; id: number; proc: string; input: unknown }
  | { k: 'begin'; id: number }
  | { k: 'sql'; id: number; op: 'all' | 'run'; text: string; params: readonly unknown[] }
  | { k: 'end'; id: number; commit: boolean; head?: { seq: number; hash: string } };

export type FromWriter =
  | { k: 'done'; id: number; value?: unknown; error?: WireError }
  | { k: 'begun'; id: number; head: ChainHead; now: number }
  | { k: 'rows'; id: number; value?: unknown; error?: WireError };

export interface WireError {
  message: string;
  code?: string;
  broker?: { code: ProblemCode; reason: string; retryAfterSeconds?: number };
}

/** The envelope's key: other messages on the channel (Node's own, the workers' in server/workers.ts) are not ours. */
export const ENVELOPE = 'keyanchorStore';
export type Envelope<M> = { [ENVELOPE]: M[] };

export const isEnvelope = <M>(m: unknown): m is Envelope<M> => typeof m === 'object' && m !== null && Array.isArray((m as Record<string, unknown>)[ENVELOPE]);

export function toWire(e: unknown): WireError {
  if (isBrokerError(e)) {
    const broker = { code: e.code, reason: e.reason, ...(e.retryAfterSeconds !== undefined ? { retryAfterSeconds: e.retryAfterSeconds } : {}) };
    return { message: e.message, broker };
  }
  const code = (e as { code?: unknown } | null)?.code;
  return { message: e instanceof Error ? e.message : String(e), ...(typeof code === 'string' ? { code } : {}) };
}

export class RemoteStoreError extends Error {
  override readonly name = 'RemoteStoreError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export function fromWire(w: WireError): Error {
  if (w.broker) return new BrokerError(w.broker.code, w.broker.reason, w.broker.retryAfterSeconds !== undefined ? { retryAfterSeconds: w.broker.retryAfterSeconds } : undefined);
  return new RemoteStoreError(w.message, w.code);
}

/** A message channel: a worker's `process`, or the primary's ChildProcess of one worker. */
export interface Channel {
  send(message: unknown): void;
  /** Calls `fn` for every message; returns a function that stops it. */
  onMessage(fn: (message: unknown) => void): () => void;
  /** Calls `fn` once when the other end is gone. */
  onClose?(fn: () => void): void;
}

/** Queues messages and sends what one turn of the event loop queued as one envelope. */
export class Outbox<M> {
  #queue: M[] = [];
  constructor(private readonly channel: Channel) {}
  push(m: M): void {
    if (this.#queue.push(m) === 1) setImmediate(this.#flush);
  }
  readonly #flush = (): void => {
    const batch = this.#queue;
    this.#queue = [];
    try {
      this.channel.send({ [ENVELOPE]: batch });
    } catch {
      /* the other end is gone: its exit is handled where the channel is owned */
    }
  };
}
