/**
 * The broker's metrics, in one prom-client registry, for `GET /metrics` (Prometheus text format).
 * Label values are bounded by the configuration and the policy: problem codes, zone, limit and
 * alarm names, outcomes, webhook targets. Never a nonce, request id, digest, node or key name:
 * those are in the log and the audit trail. Every metric is documented in docs/operations.md.
 */
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FiredAlarm } from '../alarms/evaluate.js';
import type { MetricSample } from '../policy/counters.js';
import type { WebhookStats } from '../webhook/sender.js';
import { SampleBridge } from './samples.js';

export interface MetricSources {
  /** Samples of parts that keep their own counts: the policy runtime (reloads, refusals, signed, version, expiry) and the audit trail (checkpoints, witnesses, the search indexer). */
  policy: () => MetricSample[];
  /** Webhook senders by target (`alarms`, …). */
  webhooks: () => ReadonlyArray<{ target: string; stats: WebhookStats }>;
  /** Active suspensions by kind. */
  suspensions: () => ReadonlyMap<string, number>;
  /** Attestations being decided now, in this process. */
  inFlight: () => number;
}

/** One process's registry as data (prom-client's JSON form), for aggregation across processes. */
export type MetricSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Latency buckets, in seconds: 0.5 ms to 10 s. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class BrokerMetrics {
  readonly registry = new Registry();
  readonly #bridge: SampleBridge;
  readonly #releases: Counter<'zone'>;
  readonly #refusals: Counter<'code' | 'zone'>;
  readonly #rateLimited: Counter<'limit'>;
  readonly #alarms: Counter<'alarm' | 'action'>;
  readonly #attest: Histogram<'outcome'>;
  readonly #custody: Histogram;
  readonly #store: Histogram<'outcome'>;
  readonly #challenges: Counter;
  readonly #issued: ChallengeWindow;
  /**
   * Under `serve --workers`: every process's snapshot, this one's included (server/workerMetrics.ts),
   * so that a scrape shows the broker's counts, not one process's. Absent: this process alone.
   */
  gather: (() => Promise<MetricSnapshot[]>) | undefined;

  constructor(sources: MetricSources, opts: { nonceTtlMs: number; now: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#bridge = new SampleBridge(this.registry, sources.policy);
    this.#releases = new Counter({ name: 'keyanchor_releases_total', help: 'Attestations that released keys, by zone of the node (a node in two zones counts in both; "" when in none)', labelNames: ['zone'], registers });
    this.#refusals = new Counter({ name: 'keyanchor_refusals_total', help: 'Refused attestations by problem code and zone of the node ("" before the node is authenticated, or when in no zone)', labelNames: ['code', 'zone'], registers });
    this.#rateLimited = new Counter({ name: 'keyanchor_rate_limited_total', help: 'Requests refused by a rate limit, by the limit that refused (policy limit name, or nonce.perSource for challenges)', labelNames: ['limit'], registers });
    this.#alarms = new Counter({ name: 'keyanchor_alarms_fired_total', help: 'Alarms fired, by alarm and action', labelNames: ['alarm', 'action'], registers });
    this.#attest = new Histogram({ name: 'keyanchor_attest_duration_seconds', help: 'Time to answer POST /v1/attest, by outcome (released, refused)', labelNames: ['outcome'], buckets: BUCKETS, registers });
    this.#custody = new Histogram({ name: 'keyanchor_custody_release_duration_seconds', help: 'Time custody takes to re-encrypt the keys of one release to the agent', buckets: BUCKETS, registers });
    this.#store = new Histogram({ name: 'keyanchor_store_transaction_duration_seconds', help: 'Store transactions, commit included (a release: nonce, limits, counts and its audit record), by outcome (committed, rolled_back: a refusal decided inside it, or a store failure)', labelNames: ['outcome'], buckets: BUCKETS, registers });
    this.#challenges = new Counter({ name: 'keyanchor_challenges_total', help: 'Challenge nonces issued by this process', registers });
    this.#issued = new ChallengeWindow(opts.nonceTtlMs, opts.now);
    const issued = this.#issued;
    new Gauge({
      name: 'keyanchor_nonces_outstanding',
      help: 'Nonces this process issued that have not expired yet (used or not: nonces keep no state until used)',
      registers,
      collect() {
        this.set(issued.count());
      },
    });
    new Gauge({
      name: 'keyanchor_attestations_in_flight',
      help: 'Attestations being decided by this process now (capped by server.maxAttestationsInFlight)',
      registers,
      collect() {
        this.set(sources.inFlight());
      },
    });
    new Gauge({
      name: 'keyanchor_suspensions_active',
      help: 'Active suspensions by kind of subject (software, zone, key, node)',
      labelNames: ['kind'],
      registers,
      aggregator: 'max', // every process holds the same set, from the store
      collect() {
        this.reset();
        for (const kind of ['software', 'zone', 'key', 'node']) this.set({ kind }, sources.suspensions().get(kind) ?? 0);
      },
    });
    const webhookCounter = (name: string, help: string, pick: (s: WebhookStats) => Array<[string, number]>) =>
      new Counter({
        name,
        help,
        labelNames: ['target', 'outcome'],
        registers,
        collect() {
          this.reset();
          for (const w of sources.webhooks()) for (const [outcome, v] of pick(w.stats)) this.inc({ target: w.target, outcome }, v);
        },
      });
    webhookCounter('keyanchor_webhook_events_total', 'Webhook events by target and outcome (delivered, failed after the last attempt or a final 4xx, dropped from a full queue)', (s) => [['delivered', s.delivered], ['failed', s.failed], ['dropped', s.dropped]]);
    webhookCounter('keyanchor_webhook_attempt_failures_total', 'Failed webhook delivery attempts by target (each retry counts; outcome is always "attempt")', (s) => [['attempt', s.attemptFailures]]);
    new Gauge({
      name: 'keyanchor_webhook_queue_length',
      help: 'Webhook events waiting or in flight, by target',
      labelNames: ['target'],
      registers,
      collect() {
        this.reset();
        for (const w of sources.webhooks()) this.set({ target: w.target }, w.stats.queued);
      },
    });
  }

  released(zones: readonly string[]): void {
    if (zones.length === 0) this.#releases.inc({ zone: '' });
    for (const zone of zones) this.#releases.inc({ zone });
  }

  refused(code: string, zones: readonly string[], limit?: string): void {
    if (zones.length === 0) this.#refusals.inc({ code, zone: '' });
    for (const zone of zones) this.#refusals.inc({ code, zone });
    if (limit !== undefined) this.#rateLimited.inc({ limit });
  }

  attest(outcome: 'released' | 'refused', seconds: number): void {
    this.#attest.observe({ outcome }, seconds);
  }

  custody(seconds: number): void {
    this.#custody.observe(seconds);
  }

  storeTransaction(committed: boolean, seconds: number): void {
    this.#store.observe({ outcome: committed ? 'committed' : 'rolled_back' }, seconds);
  }

  /** The per-source challenge limiter refused a challenge. */
  challengeLimited(): void {
    this.#rateLimited.inc({ limit: 'nonce.perSource' });
  }

  challenge(): void {
    this.#challenges.inc();
    this.#issued.add();
  }

  alarm(f: Pick<FiredAlarm, 'alarm' | 'action'>): void {
    this.#alarms.inc({ alarm: f.alarm, action: f.action });
  }

  /** This process's registry as data. */
  async snapshot(): Promise<MetricSnapshot> {
    this.#bridge.sync();
    return this.registry.getMetricsAsJSON();
  }

  /** The exposition, and its content type: this process's, or every process's aggregated (`gather`). */
  async render(): Promise<{ contentType: string; body: string }> {
    if (this.gather) return { contentType: this.registry.contentType, body: await AggregatorRegistry.aggregate(await this.gather()).metrics() };
    this.#bridge.sync();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Challenges issued within the last TTL, counted per second in a ring. */
class ChallengeWindow {
  readonly #slots: Int32Array;
  #at = 0;

  constructor(
    ttlMs: number,
    private readonly now: () => number,
  ) {
    this.#slots = new Int32Array(Math.max(1, Math.ceil(ttlMs / 1000)));
  }

  add(): void {
    this.#advance();
    this.#slots[this.#at % this.#slots.length]!++;
  }

  count(): number {
    this.#advance();
    return this.#slots.reduce((a, b) => a + b, 0);
  }

  #advance(): void {
    const s = Math.floor(this.now() / 1000);
    if (this.#at === 0) this.#at = s;
    for (let steps = 0; this.#at < s && steps < this.#slots.length; steps++) this.#slots[++this.#at % this.#slots.length] = 0;
    this.#at = Math.max(this.#at, s);
  }
}
