/**
 * base64url as JOSE uses it (RFC 7515 §2): no padding, and only the canonical encoding of the
 * bytes. Buffer.from(…, 'base64url') skips characters it does not know and ignores trailing bits,
 * so two different strings could carry the same bytes; here the string must re-encode to itself.
 */
import { JoseError } from './errors.js';

const ALPHABET = /^[A-Za-z0-9_-]*$/;

export const b64u = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

/** Decodes canonical unpadded base64url; `what` names the field in the error. */
export function fromB64u(s: string, what: string): Buffer {
  if (!ALPHABET.test(s) || s.length % 4 === 1) throw new JoseError('ERR_JOSE_INVALID', `${what} is not base64url`);
  const bytes = Buffer.from(s, 'base64url');
  if (bytes.toString('base64url') !== s) throw new JoseError('ERR_JOSE_INVALID', `${what} is not canonical base64url`);
  return bytes;
}

/** A JSON member that must be a canonical base64url string; absent → undefined. */
export function optionalB64u(value: unknown, what: string): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new JoseError('ERR_JOSE_INVALID', `${what} is not a string`);
  return fromB64u(value, what);
}
