/**
 * Signatures over a cosign payload. The broker has the payload bytes, so each algorithm is the
 * ordinary one over the message:
 * - ECDSA P-256 with SHA-256, ECDSA P-384 with SHA-384 (DER), as cosign and
 *   `openssl dgst -sha256|-sha384 -sign` produce;
 * - Ed25519 (pure);
 * - RSA with SHA-256, either PKCS#1 v1.5 (cosign's RSA default) or PSS with MGF1-SHA-256 and any
 *   salt length.
 */
import { constants, verify } from 'node:crypto';
import type { SigningKey } from './publisherKey.js';
import { reject } from './verdict.js';

const ECDSA_HASH = { 'P-256': 'sha256', 'P-384': 'sha384' } as const;

export function verifyPayloadSignature(key: SigningKey, payload: Uint8Array, sig: Uint8Array): void {
  if (!payloadSignatureVerifies(key, payload, sig)) {
    reject(`${describe(key)} signature over the cosign payload does not verify`);
  }
}

function payloadSignatureVerifies(key: SigningKey, payload: Uint8Array, sig: Uint8Array): boolean {
  switch (key.kind) {
    case 'ecdsa':
      return verify(ECDSA_HASH[key.curve], payload, { key: key.key, dsaEncoding: 'der' }, sig);
    case 'ed25519':
      return verify(null, payload, key.key, sig);
    case 'rsa':
      return (
        verify('sha256', payload, { key: key.key, padding: constants.RSA_PKCS1_PADDING }, sig) ||
        verify(
          'sha256',
          payload,
          { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
          sig,
        )
      );
  }
}

function describe(key: SigningKey): string {
  switch (key.kind) {
    case 'ecdsa':
      return `ECDSA ${key.curve}/${ECDSA_HASH[key.curve].toUpperCase()}`;
    case 'ed25519':
      return 'Ed25519';
    case 'rsa':
      return `RSA-${key.bits} (PKCS#1 v1.5 or PSS, SHA-256)`;
  }
}
