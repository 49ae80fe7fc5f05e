/**
 * Refusals before the evidence is verified (malformed bodies and evidence, unknown or expired
 * nonces, bad signatures, untrusted nodes) come from anyone, so they are not recorded one by one:
 * each source address gets one count per window, written as one `refusal.unauthenticated` record
 * when the window ends (or when the broker stops, or when the source is pushed out of the bounded
 * table). The record holds only facts the broker derived: the address, the window, counts per
 * code, the bytes received and a few SHA-256 digests of the evidence. Whatever one client sends,
 * the trail grows by at most one small record per source and window.
 */
import type { Clock } from '../clock.js';
import type { ProblemCode } from '../protocol.js';
import { appendAudit } from '../store/audit.js';
import type { StateStore } from '../store/stateStore.js';

export interface UnauthenticatedRefusal {
  source: string;
  code: ProblemCode;
  bytes: number;
  /** SHA-256 (hex) of the evidence as received, when there was any. */
  evidenceSha256?: string;
}

interface Tally {
  source: string;
  window: number;
  count: number;
  bytes: number;
  codes: Partial<Record<ProblemCode, number>>;
  samples: string[];
}

/** Digests kept per source and window, as examples to look for in logs. */
const SAMPLES = 3;

export class RefusalTally {
  readonly #tallies = new Map<string, Tally>();
  #timer: NodeJS.Timeout | undefined;
  #writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: StateStore,
    private readonly clock: Clock,
    private readonly opts: { windowMs: number; maxSources: number },
    private readonly onError: (e: unknown) => void,
    /** The event its records carry (admin API authentication failures use `admin.unauthenticated`). */
    private readonly event = 'refusal.unauthenticated',
  ) {}

  note(r: UnauthenticatedRefusal): void {
    const window = Math.floor(this.clock.now() / this.opts.windowMs) * this.opts.windowMs;
    let t = this.#tallies.get(r.source);
    if (t && t.window !== window) {
      this.#write([t]);
      t = undefined;
    }
    if (!t) {
      if (this.#tallies.size >= this.opts.maxSources) this.#write([this.#take(this.#tallies.keys().next().value!)]);
      t = { source: r.source, window, count: 0, bytes: 0, codes: {}, samples: [] };
    }
    this.#tallies.delete(r.source); // re-inserted: the table stays in order of last use
    this.#tallies.set(r.source, t);
    t.count++;
    t.bytes += r.bytes;
    t.codes[r.code] = (t.codes[r.code] ?? 0) + 1;
    if (r.evidenceSha256 && t.samples.length < SAMPLES && !t.samples.includes(r.evidenceSha256)) t.samples.push(r.evidenceSha256);
    this.#schedule();
  }

  /** Writes the tallies whose window has ended (all of them with `all`); resolves when written. */
  flush(all = false): Promise<void> {
    const now = this.clock.now();
    const due = [...this.#tallies.values()].filter((t) => all || t.window + this.opts.windowMs <= now);
    for (const t of due) this.#tallies.delete(t.source);
    if (due.length) this.#write(due);
    return this.#writes;
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush(true);
  }

  #take(source: string): Tally {
    const t = this.#tallies.get(source)!;
    this.#tallies.delete(source);
    return t;
  }

  #write(tallies: Tally[]): void {
    const at = this.clock.now();
    const write = () =>
      this.store.transaction(async (tx) => {
        for (const t of tallies) {
          await appendAudit(tx, {
            event: this.event,
            source: t.source,
            windowStart: new Date(t.window).toISOString(),
            windowSeconds: this.opts.windowMs / 1000,
            count: t.count,
            codes: t.codes,
            bytes: t.bytes,
            evidenceSha256: t.samples,
          }, at);
        }
      });
    this.#writes = this.#writes.then(write).catch(this.onError);
  }

  /** One timer, at the end of the earliest open window. */
  #schedule(): void {
    if (this.#timer) return;
    const now = this.clock.now();
    const next = Math.floor(now / this.opts.windowMs) * this.opts.windowMs + this.opts.windowMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
      if (this.#tallies.size) this.#schedule();
    }, Math.max(next - now, 10));
    this.#timer.unref();
  }
}
