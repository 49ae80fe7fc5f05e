/**
 * The JWE half of src/jose against jose, against an independent decryption (openssl + WebCrypto,
 * see independent.ts) and against RFC 7520; then everything it must refuse.
 */
import { createECDH, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import * as jose from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { compactDecrypt, compactEncrypt, type JweRecipient } from '../../../src/jose/index.js';
import { aesKeyUnwrap, aesKeyWrap, concatKdf, gcmOpen, gcmSeal } from '../../../src/jose/primitives.js';
import { requireTool } from '../../helpers/deps.js';
import { independentEcdhDecrypt, independentRsaDecrypt } from './independent.js';
import { code } from './outcome.js';
import { RFC3394_4_6, RFC7518_C, RFC7520_5_2, RFC7520_5_4, RFC7520_5_8, RFC7520_PLAINTEXT } from './vectors.js';

const b = (s: string) => Buffer.from(s, 'base64url');
const hasOpenssl = requireTool('openssl', 'the independent JWE decryption');

interface Ec { priv: KeyObject; pem: string; ecdh: ReturnType<typeof createECDH>; to: JweRecipient }
interface Rsa { priv: KeyObject; pem: string; to: JweRecipient }
let ec: Ec;
let rsa: Rsa;

beforeAll(() => {
  const e = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const j = e.privateKey.export({ format: 'jwk' });
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(b(j.d!));
  ec = { priv: e.privateKey, pem: e.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), ecdh, to: { kty: 'EC', point: ecdh.getPublicKey() } };
  const r = generateKeyPairSync('rsa', { modulusLength: 2048 });
  rsa = { priv: r.privateKey, pem: r.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), to: { kty: 'RSA', key: r.publicKey } };
});


