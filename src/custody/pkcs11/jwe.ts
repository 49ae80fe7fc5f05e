/**
 * The compact JWE of a `cek` release, assembled by hand because its content-encryption key never
 * leaves the HSM (jose's CompactEncrypt needs the key's bytes). RFC 7516 §7.1:
 * BASE64URL(header) . BASE64URL(encrypted key) . BASE64URL(iv) . BASE64URL(ciphertext) . BASE64URL(tag),
 * with the ASCII of the encoded header as the AES-GCM additional data.
 */
import { RELEASE_ENC } from '../../protocol.js';

export type CekAlg = 'RSA-OAEP' | 'RSA-OAEP-256';
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

/** The encoded protected header; its ASCII bytes are also the GCM additional data. */
export const encodeProtectedHeader = (alg: CekAlg, kid: string): string =>
  Buffer.from(JSON.stringify({ alg, enc: RELEASE_ENC, kid }), 'utf8').toString('base64url');

/** `sealed` is the AES-GCM output as PKCS#11 returns it: ciphertext followed by the tag. */
export function compactJwe(header: string, encryptedKey: Buffer, iv: Buffer, sealed: Buffer): string {
  const ciphertext = sealed.subarray(0, sealed.length - GCM_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);
  return [header, encryptedKey.toString('base64url'), iv.toString('base64url'), ciphertext.toString('base64url'), tag.toString('base64url')].join('.');
}
