/**
 * Compact JWE (RFC 7516 §7.1) with `enc` A256GCM and the key management algorithms the protocol
 * uses (RFC 7518 §4.3, §4.6): ECDH-ES+A256KW to a P-256 key, RSA-OAEP-256 to an RSA key, and on
 * the receiving side also RSA-OAEP, which HSMs limited to SHA-1 OAEP produce (the `cek` form).
 * The AES-GCM additional data is the ASCII of the encoded protected header (§5.1 step 14), and
 * no `apu`/`apv` are sent (an incoming one is honoured in the KDF).
 */
import { constants, privateDecrypt, publicEncrypt, randomBytes, type ECDH, type KeyObject } from 'node:crypto';
import { b64u, fromB64u, optionalB64u } from './base64url.js';
import { JoseError } from './errors.js';
import { isJsonObject, type JsonObject } from './json.js';
import { generateP256, isOnP256, pointJwk, uncompressedPoint } from './p256.js';
import { aesKeyUnwrap, aesKeyWrap, concatKdf, GCM_IV_BYTES, GCM_TAG_BYTES, gcmOpen, gcmSeal } from './primitives.js';
import { allowedMember, encodeJsonSegment, protectedHeader } from './segments.js';

export const JWE_ENC = 'A256GCM';
export const JWE_ALGORITHMS = ['ECDH-ES+A256KW', 'RSA-OAEP-256', 'RSA-OAEP'] as const;
export type JweAlg = (typeof JWE_ALGORITHMS)[number];

const CEK_BYTES = 32;
const WRAPPED_CEK_BYTES = 40;
const OAEP_HASH: Readonly<Record<Exclude<JweAlg, 'ECDH-ES+A256KW'>, string>> = { 'RSA-OAEP-256': 'sha256', 'RSA-OAEP': 'sha1' };

/** Whom to encrypt to: an EC point already checked on P-256, or an RSA public key. */
export type JweRecipient = { readonly kty: 'EC'; readonly point: Buffer } | { readonly kty: 'RSA'; readonly key: KeyObject };
/** Who decrypts: the ECDH object holding the P-256 private key, or an RSA private key. */
export type JweDecryptionKey = { readonly kty: 'EC'; readonly ecdh: ECDH } | { readonly kty: 'RSA'; readonly key: KeyObject };

/** Encrypts `plaintext` to `to` (ECDH-ES+A256KW for EC, RSA-OAEP-256 for RSA), with `kid` in the header. */
export function compactEncrypt(plaintext: Uint8Array, to: JweRecipient, options: { kid?: string } = {}): string {
  const cek = randomBytes(CEK_BYTES);
  try {
    let header: JsonObject;
    let encryptedKey: Buffer;
    if (to.kty === 'EC') {
      const alg = 'ECDH-ES+A256KW';
      const eph = generateP256();
      const kek = agreedKek(eph.ecdh, to.point, alg);
      encryptedKey = aesKeyWrap(kek, cek);
      kek.fill(0);
      header = { alg, enc: JWE_ENC, ...options, epk: pointJwk(eph.point) };
    } else {
      const alg = 'RSA-OAEP-256';
      encryptedKey = publicEncrypt({ key: to.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[alg] }, cek);
      header = { alg, enc: JWE_ENC, ...options };
    }
    const encodedHeader = encodeJsonSegment(header);
    const iv = randomBytes(GCM_IV_BYTES);
    const { ciphertext, tag } = gcmSeal(cek, iv, Buffer.from(encodedHeader, 'latin1'), plaintext);
    return [encodedHeader, b64u(encryptedKey), b64u(iv), b64u(ciphertext), b64u(tag)].join('.');
  } finally {
    cek.fill(0);
  }
}

export interface DecryptedJwe {
  readonly header: JsonObject;
  readonly alg: JweAlg;
  readonly plaintext: Buffer;
  /** The content-encryption key (the released key in the `cek` form). Zero it when done. */
  readonly cek: Buffer;
}

