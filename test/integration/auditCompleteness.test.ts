/**
 * Completeness: a scripted run of every decision kind this broker makes leaves exactly the
 * expected audit records, in order, each with the fields that identify the decision — and no key,
 * no PIN, no client text beyond its cap. Real parts throughout: assembleBroker with software
 * custody, a SQLite store on disk, bearer JWTs for the admin API against a JWKS file, a file
 * witness; the clock is injected so the per-window tallies can be closed without sleeping.
 *
 * The controls' decisions are in the run too: a rate limit's 429, the alarm it fires, the
 * suspension that alarm makes, the 403 it causes, and security reading and clearing it.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneTrail } from '../../src/audit/prune.js';
import { auditStoreId, storeAuditSigner } from '../../src/audit/signingKey.js';
import { verifyTrail } from '../../src/audit/verify.js';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { ManualClock } from '../../src/clock.js';
import { auditRecords, auditText } from '../helpers/audit.js';
import { writeControls } from '../helpers/controls.js';
import { APP_KEY, makeEvidence, makeWorld, openReleased, UNGRANTED_KEY, type World } from '../helpers/world.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'keyanchor-admin';

let w: World;
let b: Assembled;
let clock: ManualClock;
let idp: CryptoKey;
const released: string[] = [];

beforeAll(async () => {
  w = await makeWorld({
    configExtra: {
      admin: { enabled: true, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'jwks.json', algorithms: ['ES256'] } },
      policy: { watch: false },
      audit: { witnesses: [{ kind: 'file', path: 'witness.jsonl' }], checkpoint: { everyRecords: 1000, everySeconds: 3600, sweepSeconds: 0 } },
    },
  });
  const kp = await generateKeyPair('ES256', { extractable: true });
  idp = kp.privateKey;
  writeFileSync(path.join(w.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(kp.publicKey)), kid: 'k1' }] }));
  writeFileSync(path.join(w.policyDir, 'teams.yaml'), 'teams:\n  - name: team\n    keyPrefixes: ["team/"]\n    members: ["jwt:sub:owner"]\n  - name: secops\n    role: security\n    members: ["jwt:sub:sec"]\n');
  clock = new ManualClock(Date.now());
  b = await assembleBroker(w.config, { clock });
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

const bearer = async (sub: string) => `Bearer ${await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub, iat: Math.floor(clock.now() / 1000), exp: Math.floor(clock.now() / 1000) + 300 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(idp)}`;
const admin = async (method: 'get' | 'post', url: string, sub?: string) => {
  let t = request(b.app)[method](url);
  if (sub) t = t.set('authorization', await bearer(sub));
  return t;
};
async function attest(o: Partial<Parameters<typeof makeEvidence>[1]> = {}) {
  const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce as string;
  const ev = await makeEvidence(w, { nonce, iat: Math.floor(clock.now() / 1000), ...o });
  const r = await request(b.app).post('/v1/attest').send({ evidence: ev.compact });
  return { r, ev };
}
/** The records after the first `from`, as [event, a field or two that identify the decision]. */
const summary = (records: Array<Record<string, unknown>>) =>
  records.map((r) => [r.event, r.code ?? r.trigger ?? r.actor ?? r.key ?? r.outcome ?? null]);

