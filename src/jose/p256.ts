/**
 * P-256 points as JWK carries them (RFC 7518 §6.2.1): `x` and `y`, each exactly 32 bytes big
 * endian. A point is checked on the curve here, in plain arithmetic, so a recipient key or an
 * ephemeral `epk` off the curve (an invalid-curve attack) is refused before any ECDH runs;
 * node:crypto checks again when it computes the secret.
 */
import { createECDH, type ECDH } from 'node:crypto';
import { b64u } from './base64url.js';

export const P256_COORD_BYTES = 32;
const P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
const B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

const toBig = (b: Uint8Array): bigint => BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`);

/** True when (x, y) are 32-byte field elements with y² = x³ − 3x + b (mod p). */
export function isOnP256(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== P256_COORD_BYTES || y.length !== P256_COORD_BYTES) return false;
  const X = toBig(x);
  const Y = toBig(y);
  if (X >= P || Y >= P) return false;
  return (Y * Y - (X * X * X - 3n * X + B)) % P === 0n;
}

/** The uncompressed SEC1 encoding 04 ‖ x ‖ y that ECDH.computeSecret takes. */
export const uncompressedPoint = (x: Uint8Array, y: Uint8Array): Buffer => Buffer.concat([Buffer.of(4), x, y]);

/** The JWK members of an uncompressed point. */
export function pointJwk(point: Buffer): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  return { kty: 'EC', crv: 'P-256', x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33, 65)) };
}

/** A fresh P-256 key pair: the ECDH object keeps the private half, `point` is the public one. */
export function generateP256(): { ecdh: ECDH; point: Buffer } {
  const ecdh = createECDH('prime256v1');
  return { ecdh, point: ecdh.generateKeys() };
}
