/**
 * The attestation API through HTTP (supertest on the assembled app, real software custody, real
 * policy files and certificates): the happy path, and every error code with its status.
 */
import http, { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { ManualClock } from '../../src/clock.js';
import { toX5c } from '../../src/pki.js';
import { APP_KEY, IMG_KEY, MISSING_KEY, UNGRANTED_KEY, makeEvidence, makeWorld, openReleased, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;
let app: RequestListener;
const T0 = Date.now();
const clock = new ManualClock(T0);

beforeAll(async () => {
  w = await makeWorld({ configExtra: { nonce: { ttlSeconds: 60 } } });
  b = await assembleBroker(w.config, { clock });
  app = b.app;
  await b.keys.create(APP_KEY, 'test');
  await b.keys.create(IMG_KEY, 'test');
  await b.keys.create(UNGRANTED_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

async function nonce(): Promise<string> {
  const r = await request(app).post('/v1/challenge').send({}).expect(200);
  return r.body.nonce as string;
}

function attest(evidence: unknown) {
  return request(app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence }));
}

function expectProblem(r: request.Response, status: number, code: string) {
  expect({ status: r.status, code: r.body?.code }).toEqual({ status, code });
  expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(r.body.requestId).toBe(r.headers['x-request-id']);
  expect(Object.keys(r.body).sort()).toEqual(['code', 'requestId', 'status', 'title', 'type']);
}

describe('POST /v1/challenge', () => {
  it('returns a nonce token (opaque to agents), its expiry and the recipient key types', async () => {
    const r = await request(app).post('/v1/challenge').expect(200);
    expect(r.body.nonce).toMatch(/^[A-Za-z0-9_-]{76}$/);
    expect(Date.parse(r.body.expiresAt) - clock.now()).toBe(60_000);
    expect(r.body).toMatchObject({ ttlSeconds: 60, protocolVersion: 1, recipientKeyTypes: ['EC', 'RSA'] });
    expect(r.headers['cache-control']).toBe('no-store');
  });
  it('never repeats a nonce', async () => {
    const seen = new Set(await Promise.all(Array.from({ length: 50 }, nonce)));
    expect(seen.size).toBe(50);
  });
  it('rejects a non-empty body', async () => {
    expectProblem(await request(app).post('/v1/challenge').send({ a: 1 }), 400, 'request_malformed');
  });
  it('answers 405 to GET', async () => {
    expectProblem(await request(app).get('/v1/challenge'), 405, 'method_not_allowed');
  });
});

describe('POST /v1/attest', () => {
  it('releases the granted key as a JWE only the ephemeral key opens', async () => {
    const { compact, recipient } = await makeEvidence(w, { nonce: await nonce() });
    const r = await attest(compact).expect(200);
    expect(r.body.keys).toHaveLength(1);
    const k = r.body.keys[0];
    expect(k).toMatchObject({ name: APP_KEY, version: 1, form: 'plaintext' });
    const opened = await openReleased(k.jwe, recipient);
    expect(opened.key).toHaveLength(32);
    expect(opened.kid).toBe(`${APP_KEY}@1`);
    // The same key version opens to the same bytes on a second release, to a new recipient.
    const again = await makeEvidence(w, { nonce: await nonce() });
    const r2 = await attest(again.compact).expect(200);
    expect((await openReleased(r2.body.keys[0].jwe, again.recipient)).key.equals(opened.key)).toBe(true);
    expect(r2.body.keys[0].jwe).not.toBe(k.jwe);
    // A key never appears in the clear in the response.
    expect(JSON.stringify(r.body)).not.toContain(opened.key.toString('base64'));
    expect(JSON.stringify(r.body)).not.toContain(opened.key.toString('base64url'));
    expect(JSON.stringify(r.body)).not.toContain(opened.key.toString('hex'));
  });

  it('releases to an RSA ephemeral key too', async () => {
    const { makeRecipient } = await import('../helpers/world.js');
    const recipient = await makeRecipient('RSA');
    const { compact } = await makeEvidence(w, { nonce: await nonce(), recipient });
    const r = await attest(compact).expect(200);
    expect((await openReleased(r.body.keys[0].jwe, recipient)).key).toHaveLength(32);
  });

  it('releases a key to software pinned by digest running from an approved image', async () => {
    const ev = await makeEvidence(w, { nonce: await nonce(), binary: { sha256: w.pinnedSha256, sigs: [] }, image: { digest: w.imageDigest }, keys: [{ name: IMG_KEY }] });
    const r = await attest(ev.compact).expect(200);
    expect(r.body.keys[0].name).toBe(IMG_KEY);
  });

  it('hands a named version only while it is enabled, and the newest enabled by default', async () => {
    await b.keys.rotate(APP_KEY, 'test');
    let ev = await makeEvidence(w, { nonce: await nonce() });
    expect((await attest(ev.compact).expect(200)).body.keys[0].version).toBe(2);
    ev = await makeEvidence(w, { nonce: await nonce(), keys: [{ name: APP_KEY, version: 1 }] });
    expect((await attest(ev.compact).expect(200)).body.keys[0].version).toBe(1);
    await b.keys.setState(APP_KEY, 1, 'disabled', 'test');
    ev = await makeEvidence(w, { nonce: await nonce(), keys: [{ name: APP_KEY, version: 1 }] });
    expectProblem(await attest(ev.compact), 404, 'key_unknown');
    await b.keys.setState(APP_KEY, 1, 'enabled', 'test');
  });

  const cases: Array<[string, number, string, (n: string) => Promise<unknown>]> = [
    ['evidence signed by a key other than the leaf', 401, 'evidence_signature_invalid', async (n) => (await makeEvidence(w, { nonce: n, chain: toX5c(w.node), signer: { ...w.node, keyPem: w.rogueNode.keyPem } })).compact],
    ['a node certificate from an untrusted CA', 401, 'node_untrusted', async (n) => (await makeEvidence(w, { nonce: n, signer: w.rogueNode, chain: toX5c(w.rogueNode, w.rogueCa) })).compact],
    ['an expired node certificate', 401, 'node_untrusted', async (n) => (await makeEvidence(w, { nonce: n, signer: w.expiredNode })).compact],
    ['a CA certificate as the leaf', 401, 'node_untrusted', async (n) => (await makeEvidence(w, { nonce: n, signer: w.nodeCa })).compact],
    ['evidence issued too long ago', 401, 'clock_skew', async (n) => (await makeEvidence(w, { nonce: n, iat: Math.floor(clock.now() / 1000) - 3600 })).compact],
    ['evidence issued in the future', 401, 'clock_skew', async (n) => (await makeEvidence(w, { nonce: n, iat: Math.floor(clock.now() / 1000) + 3600 })).compact],
    ['a tampered binary (digest not signed)', 403, 'software_not_approved', async (n) => (await makeEvidence(w, { nonce: n, binary: { sha256: 'ab'.repeat(32) } })).compact],
    ['a signature by another publisher key', 403, 'software_not_approved', async (n) => (await makeEvidence(w, { nonce: n, binary: { sigs: [Buffer.from('3006020101020101', 'hex')] } })).compact],
    ['no signature at all', 403, 'software_not_approved', async (n) => (await makeEvidence(w, { nonce: n, binary: { sigs: [] } })).compact],
    ['an image digest that is not approved', 403, 'software_not_approved', async (n) => (await makeEvidence(w, { nonce: n, binary: { sha256: w.pinnedSha256, sigs: [] }, image: { digest: 'sha256:' + 'cd'.repeat(32) }, keys: [{ name: IMG_KEY }] })).compact],
    ['pinned software without the required image', 403, 'software_not_approved', async (n) => (await makeEvidence(w, { nonce: n, binary: { sha256: w.pinnedSha256, sigs: [] }, keys: [{ name: IMG_KEY }] })).compact],
    ['a key not granted to the software', 403, 'key_not_granted', async (n) => (await makeEvidence(w, { nonce: n, keys: [{ name: APP_KEY }, { name: UNGRANTED_KEY }] })).compact],
    ['a key granted to other software', 403, 'key_not_granted', async (n) => (await makeEvidence(w, { nonce: n, keys: [{ name: IMG_KEY }] })).compact],
    ['a granted key that does not exist', 404, 'key_unknown', async (n) => (await makeEvidence(w, { nonce: n, keys: [{ name: MISSING_KEY }] })).compact],
    ['an unknown payload field', 400, 'evidence_malformed', async (n) => (await makeEvidence(w, { nonce: n, mutate: (p) => (p.extra = 1) })).compact],
    ['an unknown header field', 400, 'evidence_malformed', async (n) => (await makeEvidence(w, { nonce: n, header: { jku: 'https://attacker' } })).compact],
    ['a private JWK as recipient', 400, 'evidence_malformed', async (n) => (await makeEvidence(w, { nonce: n, mutate: (p) => ((p.cnf as { jwk: Record<string, unknown> }).jwk.d = 'AAAA') })).compact],
  ];
  for (const [what, status, code, build] of cases) {
    it(`refuses ${what} with ${status} ${code}`, async () => {
      const r = await attest(await build(await nonce()));
      expectProblem(r, status, code);
      expect(r.body.keys).toBeUndefined();
    });
  }

  it('refuses an unknown nonce, and a nonce with one byte changed', async () => {
    const { compact } = await makeEvidence(w, { nonce: Buffer.alloc(32, 7).toString('base64url') });
    expectProblem(await attest(compact), 401, 'nonce_unknown');
    const raw = Buffer.from(await nonce(), 'base64url');
    raw[20]! ^= 1;
    expectProblem(await attest((await makeEvidence(w, { nonce: raw.toString('base64url') })).compact), 401, 'nonce_unknown');
  });

  it('an attempt refused before the signature check does not use up the nonce', async () => {
    const n = await nonce();
    const forged = await makeEvidence(w, { nonce: n, chain: toX5c(w.node), signer: { ...w.node, keyPem: w.rogueNode.keyPem } });
    expectProblem(await attest(forged.compact), 401, 'evidence_signature_invalid');
    const untrusted = await makeEvidence(w, { nonce: n, signer: w.rogueNode, chain: toX5c(w.rogueNode, w.rogueCa) });
    expectProblem(await attest(untrusted.compact), 401, 'node_untrusted');
    const { compact } = await makeEvidence(w, { nonce: n });
    expect((await attest(compact)).status).toBe(200);
    expectProblem(await attest(compact), 401, 'nonce_replayed');
  });

  it('refuses a replayed nonce, whether the first attempt succeeded or failed', async () => {
    const n = await nonce();
    const { compact } = await makeEvidence(w, { nonce: n });
    await attest(compact).expect(200);
    expectProblem(await attest(compact), 401, 'nonce_replayed');
    const n2 = await nonce();
    const bad = await makeEvidence(w, { nonce: n2, keys: [{ name: UNGRANTED_KEY }] });
    expectProblem(await attest(bad.compact), 403, 'key_not_granted');
    const good = await makeEvidence(w, { nonce: n2 });
    expectProblem(await attest(good.compact), 401, 'nonce_replayed');
  });

  it('refuses an expired nonce (injected clock, no sleeping), however late it comes back', async () => {
    const n = await nonce();
    try {
      for (const late of [60_001, 3_600_000]) {
        clock.advance(late);
        const { compact } = await makeEvidence(w, { nonce: n, iat: Math.floor(clock.now() / 1000) });
        expectProblem(await attest(compact), 401, 'nonce_expired');
        clock.advance(-late);
      }
    } finally {
      clock.set(T0);
    }
  });

  it('gives exactly one 200 to 50 concurrent submissions of one nonce', async () => {
    const { compact } = await makeEvidence(w, { nonce: await nonce() });
    const rs = await Promise.all(Array.from({ length: 50 }, () => attest(compact)));
    const by = rs.map((r) => `${r.status} ${r.body.code ?? ''}`.trim());
    expect(by.filter((s) => s === '200')).toHaveLength(1);
    expect(by.filter((s) => s === '401 nonce_replayed')).toHaveLength(49);
  });

  it('413 on evidence over 64 KiB', async () => {
    expectProblem(await attest('e'.repeat(64 * 1024 + 1)), 413, 'evidence_too_large');
  });
  it('413 on a body over the parser limit', async () => {
    const r = await request(app).post('/v1/attest').set('content-type', 'application/json').send(JSON.stringify({ evidence: 'x'.repeat(200_000) }));
    expectProblem(r, 413, 'evidence_too_large');
  });
  it('400 on invalid JSON and on a body without evidence', async () => {
    expectProblem(await request(app).post('/v1/attest').set('content-type', 'application/json').send('{"evidence":'), 400, 'request_malformed');
    expectProblem(await request(app).post('/v1/attest').send({ nope: 1 }), 400, 'request_malformed');
    expectProblem(await request(app).post('/v1/attest').send({ evidence: 'a.b.c', more: 1 }), 400, 'request_malformed');
  });
  it('415 on a body that is not JSON', async () => {
    expectProblem(await request(app).post('/v1/attest').set('content-type', 'text/plain').send('hello'), 415, 'unsupported_media_type');
  });
  it('404 on an unknown route', async () => {
    expectProblem(await request(app).get('/v1/keys/team/app-key'), 404, 'not_found');
  });
});

describe('challenge flood', () => {
  it('a source over its rate gets 429 rate_limited with Retry-After; another source still gets challenges and attests', async () => {
    const w2 = await makeWorld({ configExtra: { nonce: { ttlSeconds: 60, perSource: { ratePerSecond: 1, burst: 5, maxSources: 100 } } } });
    const c2 = new ManualClock(Date.now());
    const b2 = await assembleBroker(w2.config, { clock: c2 });
    await b2.keys.create(APP_KEY, 'test');
    const server = createServer(b2.app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const flood = await Promise.all(Array.from({ length: 40 }, () => post(port, '127.0.0.2', '/v1/challenge', '{}')));
      expect(flood.filter((r) => r.status === 200)).toHaveLength(5);
      const limited = flood.filter((r) => r.status === 429);
      expect(limited).toHaveLength(35);
      expect(JSON.parse(limited[0]!.body)).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(limited[0]!.retryAfter).toBe('1');
      // Another source is untouched: it gets a nonce and attests with it.
      const ch = await post(port, '127.0.0.1', '/v1/challenge', '{}');
      expect(ch.status).toBe(200);
      const { compact } = await makeEvidence(w2, { nonce: JSON.parse(ch.body).nonce, iat: Math.floor(c2.now() / 1000) });
      const at = await post(port, '127.0.0.1', '/v1/attest', JSON.stringify({ evidence: compact }));
      expect(at.status).toBe(200);
      // The flooding source gets a token back as time passes.
      c2.advance(1000);
      expect((await post(port, '127.0.0.2', '/v1/challenge', '{}')).status).toBe(200);
      expect((await post(port, '127.0.0.2', '/v1/challenge', '{}')).status).toBe(429);
    } finally {
      await new Promise((r) => server.close(r));
      await b2.close();
      w2.cleanup();
    }
  });
});

/** A POST from a chosen local address (127.0.0.0/8 is all loopback): a second client machine. */
function post(port: number, from: string, pathname: string, body: string): Promise<{ status: number; body: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, method: 'POST', localAddress: from, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, ...(res.headers['retry-after'] ? { retryAfter: String(res.headers['retry-after']) } : {}) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
