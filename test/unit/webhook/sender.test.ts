/**
 * The webhook sender against a real HTTP server on loopback: signatures that the independent
 * `standardwebhooks` package verifies, retries with the same webhook-id, final 4xx, a bounded queue
 * that never blocks the caller, and a secret that is never sent or shown.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import { Secret } from '../../../src/secret.js';
import { WebhookSender, type WebhookOptions } from '../../../src/webhook/sender.js';
import { webhookOptions, WebhookTarget } from '../../../src/webhook/config.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

interface Received { headers: http.IncomingHttpHeaders; body: string }

async function receiver(statuses: number[] = []) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.statusCode = statuses.shift() ?? 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { got, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

function sender(url: string, o: Partial<WebhookOptions> = {}) {
  const s = new WebhookSender({ url, secret: new Secret(SECRET), timeoutMs: 2000, maxQueue: 100, maxAttempts: 4, backoffMs: 10, maxBackoffMs: 40, ...o }, systemClock);
  closers.push(() => s.close());
  return s;
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('WebhookSender', () => {
  it('signs per Standard Webhooks: the standardwebhooks package verifies every delivery', async () => {
    const r = await receiver();
    closers.push(r.close);
    const s = sender(r.url);
    s.send('alarm.fired', { alarm: 'flood', subject: 'software:payments-api' });
    s.send('audit.checkpoint', { chain: 'c1', seq: 10 });
    await until(() => r.got.length === 2);
    const wh = new Webhook(SECRET);
    const bodies = r.got.map((g) => wh.verify(g.body, { 'webhook-id': g.headers['webhook-id'] as string, 'webhook-timestamp': g.headers['webhook-timestamp'] as string, 'webhook-signature': g.headers['webhook-signature'] as string }));
    expect(bodies.map((b) => (b as { type: string }).type)).toEqual(['alarm.fired', 'audit.checkpoint']);
    expect(bodies[0]).toMatchObject({ data: { alarm: 'flood', subject: 'software:payments-api' } });
    // A changed body does not verify.
    const g = r.got[0]!;
    expect(() => wh.verify(g.body.replace('flood', 'floor'), { 'webhook-id': g.headers['webhook-id'] as string, 'webhook-timestamp': g.headers['webhook-timestamp'] as string, 'webhook-signature': g.headers['webhook-signature'] as string })).toThrow();
    expect(JSON.stringify(r.got)).not.toContain(SECRET.slice(6));
    expect(s.stats()).toMatchObject({ delivered: 2, failed: 0, dropped: 0, queued: 0 });
  });

  it('retries 5xx, 429 and 408 with the same webhook-id; a 400 is final', async () => {
    const r = await receiver([500, 429, 408, 204, 400]);
    closers.push(r.close);
    const s = sender(r.url);
    s.send('a', {});
    s.send('b', {});
    await until(() => r.got.length === 5);
    const ids = r.got.map((g) => g.headers['webhook-id']);
    expect(new Set(ids.slice(0, 4)).size).toBe(1);
    expect(ids[4]).not.toBe(ids[0]);
    await until(() => s.stats().failed === 1);
    expect(s.stats()).toMatchObject({ delivered: 1, failed: 1, attemptFailures: 4 });
  });

  it('gives up after maxAttempts against an endpoint that is down, and send never waits', async () => {
    const r = await receiver();
    await r.close(); // nothing listens on that port now
    const s = sender(r.url, { maxAttempts: 3 });
    const t = performance.now();
    for (let i = 0; i < 5; i++) expect(s.send('x', { i })).toBe(true);
    expect(performance.now() - t).toBeLessThan(50); // enqueue only (not a timing benchmark: a guard against a blocking send)
    await until(() => s.stats().failed === 5);
    expect(s.stats()).toMatchObject({ delivered: 0, failed: 5, attemptFailures: 15, queued: 0 });
  });

  it('a full queue drops its oldest events and counts them', async () => {
    const r = await receiver();
    closers.push(r.close);
    const s = sender(r.url, { maxQueue: 3 });
    for (let i = 0; i < 10; i++) s.send('x', { i });
    await until(() => s.stats().queued === 0);
    expect(s.stats().dropped).toBe(6); // 0 went in flight at once; 1–6 were pushed out by 7–9
    const seen = r.got.map((g) => (JSON.parse(g.body) as { data: { i: number } }).data.i);
    expect(seen[0]).toBe(0); // the first was in flight already
    expect(seen.slice(1)).toEqual([7, 8, 9]);
  });

  it('refuses a malformed secret without echoing it, and redacts the secret when inspected', () => {
    expect(() => sender('http://127.0.0.1:1/', { secret: new Secret('not-a-whsec') })).toThrow(/^a webhook secret is "whsec_"/);
    const problems: string[] = [];
    const o = webhookOptions(WebhookTarget.parse({ url: 'https://hooks.example/x', secret: { env: 'HOOK' } }), { HOOK: 'whsec_short' }, 'alarms.webhook', '/', problems);
    expect(problems).toEqual(['alarms.webhook.secret: a webhook secret is "whsec_" followed by the base64 of at least 24 random bytes']);
    expect(inspect(o)).not.toContain('whsec_short');
    expect(JSON.stringify(o)).not.toContain('whsec_short');
  });
});
