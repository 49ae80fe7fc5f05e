/**
 * The writer's side: runs the transactions of worker processes on the store this process owns
 * (the SQLite driver, whose group commit puts every worker's transactions waiting at one moment
 * into one commit and one flush). One audit chain, this driver's, holds every worker's records.
 *
 * A worker that goes away (killed, crashed) is detached: its interactive transactions are rolled
 * back; a procedure it called still commits or fails as it would have, and its answer is dropped,
 * exactly as a single broker's answer is lost when it dies after its commit.
 */
import { procedureNamed } from '../procedures.js';
import type { TxSql } from '../sql.js';
import type { StateStore } from '../stateStore.js';
import { isEnvelope, Outbox, toWire, type Channel, type FromWriter, type ToWriter } from './protocol.js';

export interface HostOptions {
  /** How long an interactive transaction may wait for its worker's next statement. */
  interactiveTimeoutMs: number;
}

type Step = Extract<ToWriter, { k: 'sql' } | { k: 'end' }>;

/** An interactive transaction in progress: the statements its worker sends, and who waits for them. */
class Interactive {
  readonly #steps: Step[] = [];
  #wake: ((s: Step | Error) => void) | undefined;
  #failed: Error | undefined;

  push(s: Step): void {
    if (this.#wake) {
      const w = this.#wake;
      this.#wake = undefined;
      w(s);
    } else this.#steps.push(s);
  }

  abort(e: Error): void {
    this.#failed = e;
    this.#wake?.(e);
    this.#wake = undefined;
  }

  next(timeoutMs: number): Promise<Step> {
    if (this.#failed) return Promise.reject(this.#failed);
    const s = this.#steps.shift();
    if (s) return Promise.resolve(s);
    return new Promise<Step>((resolve, reject) => {
      const timer = setTimeout(() => this.abort(new Error(`an interactive transaction waited ${timeoutMs} ms for its worker: rolled back`)), timeoutMs);
      this.#wake = (x) => {
        clearTimeout(timer);
        if (x instanceof Error) reject(x);
        else resolve(x);
      };
    });
  }
}

export class StoreHost {
  constructor(
    private readonly store: Pick<StateStore, 'transaction'>,
    private readonly opts: HostOptions,
  ) {}

  /** Serves the transactions that arrive on `channel`; returns the detach function, for when its worker is gone. */
  attach(channel: Channel): () => void {
    const out = new Outbox<FromWriter>(channel);
    const open = new Map<number, Interactive>();
    let attached = true;
    const reply = (m: FromWriter) => attached && out.push(m);
    const stop = channel.onMessage((m) => {
      if (!isEnvelope<ToWriter>(m)) return;
      for (const msg of m.keyanchorStore) {
        if (msg.k === 'call') this.#call(msg, reply);
        else if (msg.k === 'begin') this.#begin(msg.id, open, reply);
        else if (open.has(msg.id)) open.get(msg.id)!.push(msg);
        // Rolled back meanwhile (its deadline passed): say so again, so that the worker never waits.
        else reply({ k: 'done', id: msg.id, error: toWire(new Error('the transaction is no longer open: it was rolled back')) });
      }
    });
    return () => {
      attached = false;
      stop();
      for (const t of open.values()) t.abort(new Error('the worker is gone: its transaction is rolled back'));
      open.clear();
    };
  }

  #call(msg: Extract<ToWriter, { k: 'call' }>, reply: (m: FromWriter) => void): void {
    const proc = procedureNamed(msg.proc);
    if (!proc) return reply({ k: 'done', id: msg.id, error: toWire(new Error(`no transaction procedure ${msg.proc} is defined in the store's writer`)) });
    this.store.transaction(proc, msg.input).then(
      (value) => reply({ k: 'done', id: msg.id, value }),
      (e: unknown) => reply({ k: 'done', id: msg.id, error: toWire(e) }),
    );
  }

  #begin(id: number, open: Map<number, Interactive>, reply: (m: FromWriter) => void): void {
    const t = new Interactive();
    open.set(id, t);
    const body = async (tx: TxSql) => {
      reply({ k: 'begun', id, head: { ...tx.chain() }, now: await tx.now() });
      for (;;) {
        const step = await t.next(this.opts.interactiveTimeoutMs);
        if (step.k === 'end') {
          if (!step.commit) throw new RolledBack();
          if (step.head) Object.assign(tx.chain(), step.head);
          return;
        }
        try {
          const value = step.op === 'all' ? await tx.all(step.text, step.params) : await tx.run(step.text, step.params);
          reply({ k: 'rows', id, value });
        } catch (e) {
          reply({ k: 'rows', id, error: toWire(e) });
        }
      }
    };
    this.store.transaction(body).then(
      () => reply({ k: 'done', id }),
      (e: unknown) => reply({ k: 'done', id, error: toWire(e) }),
    ).finally(() => open.delete(id));
  }
}

/** The worker asked to roll back: its own error is what its caller sees. */
class RolledBack extends Error {
  constructor() {
    super('rolled back by the worker');
  }
}
