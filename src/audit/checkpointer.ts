/**
 * The broker's checkpointer. It signs a `writer` checkpoint of each of this process's audit chains
 * once the chain has `everyRecords` records past its last checkpoint, or its oldest uncovered
 * record is `everyMs` old, when the writer abandons a chain, at shutdown (closing the chain) and
 * on demand. The heads it signs are the store driver's own record of what it committed
 * (StateStore.committedHeads), never read back from the store. Every `sweepMs` it also sweeps the
 * open chains of writers that went quiet without a final checkpoint (sweep.ts). Each new entry
 * goes to every witness; confirmations are recorded in the store.
 *
 * Runs are serialised. A failed writer checkpoint makes `health()` throw until one succeeds
 * (readiness: the broker is not ready while its checkpoints fail).
 */
import { asBrokerError, type BrokerError } from '../errors.js';
import type { MetricSample } from '../policy/counters.js';
import { markWitnessed, openChains, setChainsClosed, type LogEntry } from '../store/auditCheckpoints.js';
import type { CheckpointBody } from './checkpoint.js';
import { appendLogEntry, type LogWriter } from './checkpointLog.js';
import { planSweep } from './sweep.js';
import { witnessLine, type Witness } from './witness/index.js';

export interface CheckpointerOptions extends LogWriter {
  /** The policy in force (null in a process that loads none). */
  policy: () => CheckpointBody['policy'];
  everyRecords: number;
  everyMs: number;
  /** Periodic sweeps of quiet chains of other writers; 0: on demand only. A chain quiet this long is also closed. */
  sweepMs: number;
  witnesses: readonly Witness[];
  onError: (what: string, e: unknown) => void;
}

export interface CheckpointRun {
  entries: LogEntry[];
  /** Chains a sweep would not sign: a record does not link up. */
  refused: Array<{ chain: string; why: string }>;
}

/** Ticks at most this far apart (the age rule is checked on ticks). */
const MAX_TICK_MS = 1000;
/** A swept chain this quiet (when sweeps are off) is closed. */
const CLOSE_QUIET_MS = 300_000;

export class Checkpointer {
  readonly #signed = new Map<string, number>();
  /** When a chain was first seen with records past its last checkpoint. */
  readonly #since = new Map<string, number>();
  readonly #counts = { writer: 0, sweep: 0, failures: 0, refused: 0 };
  #lastAt = 0;
  #serial: Promise<unknown> = Promise.resolve();
  #marks = new Set<Promise<unknown>>();
  #failure: BrokerError | undefined;
  #timers: NodeJS.Timeout[] = [];
  #closed = false;

  constructor(private readonly o: CheckpointerOptions) {}

  start(): void {
    const tick = setInterval(() => void this.#run(() => this.#writer(false, false)).catch(() => undefined), Math.min(this.o.everyMs, MAX_TICK_MS));
    this.#timers.push(tick);
    if (this.o.sweepMs > 0) this.#timers.push(setInterval(() => void this.#run(() => this.#sweep(this.o.sweepMs)).catch(() => undefined), this.o.sweepMs));
    for (const t of this.#timers) t.unref();
  }

  /** On demand: this process's chains now, then every other open chain, quiet or not. */
  checkpointNow(): Promise<CheckpointRun> {
    return this.#run(async () => {
      const entries = await this.#writer(true, false);
      const swept = await this.#sweep(0);
      return { entries: [...entries, ...swept.entries], refused: swept.refused };
    });
  }

