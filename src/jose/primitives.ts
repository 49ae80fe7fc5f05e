/**
 * The building blocks of the JWE algorithms, on synchronous node:crypto. Each takes its key size
 * from its key, so the RFC 7520 vectors (AES-128, P-384) can exercise the very same code; what
 * the protocol allows is decided by jwe.ts, not here.
 *
 * - Concat KDF, RFC 7518 §4.6.2 (NIST SP 800-56A, single-step, SHA-256)
 * - AES Key Wrap, RFC 3394, with the default IV (OpenSSL's id-aesN-wrap)
 * - AES-GCM with a 96-bit IV and a 128-bit tag, RFC 7518 §5.3
 */
import { createCipheriv, createDecipheriv, hash, type CipherGCMTypes } from 'node:crypto';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

const KW_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const KW_CIPHERS: Readonly<Record<number, string>> = { 16: 'id-aes128-wrap', 24: 'id-aes192-wrap', 32: 'id-aes256-wrap' };
const GCM_CIPHERS: Readonly<Record<number, CipherGCMTypes>> = { 16: 'aes-128-gcm', 24: 'aes-192-gcm', 32: 'aes-256-gcm' };

function cipherFor<T>(table: Readonly<Record<number, T>>, key: Uint8Array, what: string): T {
  const name = table[key.length];
  if (name === undefined) throw new RangeError(`${what} key is ${key.length} bytes, not 16, 24 or 32`);
  return name;
}

const u32be = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const lengthPrefixed = (data: Uint8Array): Buffer => Buffer.concat([u32be(data.length), data]);

/** OtherInfo without apu/apv depends on the algorithm and size only: made once for each. */
const plainOtherInfo = new Map<string, Buffer>();

function otherInfo(algorithmId: string, keyBits: number, apu: Uint8Array, apv: Uint8Array): Buffer {
  const make = () => Buffer.concat([lengthPrefixed(Buffer.from(algorithmId, 'ascii')), lengthPrefixed(apu), lengthPrefixed(apv), u32be(keyBits)]);
  if (apu.length > 0 || apv.length > 0) return make();
  const id = `${algorithmId}/${keyBits}`;
  let info = plainOtherInfo.get(id);
  if (!info) plainOtherInfo.set(id, (info = make()));
  return info;
}

/**
 * Derives `keyBits` bits from the shared secret `z`. OtherInfo = AlgorithmID ‖ PartyUInfo ‖
 * PartyVInfo ‖ SuppPubInfo, each of the first three a 32-bit big-endian length and its bytes, the
 * last the key length in bits as 32 bits. `algorithmId` is the `alg` for key agreement with key
 * wrapping (ECDH-ES+A256KW) and the `enc` for direct key agreement.
 */
export function concatKdf(z: Uint8Array, keyBits: number, algorithmId: string, apu: Uint8Array = Buffer.alloc(0), apv: Uint8Array = Buffer.alloc(0)): Buffer {
  const info = otherInfo(algorithmId, keyBits, apu, apv);
  const rounds = Math.ceil(keyBits / 256);
  const out = Buffer.alloc(rounds * 32);
  for (let i = 0; i < rounds; i++) {
    const input = Buffer.concat([u32be(i + 1), z, info]);
    hash('sha256', input, 'buffer').copy(out, i * 32);
    input.fill(0);
  }
  return out.subarray(0, keyBits / 8);
}

export function aesKeyWrap(kek: Uint8Array, key: Uint8Array): Buffer {
  const c = createCipheriv(cipherFor(KW_CIPHERS, kek, 'AES-KW'), kek, KW_IV);
  return Buffer.concat([c.update(key), c.final()]);
}

/** Throws when the wrapped key fails the RFC 3394 integrity check. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Buffer {
  const d = createDecipheriv(cipherFor(KW_CIPHERS, kek, 'AES-KW'), kek, KW_IV);
  return Buffer.concat([d.update(wrapped), d.final()]);
}

export function gcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): { ciphertext: Buffer; tag: Buffer } {
  const c = createCipheriv(cipherFor(GCM_CIPHERS, key, 'AES-GCM'), key, iv, { authTagLength: GCM_TAG_BYTES });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

/** Throws when the tag does not authenticate the ciphertext and `aad`. */
export function gcmOpen(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Buffer {
  if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) throw new RangeError('AES-GCM needs a 96-bit IV and a 128-bit tag');
  const d = createDecipheriv(cipherFor(GCM_CIPHERS, key, 'AES-GCM'), key, iv, { authTagLength: GCM_TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(tag);
  return Buffer.concat([d.update(ciphertext), d.final()]);
}
