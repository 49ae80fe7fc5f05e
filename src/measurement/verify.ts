/**
 * Does a publisher approve this artifact? The two entry points read as a sequence of steps:
 * check the measured digest, find the publisher's signing key (directly, or from a certificate
 * path to its CA), then verify the signature in the one format that key type uses. Any failure,
 * including malformed input, is a refusal with a log-only reason; nothing throws.
 *
 * Formats, by key type:
 * | key            | binary                                        | image (cosign payload)          |
 * |----------------|-----------------------------------------------|---------------------------------|
 * | ECDSA P-256    | ECDSA over the measured SHA-256 (DER)          | ECDSA-SHA256 over the payload   |
 * | ECDSA P-384    | ECDSA over the measured SHA-256 (DER)          | ECDSA-SHA384 over the payload   |
 * | Ed25519        | Ed25519 over artifactStatement(sha256)         | Ed25519 over the payload        |
 * | RSA ≥ 2048     | RSA-PSS-SHA256 over artifactStatement(sha256)  | RSA-SHA256, PKCS#1 v1.5 or PSS  |
 */
import type { Publisher } from '../policy/types.js';
import { signingCertificateKey } from './certChain.js';
import { verifyPayloadSignature } from './cosign.js';
import { MAX_PAYLOAD_BYTES, payloadImageDigest } from './cosignPayload.js';
import { digestsEqual, imageDigest, sha256Bytes } from './digest.js';
import { verifyEcdsaDigest } from './ecdsaDigest.js';
import { signingKey, type SigningKey } from './publisherKey.js';
import { verifyStatement } from './statement.js';
import { reject, report, settle, type OnReject, type Verdict } from './verdict.js';

/** Large enough for an RSA-16384 signature; every accepted signature is smaller. */
export const MAX_SIGNATURE_BYTES = 2048;

/** Verify a publisher's signature over a binary whose measured SHA-256 is `sha256Hex`. */
export function checkBinarySignature(
  pub: Publisher,
  sha256Hex: string,
  sig: Uint8Array,
  x5c: string[] | undefined,
  now: number,
): Verdict {
  return settle(() => {
    const digest = sha256Bytes(sha256Hex);
    const signature = bytes(sig, MAX_SIGNATURE_BYTES, 'signature');
    const key = publisherKey(pub, x5c, now);
    if (key.kind === 'ecdsa') verifyEcdsaDigest(key, digest, signature);
    else verifyStatement(key, sha256Hex, signature);
  });
}

/** Verify a publisher's cosign signature approving the image with manifest digest `digest`. */
export function checkImageSignature(
  pub: Publisher,
  digest: string,
  payload: Uint8Array,
  sig: Uint8Array,
  x5c: string[] | undefined,
  now: number,
): Verdict {
  return settle(() => {
    const measured = imageDigest(digest, 'measured image digest');
    const signed = bytes(payload, MAX_PAYLOAD_BYTES, 'cosign payload');
    const signature = bytes(sig, MAX_SIGNATURE_BYTES, 'signature');
    const key = publisherKey(pub, x5c, now);
    verifyPayloadSignature(key, signed, signature);
    const named = payloadImageDigest(signed);
    if (!digestsEqual(named, measured)) reject(`cosign payload approves image ${named}, the measured image is ${measured}`);
  });
}

/** `checkBinarySignature` as a boolean; `onReject` receives the reason of a refusal. */
export function verifyBinarySignature(
  pub: Publisher,
  sha256Hex: string,
  sig: Uint8Array,
  x5c: string[] | undefined,
  now: number,
  onReject?: OnReject,
): boolean {
  return report(checkBinarySignature(pub, sha256Hex, sig, x5c, now), onReject);
}

/** `checkImageSignature` as a boolean; `onReject` receives the reason of a refusal. */
export function verifyImageSignature(
  pub: Publisher,
  digest: string,
  payload: Uint8Array,
  sig: Uint8Array,
  x5c: string[] | undefined,
  now: number,
  onReject?: OnReject,
): boolean {
  return report(checkImageSignature(pub, digest, payload, sig, x5c, now), onReject);
}

/** A bare-key publisher signs with its key (any x5c is ignored); a CA publisher through a certificate. */
function publisherKey(pub: Publisher, x5c: string[] | undefined, now: number): SigningKey {
  switch (pub.kind) {
    case 'key':
      return signingKey(pub.key);
    case 'ca':
      return signingKey(signingCertificateKey(pub, x5c, now));
    default:
      return reject(`unknown publisher kind ${JSON.stringify((pub as { kind?: unknown }).kind)}`);
  }
}

function bytes(value: Uint8Array, max: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) reject(`${what} is not bytes`);
  if (value.length === 0 || value.length > max) reject(`${what} is ${value.length} bytes, expected 1 to ${max}`);
  return value;
}
