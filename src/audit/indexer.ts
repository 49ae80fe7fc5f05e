/**
 * Keeps the search index (store/auditIndex.ts) a few seconds behind the trail at most: a run every
 * `intervalMs`, and one before each search, one run at a time (a search waits for the run under
 * way, then catches up itself, up to its bound).
 */
import type { MetricSample } from '../policy/counters.js';
import { indexAudit } from '../store/auditIndex.js';
import type { StateStore } from '../store/stateStore.js';

export class AuditIndexer {
  #running: Promise<number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #indexed = 0;
  #failures = 0;

  constructor(
    private readonly store: StateStore,
    private readonly onError: (e: unknown) => void,
  ) {}

  start(intervalMs: number): void {
    this.#timer = setInterval(() => void this.catchUp(20).catch(() => undefined), intervalMs);
    this.#timer.unref();
  }

  /** Indexes up to `maxBatches` batches of 5000 records; resolves to how many it indexed. */
  async catchUp(maxBatches = Infinity): Promise<number> {
    while (this.#running) await this.#running.catch(() => undefined);
    this.#running = indexAudit(this.store.read, (fn) => this.store.transaction(fn), { maxBatches })
      .then((n) => {
        this.#indexed += n;
        return n;
      })
      .catch((e: unknown) => {
        this.#failures++;
        this.onError(e);
        throw e;
      })
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  metrics(): MetricSample[] {
    return [
      { name: 'keyanchor_audit_indexed_records_total', help: 'Audit records whose search terms this process indexed', type: 'counter', value: this.#indexed },
      { name: 'keyanchor_audit_index_failures_total', help: 'Runs of the audit search indexer that failed', type: 'counter', value: this.#failures },
    ];
  }
}
