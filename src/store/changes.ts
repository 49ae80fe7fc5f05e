/**
 * The change feed: a counter per topic, bumped in the transaction that changes keys, suspensions
 * or policy state. Every process polls the counters (and, with PostgreSQL, also wakes up on a
 * NOTIFY sent at commit), so each replica learns of a change made through any other within one
 * poll interval.
 */
import type { ChangeTopic, Sql, TxSql } from './sql.js';
import { num } from './sql.js';

export async function bumpChange(tx: TxSql, topic: ChangeTopic): Promise<void> {
  await tx.run('UPDATE changes SET counter = counter + 1 WHERE topic = $1', [topic]);
  await tx.notify(topic);
}

export async function readChanges(sql: Sql): Promise<Map<ChangeTopic, number>> {
  const rows = await sql.all('SELECT topic, counter FROM changes');
  return new Map(rows.map((r) => [String(r.topic) as ChangeTopic, num(r.counter)]));
}

export type ChangeListener = (topic: ChangeTopic) => void;

/** Polls the counters every `intervalMs` (and whenever `poke` is called) and reports the topics that moved. */
export class ChangeFeed {
  readonly #listeners = new Set<ChangeListener>();
  #last: Map<ChangeTopic, number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly intervalMs: number,
    private readonly onError: (e: unknown) => void,
  ) {}

  watch(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.poke(), this.intervalMs);
      this.#timer.unref();
      void this.poke();
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.stop();
    };
  }

  /** Polls now (a NOTIFY arrived, or the timer fired); concurrent pokes share one poll. */
  poke(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => (this.#polling = undefined));
    return this.#polling;
  }

  async #poll(): Promise<void> {
    let now: Map<ChangeTopic, number>;
    try {
      now = await readChanges(this.sql);
    } catch (e) {
      this.onError(e);
      return;
    }
    const before = this.#last;
    this.#last = now;
    if (!before) return;
    for (const [topic, n] of now) {
      if (before.get(topic) !== n) for (const l of this.#listeners) l(topic);
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
