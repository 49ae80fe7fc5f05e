/** validateRecipient: every check of issue 6 item 2, and the boundaries that must still pass. */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encryptToRecipient, validateRecipient } from '../../../src/custody/recipient.js';
import { BrokerError } from '../../../src/errors.js';
import type { RecipientJwk } from '../../../src/protocol.js';
import { hostileRecipients } from '../../helpers/hostileRecipients.js';

function outcome(jwk: RecipientJwk): string {
  try {
    return `ok ${validateRecipient(jwk).kty}`;
  } catch (e) {
    if (!(e instanceof BrokerError)) throw e;
    return `${e.status} ${e.code}`;
  }
}

/** An odd modulus of exactly `bits` bits (not a real RSA modulus: only its size is checked). */
function modulus(bits: number): string {
  const n = randomBytes(Math.ceil(bits / 8));
  n[0] = (n[0]! & (0xff >> (n.length * 8 - bits))) | (0x80 >> (n.length * 8 - bits));
  n[n.length - 1]! |= 1;
  return n.toString('base64url');
}

describe('validateRecipient', () => {
  const hostile = hostileRecipients();
  it.each([...hostile.rsa, ...hostile.ec])('refuses %s with 400 recipient_invalid', (_what, jwk) => {
    expect(outcome(jwk)).toBe('400 recipient_invalid');
  });

  it('accepts real P-256 and RSA-2048 keys, and RSA moduli of 2048 to 8192 bits', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    expect(outcome({ kty: 'EC', crv: 'P-256', x: ec.x!, y: ec.y! })).toBe('ok EC');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    expect(outcome({ kty: 'RSA', n: rsa.n!, e: rsa.e! })).toBe('ok RSA');
    for (const bits of [2048, 3072, 4095, 8192]) expect(outcome({ kty: 'RSA', n: modulus(bits), e: 'AQAB' }), `${bits}`).toBe('ok RSA');
    for (const bits of [2047, 8193]) expect(outcome({ kty: 'RSA', n: modulus(bits), e: 'AQAB' }), `${bits}`).toBe('400 recipient_invalid');
  });

  it('counts the modulus bits from the key: 2041 bits in 256 bytes is too few', () => {
    expect(outcome({ kty: 'RSA', n: modulus(2041), e: 'AQAB' })).toBe('400 recipient_invalid');
  });

  it('turns an encryption failure into recipient_invalid, never a plain error', () => {
    // A 512-bit key (validation refuses it) cannot carry a 32-byte CEK under RSA-OAEP-256: node:crypto throws.
    const to = validateRecipient({ kty: 'RSA', n: modulus(2048), e: 'AQAB' });
    const tooSmallForOaep = { ...to, key: generateKeyPairSync('rsa', { modulusLength: 512 }).publicKey };
    expect(() => encryptToRecipient(tooSmallForOaep, randomBytes(32), 'k@1')).toThrowError(expect.objectContaining({ code: 'recipient_invalid' }) as Error);
  });
});
