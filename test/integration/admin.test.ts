/**
 * The admin API through HTTP with bearer JWTs: real software custody and audit trail from
 * assembleBroker, real policy files with teams, tokens signed with jose against a JWKS file
 * written at test time, all through the app the broker assembles (admin enabled in the config).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrivateKey, createSign, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { RequestListener } from 'node:http';
import request from 'supertest';
import { base64url, exportJWK, exportPKCS8 as exportPkcs8, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { createLogger } from '../../src/log.js';
import { auditRecords, auditText } from '../helpers/audit.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'keyanchor-admin';
const SEARCH_KEY = 'search/index';

let w: World;
let b: Assembled;
let app: RequestListener;
const logLines: Array<Record<string, unknown>> = [];
/** The text of every admin response, to check afterwards that none carries key material. */
const texts: string[] = [];
const idp = {} as { es256: CryptoKey; es384: CryptoKey; foreign: CryptoKey };

beforeAll(async () => {
  w = await makeWorld({
    configExtra: {
      admin: { enabled: true, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: 'admin-jwks.json', algorithms: ['ES256'], maxTokenAgeSeconds: 3600 } },
      log: { level: 'info' },
    },
  });
  const es256 = await generateKeyPair('ES256', { extractable: true });
  const es384 = await generateKeyPair('ES384', { extractable: true });
  idp.es256 = es256.privateKey;
  idp.es384 = es384.privateKey;
  idp.foreign = (await generateKeyPair('ES256')).privateKey;
  // The ES384 key is in the JWKS but ES384 is not in the configured algorithms.
  writeFileSync(
    path.join(w.dir, 'admin-jwks.json'),
    JSON.stringify({ keys: [{ ...(await exportJWK(es256.publicKey)), kid: 'idp-1', use: 'sig' }, { ...(await exportJWK(es384.publicKey)), kid: 'idp-384', use: 'sig' }] }),
  );
  writeFileSync(
    path.join(w.policyDir, 'admin.yaml'),
    `# Teams for the admin API tests.
teams:
  - name: payments
    role: owner
    keyPrefixes: ["payments/"]
    members: ["jwt:group:payments-eng", "cert:uri:spiffe://admin.test/ci/payments"]
  - name: search
    keyPrefixes: ["search/"]
    members: ["jwt:sub:sam@example.com"]
  - name: secops
    role: security
    members: ["jwt:group:secops"]
`,
  );
  const log = createLogger('info', new Writable({ write: (chunk, _enc, cb) => (logLines.push(JSON.parse(String(chunk))), cb()) }));
  b = await assembleBroker(w.config, { log });
  await b.keys.create(SEARCH_KEY, 'test');
  app = b.app;
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

const now = () => Math.floor(Date.now() / 1000);

interface TokenOptions {
  alg?: string;
  kid?: string;
  key?: CryptoKey | Uint8Array;
  omit?: string[];
}
async function token(claims: JWTPayload = {}, o: TokenOptions = {}): Promise<string> {
  const payload: JWTPayload = { iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300, ...claims };
  for (const k of o.omit ?? []) delete payload[k];
  return new SignJWT(payload).setProtectedHeader({ alg: o.alg ?? 'ES256', kid: o.kid ?? 'idp-1' }).sign(o.key ?? idp.es256);
}
/** A JWS over exactly these header and payload bytes, signed by the IdP's ES256 key. */
async function signedRaw(header: object | string, payload: string): Promise<string> {
  const h = base64url.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const input = `${h}.${base64url.encode(payload)}`;
  const der = createSign('sha256').update(input).sign({ key: createPrivateKey(await exportPkcs8(idp.es256)), dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url.encode(der)}`;
}
const pat = () => token({ sub: 'pat@example.com', groups: ['payments-eng', 'everyone'] });
const sam = () => token({ sub: 'sam@example.com' });
const sec = () => token({ sub: 'sec@example.com', groups: ['secops'] });
const nobody = () => token({ sub: 'nobody@example.com', groups: ['everyone'] });

type Method = 'get' | 'post' | 'delete';
async function call(method: Method, url: string, bearer: string | undefined, body?: unknown, raw?: { type: string; text: string }) {
  let t = request(app)[method](url);
  if (bearer !== undefined) t = t.set('authorization', bearer.includes(' ') ? bearer : `Bearer ${bearer}`);
  if (raw) t = t.set('content-type', raw.type).send(raw.text);
  else if (body !== undefined) t = t.send(body as object);
  const r = await t;
  texts.push(r.text);
  return r;
}

function expectProblem(r: request.Response, status: number, code: string) {
  expect({ status: r.status, code: r.body?.code }).toEqual({ status, code });
  expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(Object.keys(r.body).sort()).toEqual(['code', 'requestId', 'status', 'title', 'type']);
}

describe('an owner team manages the keys under its prefix', () => {
  it('create → rotate → disable → enable → destroy, each recorded with the caller as actor', async () => {
    const t = await pat();
    const created = await call('post', '/v1/admin/keys', t, { name: 'payments/card-key' });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe('/v1/admin/keys/payments/card-key');
    expect(created.body).toEqual({
      name: 'payments/card-key',
      createdAt: expect.any(String),
      createdBy: 'jwt:sub:pat@example.com',
      versions: [{ version: 1, state: 'enabled', createdAt: expect.any(String), createdBy: 'jwt:sub:pat@example.com' }],
    });

    const rotated = await call('post', '/v1/admin/keys/payments/card-key/rotate', t);
    expect(rotated.status).toBe(200);
    expect(rotated.body.versions.map((v: { version: number; state: string }) => [v.version, v.state])).toEqual([[1, 'enabled'], [2, 'enabled']]);

    const disabled = await call('post', '/v1/admin/keys/payments/card-key/versions/1/disable', t);
    expect(disabled.status).toBe(200);
    expect(disabled.body.versions[0]).toMatchObject({ version: 1, state: 'disabled', changedBy: 'jwt:sub:pat@example.com' });
    expect((await b.keys.resolve('payments/card-key', undefined)).ref.version).toBe(2);

    const enabled = await call('post', '/v1/admin/keys/payments/card-key/versions/1/enable', t, {});
    expect(enabled.body.versions[0]).toMatchObject({ version: 1, state: 'enabled' });

    const destroyed = await call('post', '/v1/admin/keys/payments/card-key/versions/1/destroy', t);
    expect(destroyed.body.versions[0]).toMatchObject({ version: 1, state: 'destroyed' });

    const shown = await call('get', '/v1/admin/keys/payments/card-key', t);
    expect(shown.status).toBe(200);
    expect(shown.body.versions.map((v: { state: string }) => v.state)).toEqual(['destroyed', 'enabled']);

    const audit = await auditRecords(b.store.read);
    const mine = audit.filter((e) => e.key === 'payments/card-key').map((e) => [e.event, e.actor, e.version, e.state]);
    expect(mine).toEqual([
      ['key.create', 'jwt:sub:pat@example.com', 1, undefined],
      ['key.rotate', 'jwt:sub:pat@example.com', 2, undefined],
      ['key.state', 'jwt:sub:pat@example.com', 1, 'disabled'],
      ['key.state', 'jwt:sub:pat@example.com', 1, 'enabled'],
      ['key.state', 'jwt:sub:pat@example.com', 1, 'destroyed'],
      ['admin.key.show', 'jwt:sub:pat@example.com', undefined, undefined], // a read: recorded by the route, changes by their transaction
    ]);
    const ops = logLines.filter((l) => l.msg === 'admin operation' && l.key === 'payments/card-key').map((l) => [l.event, l.actor, l.teams]);
    expect(ops[0]).toEqual(['admin.key.create', 'jwt:sub:pat@example.com', ['payments']]);
    expect(ops.map((o) => o[0])).toEqual(['admin.key.create', 'admin.key.rotate', 'admin.key.state', 'admin.key.state', 'admin.key.state', 'admin.key.show']);
  });

  it('a destroyed version stays destroyed; no-op transitions and a second create are conflicts', async () => {
    const t = await pat();
    expectProblem(await call('post', '/v1/admin/keys/payments/card-key/versions/1/enable', t), 409, 'key_state_invalid');
    expectProblem(await call('post', '/v1/admin/keys/payments/card-key/versions/1/destroy', t), 409, 'key_state_invalid');
    expectProblem(await call('post', '/v1/admin/keys/payments/card-key/versions/2/enable', t), 409, 'key_state_invalid');
    expectProblem(await call('post', '/v1/admin/keys', t, { name: 'payments/card-key' }), 409, 'key_exists');
  });

  it('inside its prefix, an unknown key or version is 404 key_unknown', async () => {
    const t = await pat();
    expectProblem(await call('get', '/v1/admin/keys/payments/nope', t), 404, 'key_unknown');
    expectProblem(await call('post', '/v1/admin/keys/payments/nope/rotate', t), 404, 'key_unknown');
    expectProblem(await call('post', '/v1/admin/keys/payments/nope/versions/1/disable', t), 404, 'key_unknown');
    expectProblem(await call('post', '/v1/admin/keys/payments/card-key/versions/9/disable', t), 404, 'key_unknown');
  });

  it('outside its prefix, every operation is 403 forbidden whether or not the key exists, and nothing changes', async () => {
    const t = await pat();
    const before = JSON.stringify(await b.keys.show(SEARCH_KEY));
    for (const name of [SEARCH_KEY, 'search/does-not-exist']) {
      expectProblem(await call('get', `/v1/admin/keys/${name}`, t), 403, 'forbidden');
      expectProblem(await call('post', `/v1/admin/keys/${name}/rotate`, t), 403, 'forbidden');
      for (const action of ['disable', 'enable', 'destroy']) {
        expectProblem(await call('post', `/v1/admin/keys/${name}/versions/1/${action}`, t), 403, 'forbidden');
      }
      expectProblem(await call('post', '/v1/admin/keys', t, { name }), 403, 'forbidden');
    }
    expect(JSON.stringify(await b.keys.show(SEARCH_KEY))).toBe(before);
    expect(await b.keys.has('search/does-not-exist')).toBe(false);
    const refusal = logLines.find((l) => l.code === 'forbidden');
    expect(refusal?.reason).toBe('jwt:sub:pat@example.com may not act on search/index');
  });

  it('the listing shows only the keys under the caller’s prefixes', async () => {
    await call('post', '/v1/admin/keys', await pat(), { name: 'payments/db-key' });
    const r = await call('get', '/v1/admin/keys', await pat());
    expect(r.status).toBe(200);
    expect(r.body.keys.map((k: { name: string }) => k.name)).toEqual(['payments/card-key', 'payments/db-key']);
    const s = await call('get', '/v1/admin/keys', await sam());
    expect(s.body.keys.map((k: { name: string }) => k.name)).toEqual([SEARCH_KEY]);
  });

  it('a caller in no team is refused, even for the listing', async () => {
    expectProblem(await call('get', '/v1/admin/keys', await nobody()), 403, 'forbidden');
    expectProblem(await call('post', '/v1/admin/keys', await nobody(), { name: 'nobody/key' }), 403, 'forbidden');
  });
});

describe('the security team', () => {
  it('sees and manages every key', async () => {
    const t = await sec();
    const r = await call('get', '/v1/admin/keys', t);
    expect(r.body.keys.map((k: { name: string }) => k.name)).toEqual(['payments/card-key', 'payments/db-key', SEARCH_KEY]);
    const rotated = await call('post', `/v1/admin/keys/${SEARCH_KEY}/rotate`, t);
    expect(rotated.status).toBe(200);
    expect(rotated.body.versions[1]).toMatchObject({ version: 2, createdBy: 'jwt:sub:sec@example.com' });
    expect((await call('post', '/v1/admin/keys', t, { name: 'anyone/new-key' })).status).toBe(201);
  });

  it('exports the wrapped keystore; an owner may not', async () => {
    expectProblem(await call('get', '/v1/admin/keystore', await pat()), 403, 'forbidden');
    expectProblem(await call('get', '/v1/admin/keystore', await sam()), 403, 'forbidden');
    const r = await request(app).get('/v1/admin/keystore').set('authorization', `Bearer ${await sec()}`);
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.body).toMatchObject({ format: 'keyanchor-keystore/1', custody: 'software' });
    expect(Object.keys(r.body.keys)).toEqual(expect.arrayContaining(['payments/card-key', SEARCH_KEY]));
    // Destroyed versions have no blob; every other version has one.
    const versions = r.body.keys['payments/card-key'].versions as Array<{ state: string; wrapped?: { blob: string } }>;
    expect(versions.map((v) => [v.state, typeof v.wrapped?.blob])).toEqual([['destroyed', 'undefined'], ['enabled', 'string']]);
    const audit = await auditText(b.store.read);
    expect(audit).toContain('"event":"keystore.export"');
    expect(audit).toContain('"actor":"jwt:sub:sec@example.com"');
  });
});

describe('authentication', () => {
  const bad: Array<[string, () => Promise<string>, RegExp]> = [
    ['expired', () => token({ sub: 'pat@example.com', groups: ['payments-eng'], iat: now() - 900, exp: now() - 120 }), /ERR_JWT_EXPIRED: "exp"/],
    ['not yet valid', () => token({ sub: 'pat@example.com', groups: ['payments-eng'], nbf: now() + 600 }), /"nbf" claim timestamp check failed/],
    ['issued too long ago (maxTokenAge)', () => token({ sub: 'pat@example.com', groups: ['payments-eng'], iat: now() - 7200, exp: now() + 600 }), /"iat" claim timestamp check failed \(too far in the past\)/],
    ['wrong issuer', () => token({ sub: 'pat@example.com', groups: ['payments-eng'], iss: 'https://evil.test' }), /unexpected "iss"/],
    ['wrong audience', () => token({ sub: 'pat@example.com', groups: ['payments-eng'], aud: 'another-api' }), /unexpected "aud"/],
    ['no sub', () => token({ groups: ['payments-eng'] }), /missing required "sub"/],
    ['no exp', () => token({ sub: 'pat@example.com', groups: ['payments-eng'] }, { omit: ['exp'] }), /missing required "exp"/],
    ['no iat', () => token({ sub: 'pat@example.com', groups: ['payments-eng'] }, { omit: ['iat'] }), /missing required "iat"/],
    ['signed by a key not in the JWKS (same kid)', () => token({ sub: 'pat@example.com', groups: ['payments-eng'] }, { key: idp.foreign }), /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/],
    ['signed by a key not in the JWKS (no matching kid)', () => token({ sub: 'pat@example.com', groups: ['payments-eng'] }, { key: idp.foreign, kid: 'other' }), /ERR_JWKS_NO_MATCHING_KEY/],
    ['an algorithm outside the allow-list, by a JWKS key', () => token({ sub: 'pat@example.com', groups: ['payments-eng'] }, { alg: 'ES384', kid: 'idp-384', key: idp.es384 }), /ERR_JOSE_ALG_NOT_ALLOWED/],
    ['HS256 with a shared secret', () => token({ sub: 'pat@example.com', groups: ['payments-eng'] }, { alg: 'HS256', key: randomBytes(32) }), /ERR_JOSE_ALG_NOT_ALLOWED/],
    [
      'alg none',
      async () => {
        const enc = (o: object) => base64url.encode(JSON.stringify(o));
        return `${enc({ alg: 'none' })}.${enc({ iss: ISSUER, aud: AUDIENCE, sub: 'pat@example.com', groups: ['secops'], iat: now(), exp: now() + 300 })}.`;
      },
      /ERR_JOSE_ALG_NOT_ALLOWED/,
    ],
    [
      'a valid token with its payload swapped',
      async () => {
        const [h, , s] = (await pat()).split('.');
        return `${h}.${base64url.encode(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'pat@example.com', groups: ['secops'], iat: now(), exp: now() + 300 }))}.${s}`;
      },
      /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
    ],
    [
      'a correctly signed payload naming "sub" twice (JSON.parse keeps the last)',
      () => signedRaw({ alg: 'ES256', kid: 'idp-1' }, `{"iss":"${ISSUER}","aud":"${AUDIENCE}","sub":"nobody@example.com","groups":["everyone"],"iat":${now()},"exp":${now() + 300},"sub":"sec@example.com","groups":["secops"]}`),
      /payload is duplicate member "sub"/,
    ],
    [
      'a correctly signed header naming "alg" twice',
      () => signedRaw('{"alg":"none","alg":"ES256","kid":"idp-1"}', JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'sec@example.com', groups: ['secops'], iat: now(), exp: now() + 300 })),
      /header is duplicate member "alg"/,
    ],
    ['garbage', async () => 'not-a-jwt', /not a compact JWS/],
    ['garbage with dots', async () => '....', /not a compact JWS/],
    ['huge', async () => 'a'.repeat(9000) + '.b.c', /not a compact JWS/],
  ];
  it.each(bad)('%s → 401 unauthorized, the reason only in the log', async (_what, make, reason) => {
    const r = await call('get', '/v1/admin/keys', await make());
    expectProblem(r, 401, 'unauthorized');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keyanchor-admin", error="invalid_token"');
    expect(r.text).not.toMatch(/ERR_|JWT|JWS|claim|signature/i);
    const line = logLines.find((l) => l.requestId === r.body.requestId);
    expect(line).toMatchObject({ code: 'unauthorized', reason: expect.stringMatching(reason) });
  });

  it('no credentials → 401 with a plain Bearer challenge; other schemes → 401', async () => {
    const r = await call('get', '/v1/admin/keys', undefined);
    expectProblem(r, 401, 'unauthorized');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keyanchor-admin"');
    expectProblem(await call('get', '/v1/admin/keys', 'Basic cGF0OnB3'), 401, 'unauthorized');
    expectProblem(await call('get', '/v1/admin/keys', 'Bearer  '), 401, 'unauthorized');
    expectProblem(await call('get', '/v1/admin/keys', `Bearer ${await pat()} extra`), 401, 'unauthorized');
  });

  it('the bearer scheme is case-insensitive', async () => {
    expect((await call('get', '/v1/admin/keys', `bearer ${await pat()}`)).status).toBe(200);
  });

  it('authentication comes before routing: unknown admin paths are 401, then 404; wrong methods 405', async () => {
    expectProblem(await call('get', '/v1/admin/nothing-here', undefined), 401, 'unauthorized');
    expectProblem(await call('get', '/v1/admin/nothing-here', await pat()), 404, 'not_found');
    expectProblem(await call('post', '/v1/admin/keys/payments/card-key/versions/1/explode', await pat()), 404, 'not_found');
    expectProblem(await call('delete', '/v1/admin/keys/payments/card-key', await pat()), 405, 'method_not_allowed');
    expectProblem(await call('post', '/v1/admin/keystore', await sec()), 405, 'method_not_allowed');
  });
});

describe('bad input', () => {
  it('create: bodies that are not {"name": "<owner>/<purpose>"} → 400', async () => {
    const t = await pat();
    const cases: unknown[] = [{}, { name: 'payments/x', extra: 1 }, { name: 'Payments/X' }, { name: 'payments' }, { name: 'payments/x/y' }, { name: '../payments/x' }, { name: 7 }, ['payments/x'], 'payments/x', null];
    for (const body of cases) {
      expectProblem(await call('post', '/v1/admin/keys', t, undefined, { type: 'application/json', text: JSON.stringify(body) }), 400, 'request_malformed');
    }
    expectProblem(await call('post', '/v1/admin/keys', t), 400, 'request_malformed');
    expectProblem(await call('post', '/v1/admin/keys', t, undefined, { type: 'application/json', text: '{"name":' }), 400, 'request_malformed');
    expectProblem(await call('post', '/v1/admin/keys', t, undefined, { type: 'application/json', text: JSON.stringify({ name: 'payments/x', pad: 'x'.repeat(5000) }) }), 400, 'request_malformed');
    expectProblem(await call('post', '/v1/admin/keys', t, undefined, { type: 'text/plain', text: 'payments/x' }), 415, 'unsupported_media_type');
    expect(await b.keys.has('payments/x')).toBe(false);
  });

  it('rotate and state changes take no body but {}', async () => {
    const t = await pat();
    expectProblem(await call('post', '/v1/admin/keys/payments/db-key/rotate', t, { force: true }), 400, 'request_malformed');
    expectProblem(await call('post', '/v1/admin/keys/payments/db-key/versions/1/disable', t, [1]), 400, 'request_malformed');
    expect((await b.keys.show('payments/db-key')).versions).toHaveLength(1);
  });

  it('a version that is not a positive integer → 400', async () => {
    const t = await pat();
    for (const v of ['0', '-1', '1.5', '01', 'abc', '1e3', '99999999']) {
      expectProblem(await call('post', `/v1/admin/keys/payments/db-key/versions/${v}/disable`, t), 400, 'request_malformed');
    }
  });

  it('a key name in the path that is not <owner>/<purpose> → 400', async () => {
    const t = await pat();
    for (const p of ['Payments/db-key', 'payments/DB', 'payments%2Fdb-key/x', '.payments/x', 'payments/' + 'a'.repeat(65)]) {
      expectProblem(await call('get', `/v1/admin/keys/${p}`, t), 400, 'request_malformed');
    }
  });
});

describe('suspensions (security role only)', () => {
  const subject = encodeURIComponent('software:app');
  it('set (idempotent), list, show with history, clear; each recorded with the caller; a release is refused meanwhile', async () => {
    const t = await sec();
    const set = await call('post', '/v1/admin/suspensions', t, { subject: 'software:app', reason: 'incident 42' });
    expect(set.status).toBe(201);
    expect(set.body).toMatchObject({ created: true, suspension: { subject: 'software:app', reason: 'incident 42', createdBy: 'jwt:sub:sec@example.com', active: true } });
    const again = await call('post', '/v1/admin/suspensions', t, { subject: 'software:app', reason: 'again' });
    expect({ status: again.status, created: again.body.created, id: again.body.suspension.id }).toEqual({ status: 200, created: false, id: set.body.suspension.id });
    expect((await call('get', '/v1/admin/suspensions', t)).body.suspensions.map((x: { subject: string }) => x.subject)).toEqual(['software:app']);

    const n = (await request(app).post('/v1/challenge').send({}).expect(200)).body.nonce as string;
    const refused = await request(app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: (await makeEvidence(w, { nonce: n })).compact }));
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 403, code: 'suspended' });

    const cleared = await call('post', `/v1/admin/suspensions/${subject}/clear`, t);
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ subject: 'software:app', active: false, clearedBy: 'jwt:sub:sec@example.com' });
    const shown = await call('get', `/v1/admin/suspensions/${subject}`, t);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ subject: 'software:app', active: null, history: [{ id: set.body.suspension.id, active: false }] });
    const n2 = (await request(app).post('/v1/challenge').send({}).expect(200)).body.nonce as string;
    // No longer suspended: the attempt goes on to the store, where the key (not created here) is missing.
    const after = await request(app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: (await makeEvidence(w, { nonce: n2 })).compact }));
    expect({ status: after.status, code: after.body.code }).toEqual({ status: 404, code: 'key_unknown' });
    const events = (await auditRecords(b.store.read)).filter((r) => String(r.event).startsWith('suspension.'));
    expect(events.map((r) => [r.event, r.subject, r.by])).toEqual([['suspension.set', 'software:app', 'jwt:sub:sec@example.com'], ['suspension.cleared', 'software:app', 'jwt:sub:sec@example.com']]);
  });

  it('a node subject in the path, URL-encoded; a subject never suspended or not suspended now is 404 suspension_unknown', async () => {
    const t = await sec();
    const node = 'node:spiffe://test/zone/z1/node-9';
    expect((await call('post', '/v1/admin/suspensions', t, { subject: node, reason: 'stolen' })).status).toBe(201);
    expect((await call('get', `/v1/admin/suspensions/${encodeURIComponent(node)}`, t)).body.active).toMatchObject({ subject: node });
    expect((await call('post', `/v1/admin/suspensions/${encodeURIComponent(node)}/clear`, t, {})).status).toBe(200);
    expectProblem(await call('post', `/v1/admin/suspensions/${encodeURIComponent(node)}/clear`, t), 404, 'suspension_unknown');
    expectProblem(await call('get', `/v1/admin/suspensions/${encodeURIComponent('zone:never')}`, t), 404, 'suspension_unknown');
  });

  it('an owner team and a caller in no team are 403 forbidden for every suspension operation', async () => {
    for (const who of [await pat(), await nobody()]) {
      expectProblem(await call('get', '/v1/admin/suspensions', who), 403, 'forbidden');
      expectProblem(await call('post', '/v1/admin/suspensions', who, { subject: 'software:app', reason: 'r' }), 403, 'forbidden');
      expectProblem(await call('get', `/v1/admin/suspensions/${subject}`, who), 403, 'forbidden');
      expectProblem(await call('post', `/v1/admin/suspensions/${subject}/clear`, who), 403, 'forbidden');
    }
    expect((await call('get', '/v1/admin/suspensions', await sec())).body.suspensions).toEqual([]);
  });

  it('bad input is 400 request_malformed; wrong methods 405', async () => {
    const t = await sec();
    for (const body of [{}, { subject: 'software:app' }, { subject: 'software:app', reason: '' }, { subject: 'galaxy:far', reason: 'r' }, { subject: 'software:App', reason: 'r' }, { subject: 'node:not a uri', reason: 'r' }, { subject: 'key:nokey', reason: 'r' }, { subject: 'software:app', reason: 'r', extra: 1 }]) {
      expectProblem(await call('post', '/v1/admin/suspensions', t, body), 400, 'request_malformed');
    }
    expectProblem(await call('get', `/v1/admin/suspensions/${encodeURIComponent('software:Bad Name')}`, t), 400, 'request_malformed');
    expectProblem(await call('post', `/v1/admin/suspensions/${subject}/clear`, t, { why: 'no' }), 400, 'request_malformed');
    expectProblem(await call('delete', '/v1/admin/suspensions', t), 405, 'method_not_allowed');
  });
});

describe('release statistics', () => {
  it('a key shows, per version, its releases (statistics kept by the release transaction)', async () => {
    await b.keys.create(APP_KEY, 'test');
    const challenge = await request(b.app).post('/v1/challenge').send({}).expect(200);
    const { compact } = await makeEvidence(w, { nonce: challenge.body.nonce });
    await request(b.app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: compact })).expect(200);
    const r = await call('get', `/v1/admin/keys/${APP_KEY}`, await sec());
    expect(r.status).toBe(200);
    expect(r.body.versions).toEqual([
      {
        version: 1,
        state: 'enabled',
        createdAt: expect.any(String),
        createdBy: 'test',
        releases: { count: 1, lastAt: expect.any(String), lastNode: expect.any(String), lastSoftware: ['app'] },
      },
    ]);
  });
});

describe('no key material in responses', () => {
  it('no response but the export mentions a wrapped blob or any blob value', async () => {
    const exported = await request(app).get('/v1/admin/keystore').set('authorization', `Bearer ${await sec()}`).expect(200);
    const blobs = Object.values(exported.body.keys as Record<string, { versions: Array<{ wrapped?: { blob: string } }> }>)
      .flatMap((k) => k.versions.map((v) => v.wrapped?.blob))
      .filter((x): x is string => typeof x === 'string');
    expect(blobs.length).toBeGreaterThan(3);
    expect(texts.length).toBeGreaterThan(50);
    for (const text of texts) {
      expect(text).not.toMatch(/"(wrapped|blob|kekId|alg)"/);
      for (const blob of blobs) expect(text).not.toContain(blob);
    }
  });
});

describe('when the admin API is disabled (the default)', () => {
  it('the assembled broker answers 404 not_found under /v1/admin', async () => {
    const plain = await makeWorld();
    const pb = await assembleBroker(plain.config, { log: createLogger('silent') });
    try {
      expect(plain.config.admin.enabled).toBe(false);
      for (const p of ['/v1/admin/keys', '/v1/admin/keystore', '/v1/admin/keys/team/app-key']) {
        expectProblem(await request(pb.app).get(p).set('authorization', `Bearer ${await sec()}`), 404, 'not_found');
      }
      expectProblem(await request(pb.app).post('/v1/admin/keys').send({ name: 'team/x' }), 404, 'not_found');
    } finally {
      await pb.close();
      plain.cleanup();
    }
  });
});
