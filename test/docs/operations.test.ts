/** docs/operations.md: its config example parses, and its option table names every option there is. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { assembleBroker } from '../../src/broker.js';
import { systemClock } from '../../src/clock.js';
import { ConfigSchema, parseConfig } from '../../src/config.js';
import { pkcs11ToolKekCommand } from '../../src/custody/pkcs11/kek.js';
import { BrokerMetrics } from '../../src/metrics/brokerMetrics.js';
import { PolicyCounters } from '../../src/policy/counters.js';
import { Secret } from '../../src/secret.js';
import { WebhookSender } from '../../src/webhook/sender.js';
import { signWebhook, webhookKey } from '../../src/webhook/signing.js';
import { freePort } from '../helpers/postgres.js';
import { ROOT } from '../helpers/processes.js';
import { makeWorld } from '../helpers/world.js';

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');

/** Every leaf option path of the config schema, e.g. `nonce.ttlSeconds`, `custody.pin`. */
function optionPaths(): string[] {
  const out: string[] = [];
  const walk = (shape: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(shape)) {
      const inner = unwrap(v);
      const sub = inner && typeof inner === 'object' && 'shape' in inner ? (inner.shape as Record<string, unknown>) : undefined;
      const options = (inner as { options?: Array<{ shape: Record<string, unknown> }> } | undefined)?.options;
      if (k === 'store' && options) {
        // A tagged union: every member's options, as `store.<name>`.
        for (const o of options) for (const name of Object.keys(o.shape)) out.push(`store.${name}`);
      } else if (sub && !['custody', 'tls'].includes(k)) walk(sub, `${prefix}${k}.`);
      else out.push(`${prefix}${k}`);
    }
  };
  walk(ConfigSchema.shape as Record<string, unknown>, '');
  return out;
}
function unwrap(v: unknown): unknown {
  let cur = v as { def?: { innerType?: unknown; schema?: unknown; in?: unknown } } | undefined;
  for (let i = 0; i < 5 && cur?.def; i++) cur = (cur.def.innerType ?? cur.def.schema ?? cur.def.in ?? cur) as typeof cur;
  return cur;
}

describe('docs/operations.md', () => {
  it('has a config example that parses', () => {
    const m = /<!-- config-example -->\n```yaml\n([\s\S]*?)```/.exec(doc);
    expect(m).not.toBeNull();
    const c = parseConfig(m![1], { file: '/etc/keyanchor/config.yaml', env: { KEYANCHOR_HSM_PIN: '1234', KEYANCHOR_DB_PASSWORD: 'pw', KEYANCHOR_ALARM_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}` } });
    expect(c.custody.kind).toBe('pkcs11');
    expect(c.store.kind).toBe('postgres');
    expect(c.admin.enabled).toBe(true);
    expect(c.alarms.webhook?.url).toBe('https://hooks.internal/keyanchor');
  });
  it('gives the same pkcs11-tool command for a KEK as `keyanchor hsm status` suggests', () => {
    expect(doc).toContain(`\n${pkcs11ToolKekCommand('/usr/lib/softhsm/libsofthsm2.so', 'keyanchor-kek', '01')}\n`);
    expect(doc.match(/^pkcs11-tool .*--keygen.*$/gm)).toHaveLength(1);
  });
  it('documents every option', () => {
    const paths = optionPaths();
    expect(paths.length).toBeGreaterThan(15);
    for (const p of paths) expect(doc, `option ${p}`).toMatch(new RegExp('`' + p.replace(/\./g, '\\.') + '[`.]'));
  });
});

describe('docs/operations.md: the controls', () => {
  const fenced = (marker: string, lang: string) => {
    const m = new RegExp(`<!-- ${marker} -->\\n\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(doc);
    expect(m, marker).not.toBeNull();
    return m![1]!;
  };

  it('the webhook receiver example, run as a process, verifies what the broker sends, refuses a forged body, and logs a retried delivery once', async () => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const port = await freePort();
    const receiver = spawn(process.execPath, ['--input-type=module', '-e', fenced('webhook-receiver', 'js')], { cwd: ROOT, env: { ...process.env, KEYANCHOR_WEBHOOK_SECRET: secret, PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    receiver.stdout.on('data', (d: Buffer) => lines.push(...String(d).split('\n').filter(Boolean)));
    try {
      await until(() => lines.includes('listening'));
      const url = `http://127.0.0.1:${port}/keyanchor`;
      const sender = new WebhookSender({ url, secret: new Secret(secret), timeoutMs: 2000, maxQueue: 10, maxAttempts: 2, backoffMs: 10, maxBackoffMs: 20 }, systemClock);
      sender.send('keyanchor.alarm.fired', { alarm: 'api-flood', subject: 'software:payments-api' });
      await until(() => sender.stats().delivered === 1);
      await sender.close();
      // The same delivery again (a retry carries the same webhook-id), and a forged one.
      const body = JSON.stringify({ type: 'keyanchor.alarm.fired', timestamp: new Date().toISOString(), data: { alarm: 'again' } });
      const ts = Math.floor(Date.now() / 1000);
      const headers = { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': signWebhook(webhookKey(new Secret(secret)), 'msg_1', ts, body) };
      expect((await fetch(url, { method: 'POST', headers, body })).status).toBe(204);
      expect((await fetch(url, { method: 'POST', headers, body })).status).toBe(204);
      expect((await fetch(url, { method: 'POST', headers, body: body.replace('again', 'forged') })).status).toBe(400);
      await until(() => lines.length >= 3);
      await new Promise((r) => setTimeout(r, 100));
      const events = lines.slice(1).map((l) => JSON.parse(l) as { type: string; data: { alarm: string } });
      expect(events.map((e) => [e.type, e.data.alarm])).toEqual([['keyanchor.alarm.fired', 'api-flood'], ['keyanchor.alarm.fired', 'again']]);
    } finally {
      receiver.kill();
    }
  });

  it('the alert rules parse and name only metrics the broker exports; every exported metric is documented', async () => {
    const rules = parse(fenced('alert-rules', 'yaml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const metrics = new BrokerMetrics(
      { policy: () => new PolicyCounters().samples({ signed: true, version: 3, expires: Date.now() + 86_400_000 }, Date.now()), webhooks: () => [], suspensions: () => new Map(), inFlight: () => 0 },
      { nonceTtlMs: 60_000, now: () => Date.now() },
    );
    // What a running broker exports (its audit trail, with a witness), and what only a signed policy adds (its version and expiry).
    const w = await makeWorld({ configExtra: { audit: { witnesses: [{ kind: 'file', path: 'witness.jsonl' }] } } });
    const b = await assembleBroker(w.config);
    const names = (text: string) => [...text.matchAll(/^# TYPE (keyanchor_\w+) /gm)].map((m) => m[1]!);
    let exported: Set<string>;
    try {
      exported = new Set([...names((await b.metrics.render()).body), ...names((await metrics.render()).body)]);
    } finally {
      await b.close();
      w.cleanup();
    }
    expect(exported).toContain('keyanchor_audit_witness_sent_total');
    expect(exported.size).toBeGreaterThan(25);
    const used = rules.groups.flatMap((g) => g.rules.flatMap((r) => [...r.expr.matchAll(/keyanchor_\w+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''))));
    expect(used.length).toBeGreaterThan(5);
    for (const name of used) expect(exported, name).toContain(name);
    for (const name of exported) expect(doc, name).toContain(`| \`${name}\` |`);
  });
});
