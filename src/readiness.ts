/**
 * Readiness: the broker can release when the store takes a write, the audit trail takes a record
 * (the `audit` check: a record written and rolled back, and this writer's checkpoints signing),
 * custody can unwrap an existing key version (any one; none needs checking in an empty keystore),
 * and custody's own health check passes. Checked at start, on a timer (logging each change), on
 * each `GET /readyz` (concurrent probes share one), and at once when an audit write fails
 * (`recheck`), so the broker never stays failed while it says it is ready.
 */
import type { Clock } from './clock.js';
import type { KeyCustodian } from './custody/custodian.js';
import { asBrokerError, type BrokerError } from './errors.js';
import type { Logger } from './log.js';
import { anyWrappedVersion } from './store/keys.js';
import type { StateStore } from './store/stateStore.js';

export class Readiness {
  #last: { at: number; error?: BrokerError } | undefined;
  #running: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly custodian: KeyCustodian,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly audit: () => Promise<void> = async () => {},
  ) {}

  /** An audit write failed somewhere: probe now (the state and the log follow at once). */
  recheck(): void {
    void this.#probe();
  }

  /** Probes now (callers at the same moment share one probe); throws store_unavailable or custody_unavailable. */
  async check(): Promise<void> {
    await this.#probe();
    const err = this.#last?.error;
    if (err) throw err;
  }

  /** Probes now and every `intervalMs` after, logging when readiness changes. */
  start(intervalMs: number): Promise<void> {
    this.#timer = setInterval(() => void this.#probe(), intervalMs);
    this.#timer.unref();
    return this.#probe();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #probe(): Promise<void> {
    this.#running ??= this.#run().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #run(): Promise<void> {
    let error: BrokerError | undefined;
    try {
      await this.store.probe();
      await this.audit();
      await this.custodian.health();
      const v = await anyWrappedVersion(this.store.read);
      if (v) await this.custodian.check({ name: v.name, version: v.version.version }, v.version.wrapped!);
    } catch (e) {
      error = asBrokerError(e);
    }
    const was = this.#last?.error;
    this.#last = { at: this.clock.now(), ...(error ? { error } : {}) };
    if (error && error.code !== was?.code) this.log.error({ code: error.code, reason: error.reason }, 'not ready');
    else if (!error && was) this.log.info({}, 'ready again');
  }
}
