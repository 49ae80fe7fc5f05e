/**
 * Recipient keys (`cnf.jwk`) that must be refused with `recipient_invalid`, one per case of
 * issue 6 item 2, built at test time from real keys: each is the schema-valid shape of a public
 * JWK whose values make no safe key.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { RecipientJwk } from '../../src/protocol.js';
import { nonCanonicalB64u as nonCanonical } from './spellings.js';

const u = (b: Buffer | number[]) => Buffer.from(b).toString('base64url');


export function hostileRecipients(): { rsa: Array<[string, RecipientJwk]>; ec: Array<[string, RecipientJwk]> } {
  const rsaJwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
  const n = Buffer.from(rsaJwk.n!, 'base64url');
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  const rsa = (over: { n?: string; e?: string }): RecipientJwk => ({ kty: 'RSA', n: rsaJwk.n!, e: rsaJwk.e!, ...over });
  const even = Buffer.from(n);
  even[even.length - 1]! &= 0xfe;
  const ecJwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const ec = (over: { x?: string; y?: string }): RecipientJwk => ({ kty: 'EC', crv: 'P-256', x: ecJwk.x!, y: ecJwk.y!, ...over });
  const y = Buffer.from(ecJwk.y!, 'base64url');
  y[31]! ^= 1;
  return {
    rsa: [
      ['e = 0', rsa({ e: u([0]) })],
      ['e = 1', rsa({ e: u([1]) })],
      ['e = 2', rsa({ e: u([2]) })],
      ['e = 3', rsa({ e: u([3]) })],
      ['a 96-bit e', rsa({ e: u([1, ...Array<number>(10).fill(0), 1]) })],
      ['e = 65537 with a leading zero byte', rsa({ e: u([0, 1, 0, 1]) })],
      ['n = 0', rsa({ n: u([0]) })],
      ['n = 1', rsa({ n: u([1]) })],
      ['an even n', rsa({ n: u(even) })],
      ['n left-padded with a zero byte', rsa({ n: u(Buffer.concat([Buffer.of(0), n])) })],
      ['n = 2^8400 − 1', rsa({ n: u(Buffer.alloc(1050, 0xff)) })],
      ['a 1024-bit n', rsa({ n: small.n! })],
      ['non-canonical base64url n', rsa({ n: nonCanonical(rsaJwk.n!) })],
    ],
    ec: [
      ['a point off the curve', ec({ y: u(y) })],
      ['x of 31 bytes', ec({ x: u(Buffer.from(ecJwk.x!, 'base64url').subarray(1)) })],
      ['y of 33 bytes', ec({ y: u(Buffer.concat([Buffer.of(0), Buffer.from(ecJwk.y!, 'base64url')])) })],
      ['(0, 0), standing in for the point at infinity', ec({ x: u(Buffer.alloc(32)), y: u(Buffer.alloc(32)) })],
      ['coordinates ≥ p', ec({ x: u(Buffer.alloc(32, 0xff)), y: u(Buffer.alloc(32, 0xff)) })],
      ['non-canonical base64url x', ec({ x: nonCanonical(ecJwk.x!) })],
    ],
  };
}
