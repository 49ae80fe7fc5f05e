/**
 * `GET /metrics` under `serve --workers`: the counts of every process, aggregated, whichever
 * process a scrape reaches (a scrape on the broker's listener is handed to any of them, and
 * `metrics.listen` is the primary's). Counters and histograms are summed over the processes;
 * gauges take their metric's aggregator (a sum for what each process holds, such as attestations
 * in flight; the largest for what every process reads from the store, such as suspensions).
 *
 * The primary asks each ready worker for a snapshot of its registry over IPC; a worker that gets a
 * scrape asks the primary to gather. A process that does not answer within GATHER_TIMEOUT_MS is
 * left out of that scrape (and the log says so), so a scrape never hangs on a dying worker.
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from '../log.js';
import type { MetricSnapshot } from '../metrics/brokerMetrics.js';

const GATHER_TIMEOUT_MS = 2000;

type Msg =
  | { keyanchorMetrics: 'snapshot?'; id: number }
  | { keyanchorMetrics: 'snapshot'; id: number; metrics: MetricSnapshot }
  | { keyanchorMetrics: 'gather?'; id: number }
  | { keyanchorMetrics: 'gathered'; id: number; metrics: MetricSnapshot[] };

const isMsg = (m: unknown): m is Msg => typeof m === 'object' && m !== null && typeof (m as Msg).keyanchorMetrics === 'string';

/** Answers awaited by id, each dropped after the timeout. */
class Awaiting<T> {
  readonly #waiting = new Map<number, (v: T | undefined) => void>();
  #next = 1;

  ask(send: (id: number) => void): Promise<T | undefined> {
    const id = this.#next++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(id, undefined), GATHER_TIMEOUT_MS);
      timer.unref();
      this.#waiting.set(id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      try {
        send(id);
      } catch {
        this.settle(id, undefined);
      }
    });
  }

  settle(id: number, v: T | undefined): void {
    const done = this.#waiting.get(id);
    this.#waiting.delete(id);
    done?.(v);
  }
}

/** The primary's side: gathers its own snapshot and every worker's, and answers the workers' requests to. */
export class MetricsGatherer {
  readonly #snapshots = new Awaiting<MetricSnapshot>();

  constructor(
    private readonly own: () => Promise<MetricSnapshot>,
    private readonly workers: () => readonly ChildProcess[],
    private readonly log: Logger,
  ) {}

  /** Listens to a worker's messages (call once per worker process). */
  attach(child: ChildProcess): void {
    child.on('message', (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.keyanchorMetrics === 'snapshot') this.#snapshots.settle(m.id, m.metrics);
      else if (m.keyanchorMetrics === 'gather?') {
        void this.gather().then((metrics) => {
          if (child.connected) child.send({ keyanchorMetrics: 'gathered', id: m.id, metrics } satisfies Msg, (e) => e && this.log.warn({ err: String(e) }, 'metrics: could not answer a worker'));
        });
      }
    });
  }

  async gather(): Promise<MetricSnapshot[]> {
    const children = this.workers().filter((c) => c.connected);
    const theirs = await Promise.all(children.map((c) => this.#snapshots.ask((id) => c.send({ keyanchorMetrics: 'snapshot?', id } satisfies Msg))));
    const missing = theirs.filter((s) => s === undefined).length;
    if (missing > 0) this.log.warn({ missing, workers: children.length }, 'metrics: workers that did not answer in time are left out of this scrape');
    return [await this.own(), ...theirs.filter((s): s is MetricSnapshot => s !== undefined)];
  }
}

/** A worker's side: answers the primary's snapshot requests; a scrape here asks the primary to gather. */
export function workerMetrics(own: () => Promise<MetricSnapshot>, log: Logger): () => Promise<MetricSnapshot[]> {
  const gathered = new Awaiting<MetricSnapshot[]>();
  process.on('message', (m: unknown) => {
    if (!isMsg(m)) return;
    if (m.keyanchorMetrics === 'gathered') gathered.settle(m.id, m.metrics);
    else if (m.keyanchorMetrics === 'snapshot?') void own().then((metrics) => process.connected && process.send!({ keyanchorMetrics: 'snapshot', id: m.id, metrics } satisfies Msg));
  });
  return async () => {
    const all = await gathered.ask((id) => process.send!({ keyanchorMetrics: 'gather?', id } satisfies Msg));
    if (all) return all;
    log.warn('metrics: the primary did not gather in time; this scrape has this worker only');
    return [await own()];
  };
}
