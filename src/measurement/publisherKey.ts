/**
 * Which publisher keys the broker accepts, sorted by the signature format each one uses:
 * ECDSA P-256/P-384 keys sign digests, Ed25519 and RSA keys sign artifact statements.
 * Every other key type (and RSA below 2048 bits) is refused here, before any signature check.
 */
import type { KeyObject } from 'node:crypto';
import { reject } from './verdict.js';

export const MIN_RSA_BITS = 2048;
/** Upper bound so an oversized key cannot make verification expensive. */
export const MAX_RSA_BITS = 16384;

export type EcdsaCurve = 'P-256' | 'P-384';

export type SigningKey =
  | { readonly kind: 'ecdsa'; readonly curve: EcdsaCurve; readonly key: KeyObject; readonly point: Uint8Array }
  | { readonly kind: 'ed25519'; readonly key: KeyObject }
  | { readonly kind: 'rsa'; readonly key: KeyObject; readonly bits: number };

const CURVES: Readonly<Record<string, EcdsaCurve>> = { prime256v1: 'P-256', secp384r1: 'P-384' };

/** Classify a publisher's public key, or refuse it. */
export function signingKey(key: KeyObject): SigningKey {
  if (key.type !== 'public') reject(`publisher key is a ${key.type} key, expected a public key`);
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = details.namedCurve === undefined ? undefined : CURVES[details.namedCurve];
      if (!curve) reject(`publisher EC key on unsupported curve ${details.namedCurve ?? '(unknown)'}`);
      return { kind: 'ecdsa', curve, key, point: uncompressedPoint(key) };
    }
    case 'ed25519':
      return { kind: 'ed25519', key };
    case 'rsa': {
      const bits = details.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) reject(`publisher RSA key has ${bits} bits, at least ${MIN_RSA_BITS} required`);
      if (bits > MAX_RSA_BITS) reject(`publisher RSA key has ${bits} bits, at most ${MAX_RSA_BITS} allowed`);
      return { kind: 'rsa', key, bits };
    }
    default:
      return reject(`publisher key type ${key.asymmetricKeyType ?? '(unknown)'} is not supported`);
  }
}

/** SEC 1 uncompressed point 04‖x‖y, the form @noble/curves takes. */
function uncompressedPoint(key: KeyObject): Uint8Array {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') reject('publisher EC key has no coordinates');
  return Buffer.concat([Buffer.of(4), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}
