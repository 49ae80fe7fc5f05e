/**
 * Digest signatures: ECDSA over the SHA-256 of a binary, DER-encoded, as
 * `openssl dgst -sha256 -sign` and `cosign sign-blob` produce. The broker only has the measured
 * digest, so it verifies with the digest as the message hash (no second hashing). A P-384 key
 * signs the 256-bit digest as is (ECDSA uses the leftmost min(hash, order) bits), like openssl.
 */
import { p256, p384 } from '@noble/curves/nist.js';
import type { EcdsaCurve, SigningKey } from './publisherKey.js';
import { reject } from './verdict.js';

const CURVES = { 'P-256': p256, 'P-384': p384 } as const satisfies Record<EcdsaCurve, unknown>;

/**
 * `prehash: false`: the digest is the hash. `lowS: false`: openssl does not normalise S, and a
 * high-S signature is no forgery. `format: 'der'`: the ASN.1 SEQUENCE { r, s } openssl writes.
 */
const VERIFY_OPTS = { prehash: false, lowS: false, format: 'der' } as const;

export function verifyEcdsaDigest(
  key: Extract<SigningKey, { kind: 'ecdsa' }>,
  sha256: Uint8Array,
  sig: Uint8Array,
): void {
  if (sha256.length !== 32) reject('ECDSA digest format: the digest is not 32 bytes');
  if (!CURVES[key.curve].verify(sig, sha256, key.point, VERIFY_OPTS)) {
    reject(`ECDSA ${key.curve} digest signature does not verify for the measured SHA-256`);
  }
}
