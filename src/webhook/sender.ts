/**
 * Delivers events to one webhook endpoint, signed per Standard Webhooks, from a bounded queue, so
 * that whoever emits an event (an alarm, an audit checkpoint) never waits for the receiver: `send`
 * only enqueues. One delivery at a time, in order; a failure (network, timeout, 408, 429, 5xx) is
 * retried with capped exponential backoff and jitter, up to `maxAttempts`; another 4xx is final.
 * A full queue drops its oldest waiting event (counted; the one in flight is not in the queue). Every delivery of one event carries the same
 * `webhook-id`, so a receiver can de-duplicate retries.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Clock } from '../clock.js';
import type { Secret } from '../secret.js';
import { signWebhook, webhookKey } from './signing.js';

export interface WebhookOptions {
  url: string;
  secret: Secret;
  /** PEM CA for an https endpoint signed by a private CA (default: the system's). */
  ca?: string;
  timeoutMs: number;
  maxQueue: number;
  maxAttempts: number;
  /** First retry delay; doubled per attempt up to `maxBackoffMs`, with ±50 % jitter. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const WEBHOOK_DEFAULTS = { timeoutMs: 5000, maxQueue: 1000, maxAttempts: 8, backoffMs: 500, maxBackoffMs: 60_000 } as const;

export interface WebhookStats {
  queued: number;
  delivered: number;
  /** Events given up after their last attempt, or refused with a final 4xx. */
  failed: number;
  /** Events dropped because the queue was full. */
  dropped: number;
  /** Attempts that failed (each retry counts). */
  attemptFailures: number;
}

interface Pending {
  id: string;
  body: string;
  attempts: number;
  onDelivered?: () => void;
}

export type WebhookLog = (level: 'warn' | 'error', fields: Record<string, unknown>, msg: string) => void;

export class WebhookSender {
  readonly #key: Buffer;
  readonly #queue: Pending[] = [];
  readonly #stats: WebhookStats = { queued: 0, delivered: 0, failed: 0, dropped: 0, attemptFailures: 0 };
  #running: Promise<void> | undefined;
  #inflight: Pending | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(
    private readonly o: WebhookOptions,
    private readonly clock: Clock,
    private readonly log: WebhookLog = () => undefined,
  ) {
    this.#key = webhookKey(o.secret);
    const u = new URL(o.url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error(`webhook URL ${o.url}: http or https only`);
  }

  /**
   * Enqueues `{type, timestamp, data}`; never blocks. False when the sender is closed.
   * `onDelivered` runs once the receiver answered 2xx.
   */
  send(type: string, data: Record<string, unknown>, onDelivered?: () => void): boolean {
    if (this.#closed) return false;
    if (this.#queue.length >= this.o.maxQueue) {
      this.#queue.shift();
      this.#stats.dropped++;
      this.log('warn', { url: this.o.url, maxQueue: this.o.maxQueue }, 'webhook queue full: dropped the oldest event');
    }
    const body = JSON.stringify({ type, timestamp: new Date(this.clock.now()).toISOString(), data });
    this.#queue.push({ id: `msg_${randomBytes(16).toString('hex')}`, body, attempts: 0, ...(onDelivered ? { onDelivered } : {}) });
    this.#running ??= this.#drain().finally(() => (this.#running = undefined));
    return true;
  }

  stats(): WebhookStats {
    return { ...this.#stats, queued: this.#queue.length + (this.#inflight ? 1 : 0) };
  }

  /** Stops accepting; waits up to `graceMs` for the queue to empty (no new retries are waited for). */
  async close(graceMs = 0): Promise<void> {
    this.#closed = true;
    const done = this.#running ?? Promise.resolve();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((r) => (t = setTimeout(r, graceMs)))]);
    clearTimeout(t);
    clearTimeout(this.#timer);
    this.#wake?.();
  }

  /** Takes events off the queue one at a time; the one in flight is no longer in the queue. */
  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
      this.#inflight = next;
      try {
        if (!(await this.#attempt(next))) return; // closed while waiting to retry
      } finally {
        this.#inflight = undefined;
      }
    }
  }

  /** Delivers one event, retrying; false when the sender closed before it was settled. */
  async #attempt(p: Pending): Promise<boolean> {
    for (;;) {
      p.attempts++;
      const outcome = await this.#deliver(p);
      if (outcome === 'ok') {
        this.#stats.delivered++;
        p.onDelivered?.();
        return true;
      }
      this.#stats.attemptFailures++;
      if (outcome === 'final' || p.attempts >= this.o.maxAttempts) {
        this.#stats.failed++;
        this.log('error', { url: this.o.url, id: p.id, attempts: p.attempts }, 'webhook delivery failed for good');
        return true;
      }
      if (this.#closed) return false;
      await this.#sleep(this.#backoff(p.attempts));
      if (this.#closed) return false;
    }
  }

  #backoff(attempts: number): number {
    const base = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (attempts - 1));
    return Math.round(base * (0.5 + Math.random()));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.#wake = r;
      this.#timer = setTimeout(r, ms);
      this.#timer.unref();
    });
  }

  /** One POST: 'ok' on 2xx, 'final' on a 4xx other than 408/429, 'retry' otherwise. */
  #deliver(p: Pending): Promise<'ok' | 'retry' | 'final'> {
    const ts = Math.floor(this.clock.now() / 1000);
    const url = new URL(this.o.url);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const req = lib.request(
        url,
        {
          method: 'POST',
          timeout: this.o.timeoutMs,
          ...(this.o.ca ? { ca: this.o.ca } : {}),
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(p.body),
            'webhook-id': p.id,
            'webhook-timestamp': String(ts),
            'webhook-signature': signWebhook(this.#key, p.id, ts, p.body),
          },
        },
        (res) => {
          res.resume();
          const s = res.statusCode ?? 0;
          res.on('end', () => resolve(s >= 200 && s < 300 ? 'ok' : s >= 400 && s < 500 && s !== 408 && s !== 429 ? 'final' : 'retry'));
          res.on('error', () => resolve('retry'));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        this.log('warn', { url: this.o.url, id: p.id, attempt: p.attempts, err: e.message }, 'webhook delivery attempt failed');
        resolve('retry');
      });
      req.end(p.body);
    });
  }
}
