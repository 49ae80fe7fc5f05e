/** The digests the broker measures, and how they are checked and compared. */
import { timingSafeEqual } from 'node:crypto';
import { reject } from './verdict.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const IMAGE_DIGEST = /^sha256:[0-9a-f]{64}$/;

export const isSha256Hex = (s: unknown): s is string => typeof s === 'string' && SHA256_HEX.test(s);

/** A binary's measured SHA-256 (64 lowercase hex characters) as its 32 bytes. */
export function sha256Bytes(sha256Hex: unknown): Buffer {
  if (!isSha256Hex(sha256Hex)) reject('measured binary digest is not 64 lowercase hex characters');
  return Buffer.from(sha256Hex, 'hex');
}

/** An image manifest digest `sha256:<hex>`, lowercased; anything else is refused. */
export function imageDigest(value: unknown, what: string): string {
  const lower = typeof value === 'string' ? value.toLowerCase() : undefined;
  if (lower === undefined || !IMAGE_DIGEST.test(lower)) reject(`${what} is not sha256:<64 hex>`);
  return lower;
}

/** Constant-time equality of two digests already brought to the same canonical form. */
export function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
