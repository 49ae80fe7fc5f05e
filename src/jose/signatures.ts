/**
 * JWS signature algorithms on node:crypto (RFC 7518 §3): what key each needs, and raw sign and
 * verify. ECDSA signatures are the JOSE r‖s form (`ieee-p1363`), not DER; RSASSA-PSS uses MGF1
 * with the same hash and a salt as long as the hash. Which algorithms the broker accepts is
 * JWS_SPECS; `SignatureSpec` is exported so tests can run RFC 7520's PS384 and ES512 vectors
 * through this same code without widening that list.
 */
import { constants, sign, verify, type KeyObject } from 'node:crypto';
import { JoseError } from './errors.js';

export interface SignatureSpec {
  /** node:crypto digest name, or null for EdDSA (the hash is part of the scheme). */
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null;
  readonly keyType: 'ec' | 'ed25519' | 'rsa';
  /** For ECDSA: the OpenSSL curve name, and the r‖s signature length in bytes. */
  readonly curve?: string;
  readonly signatureBytes?: number;
  /** For RSASSA-PSS: the salt length in bytes, and the smallest modulus allowed. */
  readonly pssSaltBytes?: number;
  readonly minRsaBits?: number;
}

export const JWS_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'PS256'] as const;
export type JwsAlg = (typeof JWS_ALGORITHMS)[number];

export const JWS_SPECS: Readonly<Record<JwsAlg, SignatureSpec>> = {
  ES256: { hash: 'sha256', keyType: 'ec', curve: 'prime256v1', signatureBytes: 64 },
  ES384: { hash: 'sha384', keyType: 'ec', curve: 'secp384r1', signatureBytes: 96 },
  EdDSA: { hash: null, keyType: 'ed25519', signatureBytes: 64 },
  PS256: { hash: 'sha256', keyType: 'rsa', pssSaltBytes: 32, minRsaBits: 2048 },
};

/** Refuses a key that does not fit the algorithm (type, curve, RSA size). */
export function checkKeyFits(spec: SignatureSpec, key: KeyObject, alg: string): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  const fits =
    spec.keyType === 'rsa'
      ? (type === 'rsa' || type === 'rsa-pss') && (details?.modulusLength ?? 0) >= (spec.minRsaBits ?? 0)
      : type === spec.keyType && (spec.curve === undefined || details?.namedCurve === spec.curve);
  if (!fits) throw new JoseError('ERR_JOSE_NOT_ALLOWED', `a ${type}${details?.namedCurve ? ` ${details.namedCurve}` : ''} key cannot be used with ${alg}`);
}

function signOptions(spec: SignatureSpec, key: KeyObject) {
  if (spec.keyType === 'ec') return { key, dsaEncoding: 'ieee-p1363' as const };
  if (spec.keyType === 'rsa') return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: spec.pssSaltBytes! };
  return key;
}

/** True when `signature` is valid for `data` under `key`; false for any malformed signature. */
export function checkSignature(spec: SignatureSpec, key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const expected = spec.keyType === 'rsa' ? Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8) : spec.signatureBytes;
  if (signature.length !== expected) return false;
  try {
    return verify(spec.hash, data, signOptions(spec, key), signature);
  } catch {
    return false;
  }
}

export function makeSignature(spec: SignatureSpec, key: KeyObject, data: Uint8Array): Buffer {
  return sign(spec.hash, data, signOptions(spec, key));
}
