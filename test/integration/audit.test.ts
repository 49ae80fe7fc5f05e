/**
 * The audit trail in the store: releases, refusals and lifecycle operations recorded in the same
 * transaction as what they record, hash-chained per writer; unauthenticated refusals counted per
 * source and window; fail closed when the store cannot record.
 */
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyTrail } from '../../src/audit/verify.js';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { ManualClock } from '../../src/clock.js';
import { toX5c } from '../../src/pki.js';
import { auditChains, readChain } from '../../src/store/audit.js';
import type { Sql } from '../../src/store/sql.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World | undefined;
let b: Assembled | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
  w?.cleanup();
});

async function records(sql: Sql): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown> & { at: number }> = [];
  for (const id of await auditChains(sql)) for await (const r of readChain(sql, id)) out.push({ ...(JSON.parse(r.body) as Record<string, unknown>), at: r.at });
  return out.sort((a, b) => a.at - b.at);
}

async function attestOnce(app: Parameters<typeof request>[0], world: World, clock: ManualClock, mutate?: Parameters<typeof makeEvidence>[1]['mutate']) {
  const nonce = (await request(app).post('/v1/challenge').expect(200)).body.nonce;
  const { compact } = await makeEvidence(world, { nonce, iat: Math.floor(clock.now() / 1000), ...(mutate ? { mutate } : {}) });
  return request(app).post('/v1/attest').send({ evidence: compact });
}

