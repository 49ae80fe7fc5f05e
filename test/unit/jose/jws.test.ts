/**
 * The JWS half of src/jose: jose verifies what it signs and it verifies what jose signs, for each
 * allowed algorithm; RFC 8037's Ed25519 example matches byte for byte; RFC 7520's PS384 and
 * ES512 examples verify through the same signature code (outside the allow-list, so by spec);
 * then everything it must refuse.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as jose from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { compactSign, compactVerify, JWS_ALGORITHMS, parseCompactJws, type JwsAlg } from '../../../src/jose/index.js';
import { checkSignature, type SignatureSpec } from '../../../src/jose/signatures.js';
import { code } from './outcome.js';
import { RFC7520_4_2, RFC7520_4_3, RFC7520_PAYLOAD, RFC8037_A4 } from './vectors.js';

const keys = {} as Record<JwsAlg, { priv: KeyObject; pub: KeyObject }>;
const payload = Buffer.from(JSON.stringify({ hello: 'world', n: 1 }));

beforeAll(() => {
  const pair = (k: { privateKey: KeyObject; publicKey: KeyObject }) => ({ priv: k.privateKey, pub: k.publicKey });
  keys.ES256 = pair(generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  keys.ES384 = pair(generateKeyPairSync('ec', { namedCurve: 'P-384' }));
  keys.EdDSA = pair(generateKeyPairSync('ed25519'));
  keys.PS256 = pair(generateKeyPairSync('rsa', { modulusLength: 2048 }));
});


describe.each(JWS_ALGORITHMS)('%s', (alg) => {
  it('jose verifies a signature it makes', async () => {
    const jws = compactSign({ alg, typ: 'x+jws' }, payload, keys[alg].priv);
    const out = await jose.compactVerify(jws, keys[alg].pub, { algorithms: [alg] });
    expect(Buffer.from(out.payload).equals(payload)).toBe(true);
    expect(out.protectedHeader).toEqual({ alg, typ: 'x+jws' });
  });

  it('it verifies a signature jose makes', async () => {
    const jws = await new jose.CompactSign(payload).setProtectedHeader({ alg, kid: 'k' }).sign(keys[alg].priv);
    const out = compactVerify(jws, keys[alg].pub, { algorithms: [alg] });
    expect(out.payload.equals(payload)).toBe(true);
    expect(out.header).toEqual({ alg, kid: 'k' });
  });

  it('refuses a tampered header, payload or signature, and another key', () => {
    const jws = compactSign({ alg }, payload, keys[alg].priv);
    const [h, p, s] = jws.split('.') as [string, string, string];
    const other = compactSign({ alg }, Buffer.from('{"hello":"world","n":2}'), keys[alg].priv).split('.')[1]!;
    const flipped = Buffer.from(s, 'base64url');
    flipped[0]! ^= 1;
    expect(code(() => compactVerify(`${h}.${other}.${s}`, keys[alg].pub, { algorithms: [alg] }))).toBe('ERR_JWS_SIGNATURE_INVALID');
    expect(code(() => compactVerify(`${h}.${p}.${flipped.toString('base64url')}`, keys[alg].pub, { algorithms: [alg] }))).toBe('ERR_JWS_SIGNATURE_INVALID');
    const h2 = Buffer.from(JSON.stringify({ alg, x: 1 })).toString('base64url');
    expect(code(() => compactVerify(`${h2}.${p}.${s}`, keys[alg].pub, { algorithms: [alg] }))).toBe('ERR_JWS_SIGNATURE_INVALID');
    const stranger = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : alg === 'PS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' });
    expect(code(() => compactVerify(jws, stranger.publicKey, { algorithms: [alg] }))).toBe('ERR_JWS_SIGNATURE_INVALID');
  });

  it('refuses a key of another type or curve for this alg', () => {
    const jws = compactSign({ alg }, payload, keys[alg].priv);
    for (const other of JWS_ALGORITHMS.filter((a) => a !== alg)) {
      expect(code(() => compactVerify(jws, keys[other].pub, { algorithms: [alg] })), other).toBe('ERR_JOSE_NOT_ALLOWED');
      expect(code(() => compactSign({ alg }, payload, keys[other].priv)), other).toBe('ERR_JOSE_NOT_ALLOWED');
    }
  });
});

describe('published vectors', () => {
  it('RFC 8037 A.4: signs the Ed25519 example byte for byte, and verifies it', () => {
    const v = RFC8037_A4;
    const priv = createPrivateKey({ key: v.key, format: 'jwk' });
    expect(compactSign({ alg: 'EdDSA' }, Buffer.from(v.payload), priv)).toBe(v.compact);
    expect(compactVerify(v.compact, createPublicKey(priv), { algorithms: ['EdDSA'] }).payload.toString()).toBe(v.payload);
  });

  it('RFC 7520 §4.2 (PS384) and §4.3 (ES512) verify through the same signature code, given their spec', () => {
    const ps384: SignatureSpec = { hash: 'sha384', keyType: 'rsa', pssSaltBytes: 48, minRsaBits: 2048 };
    const es512: SignatureSpec = { hash: 'sha512', keyType: 'ec', curve: 'secp521r1', signatureBytes: 132 };
    for (const [v, spec] of [[RFC7520_4_2, ps384], [RFC7520_4_3, es512]] as const) {
      const key = createPublicKey({ key: v.key, format: 'jwk' });
      const [h, p, s] = v.compact.split('.') as [string, string, string];
      expect(Buffer.from(p, 'base64url').toString('utf8')).toBe(RFC7520_PAYLOAD);
      expect(checkSignature(spec, key, Buffer.from(`${h}.${p}`), Buffer.from(s, 'base64url'))).toBe(true);
      expect(checkSignature(spec, key, Buffer.from(`${h}.${p}x`), Buffer.from(s, 'base64url'))).toBe(false);
    }
  });

  it('but the broker-facing parser refuses both algorithms', () => {
    expect(code(() => parseCompactJws(RFC7520_4_2.compact, JWS_ALGORITHMS))).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(code(() => parseCompactJws(RFC7520_4_3.compact, JWS_ALGORITHMS))).toBe('ERR_JOSE_NOT_ALLOWED');
  });
});

describe('parseCompactJws refuses', () => {
  const seg = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const parse = (s: string, algs: readonly JwsAlg[] = ['ES256']) => code(() => parseCompactJws(s, algs));

  it('none, HS256, lowercase, and an alg the caller did not allow', () => {
    for (const alg of ['none', 'HS256', 'RS256', 'es256', 'ES512']) expect(parse(`${seg({ alg })}.${seg({})}.AAAA`), alg).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(parse(`${seg({ alg: 'ES384' })}.${seg({})}.AAAA`, ['ES256'])).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(parse(`${seg({})}.${seg({})}.AAAA`)).toBe('ERR_JOSE_NOT_ALLOWED');
  });

  it('crit, whatever it names', () => {
    expect(parse(`${seg({ alg: 'ES256', crit: ['b64'], b64: false })}.${seg({})}.AAAA`)).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(parse(`${seg({ alg: 'ES256', crit: [] })}.${seg({})}.AAAA`)).toBe('ERR_JOSE_NOT_ALLOWED');
  });

  it('duplicate header members, including through escapes and in nested objects', () => {
    expect(parse(`${seg('{"alg":"none","alg":"ES256"}')}.${seg({})}.AAAA`)).toBe('ERR_JOSE_INVALID');
    expect(parse(`${seg('{"alg":"ES256","\\u0061lg":"ES256"}')}.${seg({})}.AAAA`)).toBe('ERR_JOSE_INVALID');
    expect(parse(`${seg('{"alg":"ES256","jwk":{"x":"a","x":"b"}}')}.${seg({})}.AAAA`)).toBe('ERR_JOSE_INVALID');
    // The same name in two sibling objects is fine.
    expect(parse(`${seg('{"alg":"ES256","a":{"x":1},"b":{"x":1}}')}.${seg({})}.AAAA`)).toBe('ok');
  });

  it('a header that is not a UTF-8 JSON object', () => {
    expect(parse(`${Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url')}.${seg({})}.AAAA`)).toBe('ERR_JOSE_INVALID');
    for (const h of ['[]', '"ES256"', 'null', '{', '\ufeff{"alg":"ES256"}']) expect(parse(`${seg(h)}.${seg({})}.AAAA`), h).toBe('ERR_JOSE_INVALID');
  });

  it('not three segments, non-canonical base64url, an empty signature', () => {
    const h = seg({ alg: 'ES256' });
    for (const s of ['', 'a.b', `${h}.e30.AAAA.x`, `${h}.e30.`, `${h}.e30=.AAAA`, `${h}.e30.AAA+`, `${h}.e31.AAAA`, `${h}.e30.AAB`]) {
      expect(parse(s), s).toBe('ERR_JOSE_INVALID');
    }
  });

  it('a DER-encoded ECDSA signature (JOSE uses r‖s)', () => {
    const input = `${seg({ alg: 'ES256' })}.${seg({})}`;
    const der = sign('sha256', Buffer.from(input), keys.ES256.priv);
    expect(code(() => compactVerify(`${input}.${der.toString('base64url')}`, keys.ES256.pub, { algorithms: ['ES256'] }))).toBe('ERR_JWS_SIGNATURE_INVALID');
  });

  it('an RSA key under 2048 bits for PS256', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(code(() => compactSign({ alg: 'PS256' }, payload, small.privateKey))).toBe('ERR_JOSE_NOT_ALLOWED');
  });
});