/** Decrypts a compact JWE whose `alg` is one of `algorithms` and fits `key`. */
export function compactDecrypt(compact: string, key: JweDecryptionKey, options: { algorithms: readonly JweAlg[] }): DecryptedJwe {
  const parts = compact.split('.');
  if (parts.length !== 5) throw new JoseError('ERR_JOSE_INVALID', 'not a compact JWE (five segments)');
  const [h, k, i, c, t] = parts as [string, string, string, string, string];
  const header = protectedHeader(h, 'JWE protected header');
  const alg = allowedMember(header, 'alg', options.algorithms, 'JWE');
  allowedMember(header, 'enc', [JWE_ENC], 'JWE');
  if (Object.hasOwn(header, 'zip')) throw new JoseError('ERR_JOSE_NOT_ALLOWED', 'JWE "zip" is not supported');
  if ((alg === 'ECDH-ES+A256KW') !== (key.kty === 'EC')) throw new JoseError('ERR_JOSE_NOT_ALLOWED', `JWE alg ${alg} does not fit a ${key.kty} key`);
  const encryptedKey = fromB64u(k, 'JWE encrypted key');
  const iv = fromB64u(i, 'JWE IV');
  const ciphertext = fromB64u(c, 'JWE ciphertext');
  const tag = fromB64u(t, 'JWE tag');
  if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) throw new JoseError('ERR_JOSE_INVALID', 'JWE IV or tag has the wrong length');

  const cek = key.kty === 'EC' ? unwrapAgreed(header, key.ecdh, encryptedKey) : unwrapRsa(alg as keyof typeof OAEP_HASH, key.key, encryptedKey);
  try {
    const plaintext = gcmOpen(cek, iv, Buffer.from(h, 'latin1'), ciphertext, tag);
    return { header, alg, plaintext, cek };
  } catch (e) {
    cek.fill(0);
    throw new JoseError('ERR_JWE_DECRYPTION_FAILED', 'the JWE does not authenticate', { cause: e });
  }
}

/** Z from ECDH, then the Concat KDF to the 256-bit key-wrapping key. */
function agreedKek(ecdh: ECDH, point: Buffer, alg: string, apu?: Buffer, apv?: Buffer): Buffer {
  const z = ecdh.computeSecret(point);
  try {
    return concatKdf(z, 256, alg, apu, apv);
  } finally {
    z.fill(0);
  }
}

function unwrapAgreed(header: JsonObject, ecdh: ECDH, encryptedKey: Buffer): Buffer {
  const epk = header.epk;
  if (!isJsonObject(epk) || epk.kty !== 'EC' || epk.crv !== 'P-256' || typeof epk.x !== 'string' || typeof epk.y !== 'string') {
    throw new JoseError('ERR_JOSE_INVALID', 'JWE epk is not a P-256 public key');
  }
  const x = fromB64u(epk.x, 'JWE epk x');
  const y = fromB64u(epk.y, 'JWE epk y');
  if (!isOnP256(x, y)) throw new JoseError('ERR_JOSE_INVALID', 'JWE epk is not a point on P-256');
  if (encryptedKey.length !== WRAPPED_CEK_BYTES) throw new JoseError('ERR_JOSE_INVALID', 'JWE encrypted key has the wrong length');
  const kek = agreedKek(ecdh, uncompressedPoint(x, y), 'ECDH-ES+A256KW', optionalB64u(header.apu, 'JWE apu'), optionalB64u(header.apv, 'JWE apv'));
  try {
    return aesKeyUnwrap(kek, encryptedKey);
  } catch (e) {
    throw new JoseError('ERR_JWE_DECRYPTION_FAILED', 'the JWE encrypted key does not unwrap', { cause: e });
  } finally {
    kek.fill(0);
  }
}

function unwrapRsa(alg: keyof typeof OAEP_HASH, key: KeyObject, encryptedKey: Buffer): Buffer {
  let cek: Buffer;
  try {
    cek = privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[alg] }, encryptedKey);
  } catch (e) {
    throw new JoseError('ERR_JWE_DECRYPTION_FAILED', 'the JWE encrypted key does not decrypt', { cause: e });
  }
  if (cek.length !== CEK_BYTES) {
    cek.fill(0);
    throw new JoseError('ERR_JWE_DECRYPTION_FAILED', `the JWE content-encryption key is ${cek.length} bytes, not ${CEK_BYTES}`);
  }
  return cek;
}