describe('audit trail', () => {
  it('records releases, refusals and lifecycle operations in verified hash chains; keys show their release statistics', async () => {
    w = await makeWorld();
    const clock = new ManualClock(Date.now());
    b = await assembleBroker(w.config, { clock });
    await b.keys.create(APP_KEY, 'alice');
    clock.advance(10);
    expect((await attestOnce(b.app, w, clock)).status).toBe(200);
    clock.advance(10);
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce;
    const bad = await makeEvidence(w, { nonce, binary: { sha256: 'ab'.repeat(32) } });
    expect((await request(b.app).post('/v1/attest').send({ evidence: bad.compact })).status).toBe(403);

    const report = await verifyTrail(b.store.read);
    expect(report.intact).toBe(true);
    const events = (await records(b.store.read)).filter((e) => e.event !== 'store.migrate' && e.event !== 'policy.load'); // the broker's start
    expect(events.map((e) => e.event)).toEqual(['key.create', 'release', 'refusal']);
    expect(events[0]).toMatchObject({ actor: 'alice', key: APP_KEY, version: 1 });
    expect(events[1]).toMatchObject({ released: [`${APP_KEY}@1`], software: ['app'], zones: ['z1'], node: { sanUris: ['spiffe://test/zone/z1/node-1'] } });
    expect(events[2]).toMatchObject({ code: 'software_not_approved', source: '127.0.0.1' });
    // The key's metadata shows who received it, from the statistics the release transaction kept.
    expect((await b.keys.show(APP_KEY)).versions[0]!.releases).toMatchObject({ count: 1, lastNode: 'spiffe://test/zone/z1/node-1', lastSoftware: ['app'] });
    expect((await b.store.read.all("SELECT count FROM counters WHERE counter_key = 'refusals:software_not_approved'"))[0]).toEqual({ count: 1 });
  });

  it('after verification, client-chosen fields in a record are capped', async () => {
    w = await makeWorld();
    const clock = new ManualClock(Date.now());
    b = await assembleBroker(w.config, { clock });
    await b.keys.create(APP_KEY, 'alice');
    const r = await attestOnce(b.app, w, clock, (p) => ((p.workload as { binary: { path: string } }).binary.path = '/opt/' + 'x'.repeat(4000)));
    expect(r.status).toBe(200);
    const rec = (await records(b.store.read)).find((e) => e.event === 'release')!;
    const path = (rec.workload as { path: string }).path;
    expect(path.length).toBeLessThan(300);
    expect(path).toMatch(/^\/opt\/x+…\(4005\)$/);
  });

  it('a flood of unauthenticated bad attestations from one source adds one record per window, with counts and no client text', async () => {
    w = await makeWorld({ configExtra: { audit: { unauthenticatedWindowSeconds: 60 } } });
    const clock = new ManualClock(Date.UTC(2030, 0, 1, 12, 0, 5));
    b = await assembleBroker(w.config, { clock });
    const before = (await records(b.store.read)).length;
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce;
    const forged = (await makeEvidence(w, { nonce, chain: toX5c(w.node), signer: { ...w.node, keyPem: w.rogueNode.keyPem } })).compact;
    const hostile = 'attacker-text-'.repeat(200);
    const sends = [
      ...Array.from({ length: 150 }, () => ({ evidence: forged })),
      ...Array.from({ length: 100 }, () => ({ evidence: `${Buffer.from(hostile).toString('base64url')}.e30.c2ln` })),
      ...Array.from({ length: 50 }, () => ({ nope: hostile })),
    ];
    for (const body of sends) expect((await request(b.app).post('/v1/attest').send(body)).status).toBeLessThan(500);
    clock.advance(60_000); // the next window: the first one is written
    expect((await request(b.app).post('/v1/attest').send({ evidence: forged })).status).toBe(401);
    await b.refusals.flush();
    const added = (await records(b.store.read)).slice(before);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      event: 'refusal.unauthenticated', source: '127.0.0.1', windowStart: '2030-01-01T12:00:00.000Z', windowSeconds: 60, count: 300,
      codes: { evidence_signature_invalid: 150, evidence_malformed: 100, request_malformed: 50 },
    });
    expect((added[0]!.evidenceSha256 as string[]).length).toBeLessThanOrEqual(3);
    expect(JSON.stringify(added)).not.toContain('attacker-text');
    // At shutdown the open window is written too.
    await b.close();
    const { openStore } = await import('../../src/store/index.js');
    const s = await openStore(w.config.store, { clock });
    const after = (await records(s.read)).slice(before);
    await s.close();
    expect(after).toHaveLength(2);
    expect(after[1]).toMatchObject({ event: 'refusal.unauthenticated', windowStart: '2030-01-01T12:01:00.000Z', count: 1 });
    b = undefined;
  });

  it('custody failing after the commit: 503 custody_unavailable, no key, a release.failed record after the release record; the nonce is used up', async () => {
    w = await makeWorld();
    const clock = new ManualClock(Date.now());
    b = await assembleBroker(w.config, { clock });
    await b.keys.create(APP_KEY, 'alice');
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce;
    const { compact } = await makeEvidence(w, { nonce, iat: Math.floor(clock.now() / 1000) });
    await b.custodian.close(); // the software custodian refuses every unwrap from now on
    const r = await request(b.app).post('/v1/attest').send({ evidence: compact });
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'custody_unavailable' });
    expect(r.body.keys).toBeUndefined();
    const events = (await records(b.store.read)).filter((e) => e.requestId === r.body.requestId);
    expect(events.map((e) => e.event)).toEqual(['release', 'release.failed']);
    expect(events[1]).toMatchObject({ code: 'custody_unavailable' });
    const again = await request(b.app).post('/v1/attest').send({ evidence: compact });
    expect({ status: again.status, code: again.body.code }).toEqual({ status: 401, code: 'nonce_replayed' });
  });

  it('releases nothing and answers 503 store_unavailable when the record cannot be written; the nonce is not used up', async () => {
    w = await makeWorld();
    const clock = new ManualClock(Date.now());
    b = await assembleBroker(w.config, { clock });
    await b.keys.create(APP_KEY, 'alice');
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce;
    const { compact } = await makeEvidence(w, { nonce, iat: Math.floor(clock.now() / 1000) });
    await b.store.transaction((tx) => tx.run('ALTER TABLE audit RENAME TO audit_gone'));
    const r = await request(b.app).post('/v1/attest').send({ evidence: compact });
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'store_unavailable' });
    expect(r.body.keys).toBeUndefined();
    expect(r.headers['retry-after']).toBe('1');
    await b.store.transaction((tx) => tx.run('ALTER TABLE audit_gone RENAME TO audit'));
    expect((await request(b.app).post('/v1/attest').send({ evidence: compact })).status).toBe(200);
  });
});
