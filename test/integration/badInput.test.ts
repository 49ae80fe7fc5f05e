/**
 * Throws several hundred malformed bodies, JWS strings, x5c chains and JWKs at /v1/attest.
 * Every one must get a 4xx problem with a known code; none a 5xx, a crash or a key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { createPrivateKey } from 'node:crypto';
import { CompactSign } from 'jose';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { toX5c } from '../../src/pki.js';
import { EVIDENCE_TYP, PROBLEM_CODES } from '../../src/protocol.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;

beforeAll(async () => {
  w = await makeWorld();
  b = await assembleBroker(w.config);
  await b.keys.create(APP_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

/** A small deterministic PRNG so a failure can be reproduced. */
function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}
const rand = rng(20261122);
const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)]!;
const randBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function nonce(): Promise<string> {
  return (await request(b.app).post('/v1/challenge').expect(200)).body.nonce;
}

const weird: unknown[] = [null, true, 0, -1, 1e308, '', 'x', [], {}, [1, 2], { a: { b: { c: [] } } }, '💥', '\u0000', 'a'.repeat(5000), { __proto__: { polluted: 1 } }, { constructor: { prototype: 1 } }];

async function badBodies(): Promise<Array<{ body: string; type: string }>> {
  const out: Array<{ body: string; type: string }> = [];
  for (const v of weird) out.push({ body: JSON.stringify(v), type: 'application/json' });
  for (const v of weird) out.push({ body: JSON.stringify({ evidence: v }), type: 'application/json' });
  for (let i = 0; i < 20; i++) out.push({ body: randBytes(1 + Math.floor(rand() * 300)).toString('latin1'), type: pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/jose']) });
  out.push({ body: '{"evidence":"a.b.c","evidence":"d.e.f"}', type: 'application/json' });
  out.push({ body: '{"__proto__":{"evidence":"x"}}', type: 'application/json' });
  return out;
}

async function badJwsStrings(): Promise<string[]> {
  const out: string[] = ['', '.', '..', '...', 'a.b', 'a.b.c.d', 'a.b.c.d.e', '=.=.=', 'eyJ.eyJ.', '!!.??.**'];
  for (let i = 0; i < 100; i++) out.push([1, 2, 3].map(() => randBytes(Math.floor(rand() * 60)).toString('base64url')).join('.'));
  const n = await nonce();
  const { compact } = await makeEvidence(w, { nonce: n });
  const [h, p, s] = compact.split('.') as [string, string, string];
  out.push(`${h}.${p}.`, `${h}..${s}`, `.${p}.${s}`, `${h}.${p}.${s}x`, `${h}.${p}.${s.slice(0, -4)}`, `${h}.${p}`, `${h}.${p}.${s}.${s}`);
  out.push(`${h}.${p}.${s}`.replace(/A/g, 'B'));
  const headers: unknown[] = [
    { alg: 'none', typ: EVIDENCE_TYP, x5c: toX5c(w.node) },
    { alg: 'HS256', typ: EVIDENCE_TYP, x5c: toX5c(w.node) },
    { alg: 'RS256', typ: EVIDENCE_TYP, x5c: toX5c(w.node) },
    { alg: 'ES256', typ: 'JWT', x5c: toX5c(w.node) },
    { alg: 'ES256', x5c: toX5c(w.node) },
    { alg: 'ES256', typ: EVIDENCE_TYP },
    { alg: 'ES256', typ: EVIDENCE_TYP, x5c: [] },
    { alg: 'ES256', typ: EVIDENCE_TYP, x5c: 'notarray' },
    { alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(w.node), crit: ['b64'], b64: false },
    { alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(w.node), jwk: { kty: 'EC' } },
    { alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(w.node), kid: 'x' },
    [], 'string', null, 42,
  ];
  for (const hd of headers) out.push(`${b64u(hd)}.${p}.${s}`);
  return out;
}

/** Valid JWS envelopes around broken payloads, signed by the real node key. */
async function badPayloads(): Promise<string[]> {
  const key = createPrivateKey(w.node.keyPem);
  const signPayload = (payload: unknown) =>
    new CompactSign(Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'ES256', typ: EVIDENCE_TYP, x5c: toX5c(w.node) } as never)
      .sign(key);
  const { compact } = await makeEvidence(w, { nonce: await nonce() });
  const base = JSON.parse(Buffer.from(compact.split('.')[1]!, 'base64url').toString()) as Record<string, any>;
  const variants: unknown[] = ['not json', '[]', 'null', '{', JSON.stringify('str')];
  const clone = () => structuredClone(base);
  const paths: Array<(p: any) => void> = [];
  for (const k of Object.keys(base)) {
    paths.push((p) => delete p[k]);
    for (const v of weird.slice(0, 10)) paths.push((p) => (p[k] = v));
  }
  const deep: Array<[string[], unknown]> = [
    [['workload', 'binary', 'sha256'], 'XYZ'], [['workload', 'binary', 'sha256'], 'AB'.repeat(32)], [['workload', 'binary', 'path'], ''],
    [['workload', 'binary', 'signatures'], [{ sig: '!!' }]], [['workload', 'binary', 'signatures'], Array(9).fill({ sig: 'AA' })],
    [['workload', 'binary', 'signatures'], [{ sig: 'AA', x5c: ['@@'] }]], [['workload', 'binary', 'signatures'], [{ sig: 'AA', x5c: [randBytes(50).toString('base64')] }]],
    [['workload', 'image'], { digest: 'md5:abc' }], [['workload', 'image'], { digest: 'sha256:' + 'a'.repeat(63) }], [['workload', 'image'], { digest: 'sha256:' + 'a'.repeat(64), signatures: [{ payload: '', sig: 'AA' }] }],
    [['workload', 'extra'], 1], [['keys'], []], [['keys'], [{ name: 'UPPER/case' }]], [['keys'], [{ name: 'noslash' }]], [['keys'], [{ name: APP_KEY }, { name: APP_KEY }]],
    [['keys'], [{ name: APP_KEY, version: 0 }]], [['keys'], [{ name: APP_KEY, version: 1.5 }]], [['keys'], Array.from({ length: 17 }, (_, i) => ({ name: `t/k${i}` }))],
    [['nonce'], 'short'], [['nonce'], 'a'.repeat(200)], [['iat'], -5], [['iat'], 1.5], [['iat'], '1700000000'], [['ver'], 2],
  ];
  for (const [path, v] of deep) paths.push((p) => {
    let o = p;
    for (const seg of path.slice(0, -1)) o = o[seg];
    o[path[path.length - 1]!] = v;
  });
  const jwks: unknown[] = [
    { kty: 'EC', crv: 'P-384', x: 'AA', y: 'AA' }, { kty: 'EC', crv: 'P-256', x: 'AA' }, { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' },
    { kty: 'EC', crv: 'P-256', x: randBytes(32).toString('base64url'), y: randBytes(32).toString('base64url') },
    { kty: 'RSA', n: randBytes(64).toString('base64url'), e: 'AQAB' }, { kty: 'RSA', n: 'AA', e: 'AQAB' }, { kty: 'oct', k: 'AAAA' },
    { kty: 'OKP', crv: 'X25519', x: 'AA' }, { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', d: 'AA' }, { kty: 'RSA', n: 'AA', e: 'AQAB', x5c: ['AA'] },
    { kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', alg: 'dir' }, {}, null, 'jwk',
  ];
  for (const j of jwks) paths.push((p) => (p.cnf = { jwk: j }));
  paths.push((p) => (p.cnf = {}), (p) => (p.cnf = { jwk: base.cnf.jwk, jku: 'x' }));
  for (const mut of paths) {
    const p = clone();
    mut(p);
    if (p.nonce === base.nonce) p.nonce = await nonce();
    variants.push(p);
  }
  return Promise.all(variants.map(signPayload));
}

/** Valid envelopes and payloads with broken x5c chains. */
async function badChains(): Promise<string[]> {
  const leaf = toX5c(w.node)[0]!;
  const der = Buffer.from(leaf, 'base64');
  const chains: string[][] = [
    [der.subarray(0, der.length - 10).toString('base64')],
    [Buffer.concat([der, Buffer.from([0])]).toString('base64')],
    [randBytes(400).toString('base64')],
    [leaf, randBytes(100).toString('base64')],
    [leaf, leaf],
    toX5c(w.nodeCa, w.node),
    toX5c(w.node, w.rogueCa),
    toX5c(w.rogueNode, w.nodeCa),
    [leaf, ...toX5c(w.nodeCa, w.nodeCa, w.nodeCa, w.nodeCa)],
    Array(6).fill(leaf),
  ];
  const out: string[] = [];
  for (const chain of chains) out.push((await makeEvidence(w, { nonce: await nonce(), chain })).compact);
  return out;
}

describe('bad input at /v1/attest', () => {
  it('answers every malformed request with a 4xx problem and a known code, and never a key', async () => {
    const requests: Array<{ body: string; type: string }> = [
      ...(await badBodies()),
      ...[...(await badJwsStrings()), ...(await badPayloads()), ...(await badChains())].map((e) => ({ body: JSON.stringify({ evidence: e }), type: 'application/json' })),
    ];
    expect(requests.length).toBeGreaterThanOrEqual(300);
    const seen = new Map<string, number>();
    for (const r of requests) {
      const res = await request(b.app).post('/v1/attest').set('content-type', r.type).send(r.body);
      const summary = { status: res.status, code: res.body?.code, keys: res.body?.keys };
      if (!(res.status >= 400 && res.status < 500 && PROBLEM_CODES.includes(res.body?.code) && res.body.keys === undefined)) {
        { let dec = r.body.slice(0, 300); try { const e = JSON.parse(r.body).evidence as string; dec = e.split(".").slice(0, 2).map((x) => Buffer.from(x, "base64url").toString().slice(0, 1500)).join(" | "); } catch { /* raw */ } throw new Error(`unexpected answer ${JSON.stringify(summary)} to ${dec}`); }
      }
      seen.set(res.body.code, (seen.get(res.body.code) ?? 0) + 1);
    }
    // The barrage reaches deep checks, not only the parser.
    for (const code of ['request_malformed', 'evidence_malformed', 'evidence_signature_invalid', 'node_untrusted', 'unsupported_media_type']) {
      expect(seen.get(code) ?? 0, `${code} in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    }
    // The broker is still healthy and still releases to a valid request.
    const { compact } = await makeEvidence(w, { nonce: await nonce() });
    expect((await request(b.app).post('/v1/attest').send({ evidence: compact })).status).toBe(200);
  });
});