describe('every decision leaves exactly its record', () => {
  it('a scripted run of every decision kind', async () => {
    await b.keys.create(APP_KEY, 'cli:ops'); // key.create
    await b.keys.create(UNGRANTED_KEY, 'cli:ops');
    await b.keys.rotate(APP_KEY, 'cli:ops'); // key.rotate
    await b.keys.setState(APP_KEY, 1, 'disabled', 'cli:ops'); // key.state
    await b.keys.exportWrapped('cli:ops'); // keystore.export

    const ok = await attest(); // release
    expect(ok.r.status).toBe(200);
    const key = await openReleased(ok.r.body.keys[0].jwe, ok.ev.recipient);
    released.push(key.key.toString('base64'), key.key.toString('hex'), key.key.toString('base64url'));
    expect((await attest({ binary: { sha256: 'ab'.repeat(32) } })).r.status).toBe(403); // refusal software_not_approved
    expect((await attest({ keys: [{ name: UNGRANTED_KEY }] })).r.status).toBe(403); // refusal key_not_granted
    expect((await attest({ iat: Math.floor(clock.now() / 1000) - 3600 })).r.status).toBe(401); // refusal clock_skew
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce as string;
    const once = await makeEvidence(w, { nonce, iat: Math.floor(clock.now() / 1000), mutate: (p) => ((p.workload as { binary: { path: string } }).binary.path = `/opt/${'x'.repeat(3990)}`) });
    expect((await request(b.app).post('/v1/attest').send({ evidence: once.compact })).status).toBe(200); // release (a long path)
    expect((await request(b.app).post('/v1/attest').send({ evidence: once.compact })).status).toBe(401); // refusal nonce_replayed
    expect((await request(b.app).post('/v1/attest').send({ evidence: 'not.a.jws' })).status).toBe(400); // counted: refusal.unauthenticated

    expect((await admin('get', '/v1/admin/keys')).status).toBe(401); // counted: admin.unauthenticated
    expect((await admin('get', '/v1/admin/keys', 'owner')).status).toBe(200); // admin.key.list
    expect((await admin('get', `/v1/admin/keys/${APP_KEY}`, 'owner')).status).toBe(200); // admin.key.show
    expect((await admin('get', '/v1/admin/keys/other/key', 'owner')).status).toBe(403); // admin.forbidden
    expect((await admin('get', '/v1/admin/policy', 'sec')).status).toBe(200); // admin.policy.status
    expect((await admin('post', '/v1/admin/policy/reload', 'sec')).status).toBe(200); // unchanged: admin.policy.reload only
    writeFileSync(path.join(w.policyDir, 'broken.yaml'), 'software: [');
    expect((await admin('post', '/v1/admin/policy/reload', 'sec')).status).toBe(422); // policy.refused, admin.policy.reload
    writeFileSync(path.join(w.policyDir, 'broken.yaml'), '# fixed\n');
    expect((await admin('post', '/v1/admin/policy/reload', 'sec')).status).toBe(200); // policy.load, admin.policy.reload
    expect((await admin('get', `/v1/admin/audit?key=${APP_KEY}`, 'owner')).status).toBe(200); // admin.audit.search
    expect((await admin('post', '/v1/admin/audit/checkpoint', 'sec')).status).toBe(200); // admin.audit.checkpoint

    writeControls(w, 'limits:\n  - name: app-hourly\n    software: app\n    windows: ["1/h"]\nalarms:\n  - name: app-limited\n    measure: refusals\n    codes: [rate_limited]\n    software: app\n    period: 1m\n    threshold: 0\n    action: suspend\n');
    expect((await admin('post', '/v1/admin/policy/reload', 'sec')).status).toBe(200); // policy.load, admin.policy.reload
    expect((await attest()).r.status).toBe(200); // release, charged to app-hourly
    expect((await attest()).r.status).toBe(429); // refusal rate_limited; the alarm fires and suspends
    expect((await attest()).r.status).toBe(403); // refusal suspended
    expect((await admin('get', '/v1/admin/suspensions', 'sec')).status).toBe(200); // admin.suspension.list
    expect((await admin('get', '/v1/admin/suspensions/software:app', 'sec')).status).toBe(200); // admin.suspension.show
    expect((await admin('post', '/v1/admin/suspensions/software:app/clear', 'sec')).status).toBe(200); // suspension.cleared
    writeControls(w, '# no limits, no alarms\n');
    expect((await admin('post', '/v1/admin/policy/reload', 'sec')).status).toBe(200); // policy.load, admin.policy.reload

    clock.advance(61_000);
    await b.refusals.flush(true);
    await b.audit.adminUnauthenticated.flush(true);

    await b.custodian.close(); // custody fails after the commit: release, then release.failed
    expect((await attest()).r.status).toBe(503);

    const records = await auditRecords(b.store.read);
    expect(summary(records)).toEqual([
      ['store.migrate', null],
      ['policy.load', 'start'],
      ['key.create', 'cli:ops'],
      ['key.create', 'cli:ops'],
      ['key.rotate', 'cli:ops'],
      ['key.state', 'cli:ops'],
      ['keystore.export', 'cli:ops'],
      ['release', null],
      ['refusal', 'software_not_approved'],
      ['refusal', 'key_not_granted'],
      ['refusal', 'clock_skew'],
      ['release', null],
      ['refusal', 'nonce_replayed'],
      ['admin.key.list', 'jwt:sub:owner'],
      ['admin.key.show', 'jwt:sub:owner'],
      ['admin.forbidden', 'forbidden'],
      ['admin.policy.status', 'jwt:sub:sec'],
      ['admin.policy.reload', 'jwt:sub:sec'],
      ['policy.refused', 'policy_invalid'],
      ['admin.policy.reload', 'jwt:sub:sec'],
      ['policy.load', 'api'],
      ['admin.policy.reload', 'jwt:sub:sec'],
      ['admin.audit.search', 'jwt:sub:owner'],
      ['admin.audit.checkpoint', 'jwt:sub:sec'],
      ['policy.load', 'api'],
      ['admin.policy.reload', 'jwt:sub:sec'],
      ['release', null],
      ['refusal', 'rate_limited'],
      ['alarm', null],
      ['suspension.set', null],
      ['refusal', 'suspended'],
      ['admin.suspension.list', 'jwt:sub:sec'],
      ['admin.suspension.show', 'jwt:sub:sec'],
      ['suspension.cleared', null],
      ['policy.load', 'api'],
      ['admin.policy.reload', 'jwt:sub:sec'],
      ['refusal.unauthenticated', null],
      ['admin.unauthenticated', null],
      ['release', null],
      ['release.failed', 'custody_unavailable'],
    ]);
    const by = (event: string, i = 0) => records.filter((r) => r.event === event)[i]!;
    const policy = { version: null, manifestSha256: expect.stringMatching(/^[0-9a-f]{64}$/) };
    expect(by('release')).toMatchObject({ policy, released: [`${APP_KEY}@2`], software: ['app'], zones: ['z1'], node: { sanUris: ['spiffe://test/zone/z1/node-1'] } });
    expect(by('refusal')).toMatchObject({ policy, code: 'software_not_approved', source: '127.0.0.1' });
    expect(((by('release', 1).workload as { path: string }).path)).toMatch(/^\/opt\/x{251}…\(3995\)$/);
    expect(by('refusal.unauthenticated')).toMatchObject({ codes: { evidence_malformed: 1 }, count: 1 });
    expect(by('admin.unauthenticated')).toMatchObject({ codes: { unauthorized: 1 }, count: 1, source: '127.0.0.1' });
    expect(by('admin.forbidden')).toMatchObject({ actor: 'jwt:sub:owner', method: 'GET', path: '/v1/admin/keys/other/key' });
    expect(by('policy.refused')).toMatchObject({ trigger: 'api', code: 'policy_invalid', problems: 1, inForce: policy });
    expect(by('policy.load', 1)).toMatchObject({ trigger: 'api', version: null, manifestSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(by('admin.policy.reload', 1)).toMatchObject({ outcome: 'refused', refusal: 'policy_invalid' });
    expect(by('admin.audit.search')).toMatchObject({ filter: { key: APP_KEY }, teams: ['team'] });
    expect(records.find((r) => r.code === 'rate_limited')).toMatchObject({ policy: { version: null }, limit: 'app-hourly', software: ['app'] });
    expect(by('alarm')).toMatchObject({ alarm: 'app-limited', action: 'suspend', subject: 'software:app' });
    expect(by('suspension.set')).toMatchObject({ subject: 'software:app', by: 'alarm:app-limited' });
    expect(by('suspension.cleared')).toMatchObject({ subject: 'software:app', by: 'jwt:sub:sec' });

    // Never a key or a PIN: the released key's bytes, in any encoding, are nowhere in the trail.
    const text = await auditText(b.store.read);
    for (const k of released) expect(text).not.toContain(k);
  });

  it('the trail verifies with the broker\'s key, every checkpoint reached the file witness; prune records itself', async () => {
    const pub = createPublicKey(readFileSync(path.join(w.stateDir, 'audit-signing.pem')));
    const r = await verifyTrail(b.store.read, { keys: [pub] });
    expect(r.intact).toBe(true);
    expect(r.log.entries).toBeGreaterThan(0);
    const witnessed = readFileSync(path.join(w.dir, 'witness.jsonl'), 'utf8').trim().split('\n');
    expect(witnessed.length).toBe(r.log.entries);
    clock.advance(1000);
    const writer = { store: b.store, signer: (await storeAuditSigner(w.config, b.store, b.custodian, false))!, clock, storeId: await auditStoreId(b.store) };
    const pruned = await pruneTrail(writer, { before: clock.now(), actor: 'cli:ops' });
    const last = (await auditRecords(b.store.read)).at(-1)!;
    expect(last).toMatchObject({ event: 'audit.prune', actor: 'cli:ops', retiredThrough: pruned.retiredThrough, records: pruned.records });
  });
});