  /** Throws while this writer's checkpoints fail. */
  health(): void {
    if (this.#failure) throw this.#failure;
  }

  /** The final checkpoint of this process's chains (closing them), then the witnesses' grace. */
  async close(graceMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#run(() => this.#writer(true, true)).catch(() => undefined);
    await Promise.all(this.o.witnesses.map((w) => w.close(graceMs)));
    await Promise.all(this.#marks);
  }

  /** Records behind this process's chains' last checkpoints. */
  uncovered(): number {
    return this.o.store.committedHeads().reduce((n, h) => n + Math.max(0, h.seq - (this.#signed.get(h.chainId) ?? 0)), 0);
  }

  metrics(): MetricSample[] {
    const c = this.#counts;
    const out: MetricSample[] = [
      { name: 'keyanchor_audit_checkpoints_total', help: 'Audit checkpoints signed, by basis (writer: this process\'s chains; sweep: chains of stopped writers)', type: 'counter', labels: { basis: 'writer' }, value: c.writer },
      { name: 'keyanchor_audit_checkpoints_total', help: 'Audit checkpoints signed, by basis (writer: this process\'s chains; sweep: chains of stopped writers)', type: 'counter', labels: { basis: 'sweep' }, value: c.sweep },
      { name: 'keyanchor_audit_checkpoint_failures_total', help: 'Checkpoint runs that failed (signing or the store)', type: 'counter', value: c.failures },
      { name: 'keyanchor_audit_sweep_refusals_total', help: 'Chains a sweep refused to sign because a record does not link up', type: 'counter', value: c.refused },
      { name: 'keyanchor_audit_uncovered_records', help: 'Records of this process past their chain\'s last checkpoint', type: 'gauge', value: this.uncovered() },
      { name: 'keyanchor_audit_last_checkpoint_timestamp_seconds', help: 'When this process last signed a checkpoint', type: 'gauge', value: Math.floor(this.#lastAt / 1000) },
    ];
    for (const w of this.o.witnesses) {
      const s = w.stats();
      for (const [k, v] of Object.entries(s)) {
        out.push({ name: `keyanchor_audit_witness_${k}_total`, help: `Checkpoint-log entries ${k} by each witness`, type: 'counter', labels: { witness: w.name }, value: v });
      }
    }
    return out;
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#serial.then(fn, fn);
    this.#serial = next.catch(() => undefined);
    return next;
  }

  async #writer(force: boolean, final: boolean): Promise<LogEntry[]> {
    const now = this.o.clock.now();
    const out: LogEntry[] = [];
    const heads = this.o.store.committedHeads();
    try {
      for (const h of heads) {
        const signed = this.#signed.get(h.chainId) ?? 0;
        if (h.seq <= signed) continue;
        const since = this.#since.get(h.chainId) ?? now;
        this.#since.set(h.chainId, since);
        if (!(force || !h.live || h.seq - signed >= this.o.everyRecords || now - since >= this.o.everyMs)) continue;
        const closing = final || !h.live;
        const entry = await appendLogEntry(this.o, { kind: 'checkpoint', chain: h.chainId, seq: h.seq, hash: h.hash, policy: this.o.policy(), basis: 'writer' }, (tx) =>
          setChainsClosed(tx, [h.chainId], closing ? now : null));
        this.#signed.set(h.chainId, h.seq);
        this.#since.delete(h.chainId);
        this.#counts.writer++;
        this.#emit(entry);
        out.push(entry);
      }
      if (final && heads.length) await this.o.store.transaction((tx) => setChainsClosed(tx, heads.map((h) => h.chainId), now));
      this.#failure = undefined;
    } catch (e) {
      this.#counts.failures++;
      this.#failure = asBrokerError(e);
      this.o.onError('signing a checkpoint of this writer\'s audit chain', e);
      throw e;
    }
    return out;
  }

  async #sweep(quietMs: number): Promise<CheckpointRun> {
    const now = this.o.clock.now();
    const mine = new Set(this.o.store.committedHeads().map((h) => h.chainId));
    const run: CheckpointRun = { entries: [], refused: [] };
    const closeAfter = this.o.sweepMs || CLOSE_QUIET_MS;
    for (const chain of await openChains(this.o.store.read)) {
      if (mine.has(chain)) continue;
      const plan = await planSweep(this.o.store.read, chain, now, quietMs);
      if (plan.action === 'refuse') {
        this.#counts.refused++;
        run.refused.push({ chain, why: plan.why });
        this.o.onError(`sweeping audit chain ${chain}`, new Error(plan.why));
        continue;
      }
      if (plan.action === 'wait') continue;
      if (plan.action === 'none') {
        if (plan.lastAt === undefined || now - plan.lastAt >= closeAfter) await this.o.store.transaction((tx) => setChainsClosed(tx, [chain], now));
        continue;
      }
      const entry = await appendLogEntry(this.o, { kind: 'checkpoint', chain, seq: plan.seq, hash: plan.hash, policy: this.o.policy(), basis: 'sweep' }, async (tx) => {
        if (now - plan.lastAt >= closeAfter) await setChainsClosed(tx, [chain], now);
      });
      this.#counts.sweep++;
      this.#emit(entry);
      run.entries.push(entry);
    }
    return run;
  }

  #emit(entry: LogEntry): void {
    this.#lastAt = entry.at;
    const line = witnessLine(entry);
    for (const w of this.o.witnesses) {
      w.send(line, () => {
        const mark = this.o.store.transaction((tx) => markWitnessed(tx, entry.n, w.name, this.o.clock.now())).catch((e: unknown) => this.o.onError('recording that a witness holds a checkpoint', e));
        this.#marks.add(mark);
        void mark.finally(() => this.#marks.delete(mark));
      });
    }
  }
}
