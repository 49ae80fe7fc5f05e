/**
 * The agent's ephemeral key (`cnf.jwk`), checked in one place for every custody backend before
 * anything is encrypted or wrapped to it. The schema has already fixed its shape (kty, crv, no
 * private members); here its values must make a key that only the agent can open:
 *
 * - RSA: `e` exactly 65537; `n` odd, with a real bit length (from the parsed key, not the byte
 *   count) of 2048–8192; both canonical base64url without leading zero bytes. With `e = 1` the
 *   "ciphertext" is the plaintext, and small or even moduli are factorable or not moduli at all.
 * - EC: P-256 only; `x` and `y` exactly 32 bytes of canonical base64url; the point on the curve
 *   (so not the point at infinity, which has no affine coordinates), against invalid-curve attacks.
 *
 * Every refusal, and any exception from the JWE encryption itself, is `400 recipient_invalid`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { BrokerError } from '../errors.js';
import { compactEncrypt, fromB64u, isOnP256, uncompressedPoint, P256_COORD_BYTES } from '../jose/index.js';
import type { RecipientJwk } from '../protocol.js';

export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 8192;
const RSA_EXPONENT = Buffer.from([0x01, 0x00, 0x01]);

/** A recipient key that passed every check: a P-256 point, or an RSA public key and its parts. */
export type ValidRecipient =
  | { readonly kty: 'EC'; readonly point: Buffer }
  | { readonly kty: 'RSA'; readonly key: KeyObject; readonly n: Buffer; readonly e: Buffer; readonly bits: number };

const invalid = (reason: string, cause?: unknown) => new BrokerError('recipient_invalid', `recipient key: ${reason}`, cause === undefined ? undefined : { cause });

/** One evidence's recipient serves all its keys: validate it once per JWK object. */
const validated = new WeakMap<RecipientJwk, ValidRecipient>();

export function validateRecipient(jwk: RecipientJwk): ValidRecipient {
  let valid = validated.get(jwk);
  if (!valid) validated.set(jwk, (valid = jwk.kty === 'EC' ? validEc(jwk.x, jwk.y) : validRsa(jwk.n, jwk.e)));
  return valid;
}

function decode(value: string, what: string): Buffer {
  try {
    return fromB64u(value, what);
  } catch (e) {
    throw invalid(`${what} is not canonical base64url`, e);
  }
}

function validEc(xs: string, ys: string): ValidRecipient {
  const x = decode(xs, 'x');
  const y = decode(ys, 'y');
  if (x.length !== P256_COORD_BYTES || y.length !== P256_COORD_BYTES) throw invalid(`x and y are ${x.length} and ${y.length} bytes, not ${P256_COORD_BYTES}`);
  if (!isOnP256(x, y)) throw invalid('the point is not on P-256');
  return { kty: 'EC', point: uncompressedPoint(x, y) };
}

function validRsa(ns: string, es: string): ValidRecipient {
  const n = decode(ns, 'n');
  const e = decode(es, 'e');
  if (!e.equals(RSA_EXPONENT)) throw invalid(`e is ${e.length > 8 ? `${e.length * 8}-bit` : `0x${e.toString('hex') || '(empty)'}`}, only 65537 is allowed`);
  if (n.length === 0 || n[0] === 0) throw invalid('n is empty or has a leading zero byte');
  if ((n[n.length - 1]! & 1) === 0) throw invalid('n is even');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'RSA', n: ns, e: es }, format: 'jwk' });
  } catch (err) {
    throw invalid('n and e do not make an RSA key', err);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) throw invalid(`n has ${bits} bits, ${RSA_MIN_BITS}–${RSA_MAX_BITS} allowed`);
  return { kty: 'RSA', key, n, e, bits };
}

/**
 * The `plaintext` release form: a compact JWE of `plaintext` to the recipient (ECDH-ES+A256KW
 * for EC, RSA-OAEP-256 for RSA; enc A256GCM; `kid` name@version). Whatever node:crypto throws
 * for this key is the key's fault, never a 500.
 */
export function encryptToRecipient(to: ValidRecipient, plaintext: Uint8Array, kid: string): string {
  try {
    return compactEncrypt(plaintext, to, { kid });
  } catch (e) {
    throw invalid('JWE encryption to it failed', e);
  }
}
