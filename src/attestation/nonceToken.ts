/**
 * Nonce tokens: a challenge stores nothing. A nonce is `base64url(v ‖ expiry ‖ id ‖ mac)`:
 *   v       1 byte, the format (1)
 *   expiry  8 bytes, big-endian epoch ms after which it is no longer good
 *   id      16 bytes from the CSPRNG: the key under which its use is recorded (store/nonces.ts)
 *   mac     32 bytes, HMAC-SHA256 over the 25 bytes before it, under the store's nonce key
 * so any broker on the same store can check, without a lookup, that it issued the nonce and until
 * when it is good. The format is opaque to agents: they echo the string.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const VERSION = 1;
const ID_BYTES = 16;
const MAC_BYTES = 32;
const BODY_BYTES = 1 + 8 + ID_BYTES;
export const NONCE_TOKEN_BYTES = BODY_BYTES + MAC_BYTES;

export interface NonceClaims {
  /** The unique id recorded when the nonce is used. */
  id: Buffer;
  expiresAt: number;
}

const mac = (key: Buffer, body: Buffer) => createHmac('sha256', key).update(body).digest();

export function mintNonce(key: Buffer, expiresAt: number, id: Buffer): string {
  if (id.length !== ID_BYTES) throw new RangeError(`a nonce id is ${ID_BYTES} bytes`);
  const body = Buffer.alloc(BODY_BYTES);
  body.writeUInt8(VERSION, 0);
  body.writeBigUInt64BE(BigInt(expiresAt), 1);
  id.copy(body, 9);
  return Buffer.concat([body, mac(key, body)]).toString('base64url');
}

/** The claims of a nonce this key minted; undefined for anything else (wrong length, format or MAC). */
export function openNonce(key: Buffer, nonce: string): NonceClaims | undefined {
  const raw = Buffer.from(nonce, 'base64url');
  if (raw.length !== NONCE_TOKEN_BYTES || raw.toString('base64url') !== nonce || raw[0] !== VERSION) return undefined;
  const body = raw.subarray(0, BODY_BYTES);
  if (!timingSafeEqual(raw.subarray(BODY_BYTES), mac(key, body))) return undefined;
  return { id: Buffer.from(raw.subarray(9, BODY_BYTES)), expiresAt: Number(body.readBigUInt64BE(1)) };
}
