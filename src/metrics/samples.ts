/**
 * Plain samples ({ name, help, type, labels, value }) from parts that keep their own counts (the
 * policy runtime), as prom-client metric families: each family is registered the first time one
 * of its samples appears, and reports exactly the samples its source gives at scrape time (a
 * gauge the source leaves out, like the version of an unsigned policy, is absent, not 0).
 */
import type { Metric, Registry } from 'prom-client';
import type { MetricSample } from '../policy/counters.js';

class SampleFamily {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricSample['type'],
    private readonly latest: () => MetricSample[],
  ) {}

  get() {
    const values = this.latest().filter((s) => s.name === this.name).map((s) => ({ labels: s.labels ?? {}, value: s.value }));
    // Across the processes of `serve --workers`: counts add up; a gauge (the policy's version and
    // expiry, the newest checkpoint's time) is the same or newest everywhere.
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.type === 'gauge' ? ('max' as const) : ('sum' as const) };
  }
}

export class SampleBridge {
  readonly #known = new Set<string>();
  #last: MetricSample[] = [];

  constructor(
    private readonly registry: Registry,
    private readonly source: () => MetricSample[],
  ) {}

  /** Reads the source once for this scrape, registering families seen for the first time. */
  sync(): void {
    this.#last = this.source();
    for (const s of this.#last) {
      if (this.#known.has(s.name)) continue;
      this.#known.add(s.name);
      this.registry.registerMetric(new SampleFamily(s.name, s.help, s.type, () => this.#last) as unknown as Metric);
    }
  }
}
