/**
 * The audit trail through the admin API: a security team searches anything and signs checkpoints
 * on demand; an owner team searches only by a key under its prefixes and sees other teams' key
 * names taken out of the records; bad queries are 400s with a code, never a 5xx. Bearer JWTs
 * against a JWKS file, the broker's real parts.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { APP_KEY, makeEvidence, makeWorld, UNGRANTED_KEY, type World } from '../helpers/world.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'keyanchor-admin';
let w: World;
let b: Assembled;
let idp: CryptoKey;

beforeAll(async () => {
  w = await makeWorld({ configExtra: { admin: { enabled: true, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'jwks.json', algorithms: ['ES256'] } }, policy: { watch: false } } });
  const kp = await generateKeyPair('ES256', { extractable: true });
  idp = kp.privateKey;
  writeFileSync(path.join(w.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(kp.publicKey)), kid: 'k1' }] }));
  // "team" owns team/app-key only; "other" owns team/other-key (UNGRANTED_KEY); secops sees all.
  writeFileSync(path.join(w.policyDir, 'teams.yaml'), `teams:
  - name: team
    keyPrefixes: ["team/app-"]
    members: ["jwt:sub:owner"]
  - name: other
    keyPrefixes: ["team/other-"]
    members: ["jwt:sub:other"]
  - name: secops
    role: security
    members: ["jwt:sub:sec"]
`);
  b = await assembleBroker(w.config);
  await b.keys.create(APP_KEY, 'test');
  await b.keys.create(UNGRANTED_KEY, 'test');
  // One release of team/app-key, one refusal that asked for both keys.
  for (const keys of [[{ name: APP_KEY }], [{ name: APP_KEY }, { name: UNGRANTED_KEY }]]) {
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce as string;
    await request(b.app).post('/v1/attest').send({ evidence: (await makeEvidence(w, { nonce, keys })).compact });
  }
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

const get = async (url: string, sub: string) => request(b.app).get(url).set('authorization', `Bearer ${await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(idp)}`);
const post = async (url: string, sub: string) => request(b.app).post(url).set('authorization', `Bearer ${await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300 }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(idp)}`);
const problem = (r: request.Response) => ({ status: r.status, code: r.body.code as string });

describe('admin API: audit search', () => {
  it('a security team searches by decision and code, a page at a time', async () => {
    const all = await get('/v1/admin/audit?decision=refusal&code=key_not_granted', 'sec');
    expect(all.status).toBe(200);
    expect(all.body.records).toHaveLength(1);
    expect(all.body.records[0]).toMatchObject({ event: 'refusal', record: { code: 'key_not_granted', requested: [{ name: APP_KEY }, { name: UNGRANTED_KEY }] } });
    expect(all.body.records[0].redacted).toBeUndefined();
    const page = await get(`/v1/admin/audit?key=${APP_KEY}&limit=1`, 'sec');
    expect(page.body.records).toHaveLength(1);
    const next = await get(`/v1/admin/audit?key=${APP_KEY}&limit=1&after=${encodeURIComponent(page.body.next)}`, 'sec');
    expect(next.body.records[0].seq).not.toBe(page.body.records[0].seq);
  });

  it('an owner team sees records of its key only, with other teams\' key names taken out', async () => {
    const mine = await get(`/v1/admin/audit?key=${APP_KEY}&decision=refusal`, 'owner');
    expect(mine.status).toBe(200);
    expect(mine.body.records).toHaveLength(1);
    expect(mine.body.records[0]).toMatchObject({ redacted: true, record: { requested: [{ name: APP_KEY }], reason: '(withheld: it may name keys of other teams)' } });
    expect(JSON.stringify(mine.body)).not.toContain(UNGRANTED_KEY);
    expect(problem(await get(`/v1/admin/audit?key=${UNGRANTED_KEY}`, 'owner'))).toEqual({ status: 403, code: 'forbidden' });
    expect(problem(await get('/v1/admin/audit?decision=release', 'owner'))).toEqual({ status: 403, code: 'forbidden' });
  });

  it('refuses malformed queries with 400 request_malformed', async () => {
    for (const q of ['?bogus=1', '?key=a&key=b', '?since=yesterday', '?limit=0', '?limit=100000', '?after=nope', `?node=${'x'.repeat(600)}`]) {
      expect(problem(await get(`/v1/admin/audit${q}`, 'sec')), q).toEqual({ status: 400, code: 'request_malformed' });
    }
    expect(problem(await request(b.app).delete('/v1/admin/audit').set('authorization', 'Bearer x'))).toEqual({ status: 401, code: 'unauthorized' });
  });
});

describe('admin API: checkpoints on demand', () => {
  it('a security team signs checkpoints now and gets the entries; an owner may not', async () => {
    const r = await post('/v1/admin/audit/checkpoint', 'sec');
    expect(r.status).toBe(200);
    expect(r.body.refused).toEqual([]);
    expect(r.body.entries.length).toBeGreaterThan(0);
    expect(r.body.entries[0]).toMatchObject({ kind: 'checkpoint', text: expect.stringMatching(/^keyanchor-audit-checkpoint\/1\n/), sig: expect.any(String), key: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(problem(await post('/v1/admin/audit/checkpoint', 'owner'))).toEqual({ status: 403, code: 'forbidden' });
    expect(problem(await get('/v1/admin/audit/checkpoint', 'sec'))).toEqual({ status: 405, code: 'method_not_allowed' });
  });
});