describe('compactEncrypt interoperates', () => {
  it.each(['EC', 'RSA'] as const)('jose decrypts what it makes for an %s recipient, with the header it sent', async (kty) => {
    const r = kty === 'EC' ? ec : rsa;
    const key = randomBytes(32);
    const jwe = compactEncrypt(key, r.to, { kid: 'team/app@1' });
    const out = await jose.compactDecrypt(jwe, r.priv, { keyManagementAlgorithms: [kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256'], contentEncryptionAlgorithms: ['A256GCM'] });
    expect(Buffer.from(out.plaintext).equals(key)).toBe(true);
    expect(out.protectedHeader).toMatchObject({ alg: kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256', enc: 'A256GCM', kid: 'team/app@1' });
    expect(Object.keys(out.protectedHeader).sort()).toEqual(kty === 'EC' ? ['alg', 'enc', 'epk', 'kid'] : ['alg', 'enc', 'kid']);
  });

  it.skipIf(!hasOpenssl)('an independent ECDH-ES+A256KW decryption (openssl derive, WebCrypto KW and GCM) reads it', async () => {
    for (let i = 0; i < 5; i++) {
      const key = randomBytes(32);
      const out = await independentEcdhDecrypt(compactEncrypt(key, ec.to, { kid: 'k@1' }), ec.pem);
      expect(out.plaintext.equals(key)).toBe(true);
      expect(out.header.kid).toBe('k@1');
    }
  });

  it.skipIf(!hasOpenssl)('an independent RSA-OAEP-256 decryption (openssl pkeyutl, WebCrypto GCM) reads it', async () => {
    const key = randomBytes(32);
    const out = await independentRsaDecrypt(compactEncrypt(key, rsa.to, { kid: 'k@1' }), rsa.pem);
    expect(out.plaintext.equals(key)).toBe(true);
  });

  it('uses a fresh ephemeral key, CEK and IV every time', () => {
    const key = randomBytes(32);
    const a = compactEncrypt(key, ec.to).split('.');
    const c = compactEncrypt(key, ec.to).split('.');
    for (const i of [0, 1, 2, 3]) expect(a[i]).not.toBe(c[i]);
  });
});

describe('compactDecrypt interoperates', () => {
  const jweAlgs = { EC: ['ECDH-ES+A256KW'], RSA: ['RSA-OAEP-256', 'RSA-OAEP'] } as const;

  it.each([['EC', 'ECDH-ES+A256KW'], ['RSA', 'RSA-OAEP-256'], ['RSA', 'RSA-OAEP']] as const)('opens what jose makes for %s with %s', async (kty, alg) => {
    const key = randomBytes(32);
    const pub = createPublicKey(kty === 'EC' ? ec.priv : rsa.priv);
    const jwe = await new jose.CompactEncrypt(key).setProtectedHeader({ alg, enc: 'A256GCM', kid: 'x@1' }).encrypt(pub);
    const out = compactDecrypt(jwe, kty === 'EC' ? { kty, ecdh: ec.ecdh } : { kty, key: rsa.priv }, { algorithms: jweAlgs[kty] });
    expect(out.plaintext.equals(key)).toBe(true);
    expect(out.header.kid).toBe('x@1');
    expect(out.cek).toHaveLength(32);
  });

  it('honours apu and apv in the KDF, as jose sends them', async () => {
    const key = randomBytes(32);
    const jwe = await new jose.CompactEncrypt(key)
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' })
      .setKeyManagementParameters({ apu: Buffer.from('Alice'), apv: Buffer.from('Bob') })
      .encrypt(createPublicKey(ec.priv));
    expect(compactDecrypt(jwe, { kty: 'EC', ecdh: ec.ecdh }, { algorithms: ['ECDH-ES+A256KW'] }).plaintext.equals(key)).toBe(true);
  });

  it('decrypts RFC 7520 §5.2 (RSA-OAEP, A256GCM) to its plaintext', () => {
    const key = createPrivateKey({ key: RFC7520_5_2.key, format: 'jwk' });
    const out = compactDecrypt(RFC7520_5_2.compact, { kty: 'RSA', key }, { algorithms: ['RSA-OAEP'] });
    expect(out.plaintext.toString('utf8')).toBe(RFC7520_PLAINTEXT);
    expect(out.cek.equals(b(RFC7520_5_2.cek))).toBe(true);
    expect(out.header).toEqual({ alg: 'RSA-OAEP', kid: 'samwise.gamgee@hobbiton.example', enc: 'A256GCM' });
  });
});

describe('the primitives, with published vectors', () => {
  it('AES-GCM with the JWE AAD reproduces RFC 7520 §5.2 byte for byte', () => {
    const v = RFC7520_5_2;
    const out = gcmSeal(b(v.cek), b(v.iv), Buffer.from(v.protected, 'ascii'), Buffer.from(RFC7520_PLAINTEXT, 'utf8'));
    expect(out.ciphertext.toString('base64url')).toBe(v.ciphertext);
    expect(out.tag.toString('base64url')).toBe(v.tag);
  });

  it('RFC 7520 §5.4 (P-384, ECDH-ES+A128KW, A128GCM): ECDH, Concat KDF and AES-KW give its encrypted key; GCM its ciphertext', () => {
    const v = RFC7520_5_4;
    const eph = createECDH('secp384r1');
    eph.setPrivateKey(b(v.epk.d));
    expect(eph.getPublicKey().equals(Buffer.concat([Buffer.of(4), b(v.epk.x), b(v.epk.y)]))).toBe(true);
    const z = eph.computeSecret(Buffer.concat([Buffer.of(4), b(v.key.x), b(v.key.y)]));
    const kek = concatKdf(z, 128, 'ECDH-ES+A128KW');
    expect(aesKeyWrap(kek, b(v.cek)).toString('base64url')).toBe(v.encryptedKey);
    // The recipient's side: the same Z from its own key, and the unwrap.
    const me = createECDH('secp384r1');
    me.setPrivateKey(b(v.key.d));
    expect(me.computeSecret(Buffer.concat([Buffer.of(4), b(v.epk.x), b(v.epk.y)])).equals(z)).toBe(true);
    expect(aesKeyUnwrap(kek, b(v.encryptedKey)).equals(b(v.cek))).toBe(true);
    const sealed = gcmSeal(b(v.cek), b(v.iv), Buffer.from(v.protected, 'ascii'), Buffer.from(RFC7520_PLAINTEXT, 'utf8'));
    expect(sealed.ciphertext.toString('base64url')).toBe(v.ciphertext);
    expect(sealed.tag.toString('base64url')).toBe(v.tag);
  });

  it('RFC 7520 §5.8 (A128KW, A128GCM): AES-KW and GCM open its JWE', () => {
    const v = RFC7520_5_8;
    expect(aesKeyWrap(b(v.kek), b(v.cek)).toString('base64url')).toBe(v.encryptedKey);
    const plain = gcmOpen(b(v.cek), b(v.iv), Buffer.from(v.protected, 'ascii'), b(v.ciphertext), b(v.tag));
    expect(plain.toString('utf8')).toBe(RFC7520_PLAINTEXT);
  });

  it('RFC 7518 Appendix C: P-256 ECDH gives its Z and the Concat KDF its key (apu Alice, apv Bob)', () => {
    const v = RFC7518_C;
    const bob = createECDH('prime256v1');
    bob.setPrivateKey(b(v.bob.d));
    const z = bob.computeSecret(Buffer.concat([Buffer.of(4), b(v.alice.x), b(v.alice.y)]));
    expect([...z]).toEqual(v.z);
    expect(concatKdf(z, 128, 'A128GCM', Buffer.from('Alice'), Buffer.from('Bob')).toString('base64url')).toBe(v.derivedKey);
  });

  it('RFC 3394 §4.6: AES-256 key wrap of 256 bits', () => {
    const v = RFC3394_4_6;
    expect(aesKeyWrap(Buffer.from(v.kek, 'hex'), Buffer.from(v.keyData, 'hex')).toString('hex')).toBe(v.ciphertext);
    expect(aesKeyUnwrap(Buffer.from(v.kek, 'hex'), Buffer.from(v.ciphertext, 'hex')).toString('hex')).toBe(v.keyData);
  });

  it('AES-KW unwrap and GCM open throw on one flipped bit', () => {
    const v = RFC3394_4_6;
    const bad = Buffer.from(v.ciphertext, 'hex');
    bad[5]! ^= 1;
    expect(() => aesKeyUnwrap(Buffer.from(v.kek, 'hex'), bad)).toThrow();
    const g = RFC7520_5_8;
    const tag = b(g.tag);
    tag[0]! ^= 1;
    expect(() => gcmOpen(b(g.cek), b(g.iv), Buffer.from(g.protected, 'ascii'), b(g.ciphertext), tag)).toThrow();
  });
});

describe('compactDecrypt refuses', () => {
  const good = () => compactEncrypt(randomBytes(32), ec.to, { kid: 'k@1' });
  const open = (jwe: string) => code(() => compactDecrypt(jwe, { kty: 'EC', ecdh: ec.ecdh }, { algorithms: ['ECDH-ES+A256KW'] }));
  const withHeader = (jwe: string, edit: (h: Record<string, unknown>) => Record<string, unknown> | string) => {
    const parts = jwe.split('.');
    const h = edit(JSON.parse(b(parts[0]!).toString('utf8')) as Record<string, unknown>);
    parts[0] = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h)).toString('base64url');
    return parts.join('.');
  };

  it('a flipped bit in the header, encrypted key, IV, ciphertext or tag', () => {
    const jwe = good();
    for (let seg = 0; seg < 5; seg++) {
      const parts = jwe.split('.');
      const bytes = b(parts[seg]!);
      bytes[bytes.length - 1]! ^= 1;
      parts[seg] = bytes.toString('base64url');
      expect(open(parts.join('.')), `segment ${seg}`).not.toBe('ok');
    }
  });

  it('a JWE for another key', () => {
    const other = createECDH('prime256v1');
    other.generateKeys();
    expect(open(compactEncrypt(randomBytes(32), { kty: 'EC', point: other.getPublicKey() }))).toBe('ERR_JWE_DECRYPTION_FAILED');
  });

  it('alg or enc outside the allow-list, crit, zip', () => {
    expect(open(withHeader(good(), (h) => ({ ...h, alg: 'ECDH-ES+A128KW' })))).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(open(withHeader(good(), (h) => ({ ...h, alg: 'dir' })))).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(open(withHeader(good(), (h) => ({ ...h, enc: 'A128GCM' })))).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(open(withHeader(good(), (h) => ({ ...h, crit: ['exp'], exp: 1 })))).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(open(withHeader(good(), (h) => ({ ...h, zip: 'DEF' })))).toBe('ERR_JOSE_NOT_ALLOWED');
    const rsaJwe = compactEncrypt(randomBytes(32), rsa.to);
    expect(open(rsaJwe)).toBe('ERR_JOSE_NOT_ALLOWED');
    expect(code(() => compactDecrypt(rsaJwe, { kty: 'RSA', key: rsa.priv }, { algorithms: ['RSA-OAEP'] }))).toBe('ERR_JOSE_NOT_ALLOWED');
  });

  it('a duplicate header member, even one that agrees', () => {
    const dup = withHeader(good(), (h) => JSON.stringify(h).replace('{', '{"enc":"A256GCM",'));
    expect(open(dup)).toBe('ERR_JOSE_INVALID');
    const dupAlg = withHeader(good(), (h) => JSON.stringify(h).replace('{', '{"alg":"none",'));
    expect(open(dupAlg)).toBe('ERR_JOSE_INVALID');
  });

  it('an epk off the curve, of the wrong size, or on another curve', () => {
    const jwe = good();
    const edit = (f: (epk: Record<string, unknown>) => void) =>
      open(withHeader(jwe, (h) => {
        const epk = { ...(h.epk as Record<string, unknown>) };
        f(epk);
        return { ...h, epk };
      }));
    expect(edit((e) => (e.y = Buffer.alloc(32, 1).toString('base64url')))).toBe('ERR_JOSE_INVALID');
    expect(edit((e) => (e.x = Buffer.alloc(31, 1).toString('base64url')))).toBe('ERR_JOSE_INVALID');
    expect(edit((e) => (e.crv = 'P-384'))).toBe('ERR_JOSE_INVALID');
    expect(edit((e) => (e.x = `${String(e.x)}A`))).toBe('ERR_JOSE_INVALID');
  });

  it('not five segments, non-canonical base64url, a short IV or tag', () => {
    const parts = good().split('.');
    expect(open(parts.slice(0, 4).join('.'))).toBe('ERR_JOSE_INVALID');
    expect(open([...parts, ''].join('.'))).toBe('ERR_JOSE_INVALID');
    const iv = [...parts];
    iv[2] = b(parts[2]!).subarray(1).toString('base64url');
    expect(open(iv.join('.'))).toBe('ERR_JOSE_INVALID');
    const tag = [...parts];
    tag[4] = b(parts[4]!).subarray(1).toString('base64url');
    expect(open(tag.join('.'))).toBe('ERR_JOSE_INVALID');
    const padded = [...parts];
    padded[3] = `${parts[3]}==`;
    expect(open(padded.join('.'))).toBe('ERR_JOSE_INVALID');
  });

  it('a header that is not UTF-8 JSON', () => {
    const parts = good().split('.');
    parts[0] = Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url');
    expect(open(parts.join('.'))).toBe('ERR_JOSE_INVALID');
    parts[0] = Buffer.from('\ufeff{"alg":"ECDH-ES+A256KW"}').toString('base64url');
    expect(open(parts.join('.'))).toBe('ERR_JOSE_INVALID');
  });
});
