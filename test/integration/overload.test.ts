/**
 * The global cap on attestations in flight (`server.maxAttestationsInFlight`) and where metrics
 * are served: with the cap taken, an attestation is `503 overloaded` with `Retry-After` before its
 * evidence is read, and counted; with `metrics.listen`, `/metrics` moves to its own listener; with
 * `metrics.enabled: false`, there is none.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { assembleBroker, startBroker, type Assembled } from '../../src/broker.js';
import { parseConfig } from '../../src/config.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;

beforeAll(async () => {
  w = await makeWorld({ configExtra: { server: { maxAttestationsInFlight: 2 } } });
  b = await assembleBroker(w.config);
  await b.keys.create(APP_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

const attest = async () => {
  const n = (await request(b.app).post('/v1/challenge').send({}).expect(200)).body.nonce as string;
  return request(b.app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: (await makeEvidence(w, { nonce: n })).compact }));
};

describe('attestations in flight', () => {
  it('past the cap: 503 overloaded with Retry-After, nothing decided; below it again: released', async () => {
    const held = [b.inFlight.enter(), b.inFlight.enter()];
    const r = await attest();
    expect({ status: r.status, code: r.body.code, retryAfter: r.headers['retry-after'] }).toEqual({ status: 503, code: 'overloaded', retryAfter: '1' });
    expect(b.inFlight.count).toBe(2);
    held[0]!();
    held[0]!(); // giving a slot back twice frees it once
    expect(b.inFlight.count).toBe(1);
    expect((await attest()).status).toBe(200);
    expect(b.inFlight.count).toBe(1);
    held[1]!();
    const m = (await request(b.app).get('/metrics').expect(200)).text;
    expect(m).toMatch(/^keyanchor_refusals_total\{code="overloaded",zone=""\} 1$/m);
    expect(m).toMatch(/^keyanchor_attestations_in_flight 0$/m);
    expect(m).toMatch(/^keyanchor_releases_total\{zone="z1"\} 1$/m);
    expect(m).toMatch(/^keyanchor_challenges_total 2$/m);
    expect(m).toMatch(/^keyanchor_nonces_outstanding 2$/m);
    expect(m).toMatch(/^keyanchor_attest_duration_seconds_count\{outcome="released"\} 1$/m);
    expect(m).toMatch(/^keyanchor_custody_release_duration_seconds_count 1$/m);
    expect(m).toMatch(/^keyanchor_store_transaction_duration_seconds_count\{outcome="committed"\} \d+$/m);
    expect(m).toMatch(/^process_cpu_seconds_total /m);
  });
});

describe('where /metrics is served', () => {
  it('metrics.listen: on its own listener only', async () => {
    const config = parseConfig(JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' }, metrics: { listen: { port: 0 } } }));
    await b.close();
    const broker = await startBroker(config);
    try {
      expect(broker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const own = await fetch(broker.metricsUrl!);
      expect(own.status).toBe(200);
      expect(own.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await own.text()).toMatch(/^keyanchor_suspensions_active\{kind="software"\} 0$/m);
      expect((await fetch(broker.metricsUrl!.replace('/metrics', '/healthz'))).status).toBe(404);
      const onBroker = await fetch(`${broker.url}/metrics`);
      expect({ status: onBroker.status, code: ((await onBroker.json()) as { code: string }).code }).toEqual({ status: 404, code: 'not_found' });
    } finally {
      await broker.close();
    }
  });

  it('metrics.enabled false: nowhere', async () => {
    const config = parseConfig(JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' }, metrics: { enabled: false } }));
    const off = await assembleBroker(config);
    try {
      expect((await request(off.app).get('/metrics')).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});
