/** The entry points' contract: booleans, a log-only reason, never an exception. */
import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkBinarySignature,
  checkImageSignature,
  verifyBinarySignature,
  verifyImageSignature,
} from '../../../src/measurement/index.js';
import type { Publisher } from '../../../src/policy/types.js';
import { cmd, Workdir } from './openssl.js';

const NOW = Date.now();
const DIGEST = `sha256:${'0f'.repeat(32)}`;
let w: Workdir;
let sha256: string;

const keyPublisher = (pub: string): Publisher => ({ name: pub, kind: 'key', key: w.publicKey(pub) });

beforeAll(() => {
  w = new Workdir();
  w.write('app', 'the release binary\n');
  sha256 = w.sha256('app');
  w.sh(cmd.ecKey('P-256', 'p256.key'));
  w.sh(cmd.publicKey('p256.key', 'p256.pub'));
  w.sh(cmd.signDigest('p256.key', 'app', 'app.sig'));
  w.sh(cmd.cosignPayload('registry.example/app', DIGEST, 'payload.json'));
  w.sh(cmd.signPayloadEcdsa('sha256', 'p256.key', 'payload.json', 'payload.sig'));
  // Key types no format accepts.
  w.sh('openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out p521.key');
  w.sh('openssl genpkey -algorithm ed448 -out ed448.key');
  w.sh('openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out rsapss.key');
  for (const k of ['p521', 'ed448', 'rsapss']) w.sh(cmd.publicKey(`${k}.key`, `${k}.pub`));
});
afterAll(() => w?.remove());

describe('onReject', () => {
  it('is not called when the signature is accepted', () => {
    const reasons: string[] = [];
    expect(verifyBinarySignature(keyPublisher('p256.pub'), sha256, w.read('app.sig'), undefined, NOW, (r) => reasons.push(r))).toBe(true);
    expect(verifyImageSignature(keyPublisher('p256.pub'), DIGEST, w.read('payload.json'), w.read('payload.sig'), undefined, NOW, (r) => reasons.push(r))).toBe(true);
    expect(reasons).toEqual([]);
  });

  it('receives the reason of a refusal', () => {
    const reasons: string[] = [];
    expect(verifyBinarySignature(keyPublisher('p256.pub'), '00'.repeat(32), w.read('app.sig'), undefined, NOW, (r) => reasons.push(r))).toBe(false);
    expect(reasons).toEqual(['ECDSA P-256 digest signature does not verify for the measured SHA-256']);
  });

  it('cannot turn a refusal into an exception by throwing', () => {
    const throwing = () => {
      throw new Error('logger down');
    };
    expect(verifyBinarySignature(keyPublisher('p256.pub'), '00'.repeat(32), w.read('app.sig'), undefined, NOW, throwing)).toBe(false);
  });
});

describe('the check variants', () => {
  it('return { ok: true } or { ok: false, reason }', () => {
    expect(checkBinarySignature(keyPublisher('p256.pub'), sha256, w.read('app.sig'), undefined, NOW)).toEqual({ ok: true });
    expect(checkImageSignature(keyPublisher('p256.pub'), DIGEST, w.read('payload.json'), Buffer.of(1), undefined, NOW)).toEqual({
      ok: false,
      reason: 'ECDSA P-256/SHA256 signature over the cosign payload does not verify',
    });
  });

  it('ignore an x5c sent for a bare-key publisher', () => {
    expect(checkBinarySignature(keyPublisher('p256.pub'), sha256, w.read('app.sig'), ['garbage'], NOW)).toEqual({ ok: true });
  });
});

describe('publisher keys no format accepts', () => {
  it.each([
    ['p521.pub', /unsupported curve secp521r1/],
    ['ed448.pub', /key type ed448 is not supported/],
    ['rsapss.pub', /key type rsa-pss is not supported/],
  ])('%s is refused', (pub, why) => {
    const v = checkBinarySignature(keyPublisher(pub), sha256, w.read('app.sig'), undefined, NOW);
    expect(v.ok ? 'accepted' : v.reason).toMatch(why);
  });

  it('a private key in the policy is refused rather than used', () => {
    const pub: Publisher = { name: 'oops', kind: 'key', key: createPrivateKey(w.read('p256.key')) };
    const v = checkBinarySignature(pub, sha256, w.read('app.sig'), undefined, NOW);
    expect(v.ok ? 'accepted' : v.reason).toMatch(/private key, expected a public key/);
  });
});

describe('garbage in', () => {
  it('is refused, never thrown', () => {
    const pub = keyPublisher('p256.pub');
    const sig = w.read('app.sig');
    const junk = [null, undefined, 42, 'text', {}, { kind: 'ca' }, { kind: 'key', key: {} }, { kind: 'other' }] as unknown as Publisher[];
    for (const p of junk) {
      expect(verifyBinarySignature(p, sha256, sig, undefined, NOW)).toBe(false);
      expect(verifyImageSignature(p, DIGEST, w.read('payload.json'), sig, undefined, NOW)).toBe(false);
    }
    expect(verifyBinarySignature(pub, null as unknown as string, sig, undefined, NOW)).toBe(false);
    expect(verifyBinarySignature(pub, sha256, 'c2ln' as unknown as Uint8Array, undefined, NOW)).toBe(false);
    expect(verifyImageSignature(pub, DIGEST, null as unknown as Uint8Array, sig, undefined, NOW)).toBe(false);
    expect(verifyImageSignature(pub, DIGEST, new Uint8Array(16 * 1024 + 1), sig, undefined, NOW)).toBe(false);
  });
});
