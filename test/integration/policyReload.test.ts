/**
 * Signed policy through HTTP, on the app the broker assembles: a pinned root in the config, bundles
 * signed at test time, the admin reload route for the security team (200 with the version, or
 * 422 policy_rejected with every problem), releases recorded with the policy version and
 * manifest digest they were decided under, and expiry while running with an injected clock
 * (503 policy_expired on /v1/attest and /readyz, until a fresh bundle is loaded).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { auditRecords } from '../helpers/audit.js';
import { ManualClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { BUNDLE_FILE } from '../../src/policy/bundle/dsse.js';
import { signDir, testKey, type TestKey } from '../helpers/policyBundles.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'keyanchor-admin';
const DAY = 86_400_000;

let w: World;
let b: Assembled;
let idp: CryptoKey;
let rootKey: TestKey;
const clock = new ManualClock(Date.now());
const logLines: Array<Record<string, unknown>> = [];

const sign = (version: number, days = 10) => signDir(w.policyDir, { version, keys: [rootKey], expires: clock.now() + days * DAY });

beforeAll(async () => {
  rootKey = testKey('p256');
  w = await makeWorld({
    configExtra: {
      admin: { enabled: true, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'admin-jwks.json', algorithms: ['ES256'] } },
      policy: { root: { keys: ['policy-root.pub'], threshold: 1 }, requireSignedPolicy: true, watch: false },
      log: { level: 'info' },
    },
  });
  writeFileSync(path.join(w.dir, 'policy-root.pub'), rootKey.publicPem);
  const kp = await generateKeyPair('ES256', { extractable: true });
  idp = kp.privateKey;
  writeFileSync(path.join(w.dir, 'admin-jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(kp.publicKey)), kid: 'idp-1', use: 'sig' }] }));
  writeFileSync(
    path.join(w.policyDir, 'teams.yaml'),
    'teams:\n  - name: secops\n    role: security\n    members: ["jwt:group:secops"]\n  - name: team\n    keyPrefixes: ["team/"]\n    members: ["jwt:group:team-eng"]\n',
  );
  sign(1);
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (logLines.push(JSON.parse(String(c))), cb()) }));
  b = await assembleBroker(w.config, { clock, log });
  await b.keys.create(APP_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

const token = (group: string) =>
  new SignJWT({ groups: [group] }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject(`${group}@example.com`).setIssuedAt(Math.floor(clock.now() / 1000)).setExpirationTime(Math.floor(clock.now() / 1000) + 600).sign(idp);
const reload = async (group = 'secops') => request(b.app).post('/v1/admin/policy/reload').set('authorization', `Bearer ${await token(group)}`);

async function attest() {
  const { nonce } = (await request(b.app).post('/v1/challenge').send({})).body as { nonce: string };
  const { compact } = await makeEvidence(w, { nonce, iat: Math.floor(clock.now() / 1000) });
  return request(b.app).post('/v1/attest').send({ evidence: compact });
}

/** The audit records written so far. */
const audit = () => auditRecords(b.store.read);
const manifestDigest = () => /"manifestSha256":"([0-9a-f]{64})"/.exec(JSON.stringify(b.policy.status()))![1]!;

describe('signed policy over HTTP', () => {
  it('releases name the policy version and manifest digest they were decided under', async () => {
    const r = await attest();
    expect(r.status).toBe(200);
    const last = (await audit()).at(-1)!;
    expect(last).toMatchObject({ event: 'release', policy: { version: 1, manifestSha256: manifestDigest() } });
  });

  it('/readyz says the policy is signed, with its version and expiry', async () => {
    const r = await request(b.app).get('/readyz');
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { status: 'ready', policy: { signed: true, version: 1, expires: new Date(Math.floor((clock.now() + 10 * DAY) / 1000) * 1000).toISOString() }, controls: { limits: 0, alarms: 0, deniedNodes: 0, suspensions: 0 } } });
  });

  it('reload: an owner team may not; the security team may, and an unchanged bundle says so', async () => {
    const denied = await reload('team-eng');
    expect({ status: denied.status, code: denied.body.code }).toEqual({ status: 403, code: 'forbidden' });
    const same = await reload();
    expect({ status: same.status, body: same.body }).toEqual({ status: 200, body: { outcome: 'unchanged', version: 1, manifestSha256: manifestDigest() } });
  });

  it('a file changed without signing: 422 policy_rejected with every problem; the policy in force stays', async () => {
    const file = path.join(w.policyDir, 'teams.yaml');
    const teams = readFileSync(file, 'utf8');
    writeFileSync(file, teams + '  - name: rogue\n    role: security\n    members: ["jwt:group:rogue"]\n');
    const r = await reload();
    expect(r.status).toBe(422);
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(r.body).toMatchObject({ code: 'policy_rejected', status: 422, refusal: 'policy_file_altered', problems: [`${file}:1:1 (bundle): policy_file_altered: teams.yaml differs from the content signed in the manifest`] });
    expect((await attest()).status).toBe(200);
    expect((await audit()).at(-1)).toMatchObject({ policy: { version: 1 } });
    writeFileSync(file, teams);
  });

  it('a new version loads (200 with it), and the next release is decided under it', async () => {
    sign(2);
    const r = await reload();
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: { outcome: 'loaded', version: 2, manifestSha256: manifestDigest() } });
    expect((await attest()).status).toBe(200);
    expect((await audit()).at(-1)).toMatchObject({ event: 'release', policy: { version: 2, manifestSha256: manifestDigest() } });
  });

  it('the older bundle again: 422 with refusal policy_rollback', async () => {
    const v2 = readFileSync(path.join(w.policyDir, BUNDLE_FILE));
    sign(1);
    const r = await reload();
    expect({ status: r.status, refusal: r.body.refusal }).toEqual({ status: 422, refusal: 'policy_rollback' });
    writeFileSync(path.join(w.policyDir, BUNDLE_FILE), v2);
  });

  it('GET /v1/admin/policy shows the security team the status and the last reload', async () => {
    const r = await request(b.app).get('/v1/admin/policy').set('authorization', `Bearer ${await token('secops')}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ signed: true, version: 2, expired: false, lastReload: { trigger: 'api', outcome: 'refused', code: 'policy_rollback' } });
  });

  it('once the bundle expires: 503 policy_expired for releases and /readyz; a fresh bundle through the API restores both', async () => {
    clock.advance(10 * DAY + 1000);
    const r = await attest();
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'policy_expired' });
    expect((await audit()).at(-1)).toMatchObject({ event: 'refusal', code: 'policy_expired' });
    const ready = await request(b.app).get('/readyz');
    expect({ status: ready.status, code: ready.body.code }).toEqual({ status: 503, code: 'policy_expired' });
    sign(3, 30);
    expect((await reload()).body).toMatchObject({ outcome: 'loaded', version: 3 });
    expect((await attest()).status).toBe(200);
    expect((await request(b.app).get('/readyz')).status).toBe(200);
  });
});
