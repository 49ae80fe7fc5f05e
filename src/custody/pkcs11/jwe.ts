/**
 * The compact JWE of a `cek` release, assembled by hand because its content-encryption key never
 * leaves the HSM (src/jose's compactEncrypt needs the key's bytes). RFC 7516 §7.1:
 * BASE64URL(header) . BASE64URL(encrypted key) . BASE64URL(iv) . BASE64URL(ciphertext) . BASE64URL(tag),
 * with the ASCII of the encoded header as the AES-GCM additional data — the standard JWE AAD, so
 * any JWE library (src/jose in the agent, jose in the tests) decrypts it once it has the CEK.
 */
import { JWE_ENC } from '../../jose/index.js';
import { b64u } from '../../jose/base64url.js';
import { GCM_IV_BYTES, GCM_TAG_BYTES } from '../../jose/primitives.js';
import { encodeJsonSegment } from '../../jose/segments.js';

export { GCM_IV_BYTES, GCM_TAG_BYTES };
export type CekAlg = 'RSA-OAEP' | 'RSA-OAEP-256';

/** The encoded protected header; its ASCII bytes are also the GCM additional data. */
export const encodeProtectedHeader = (alg: CekAlg, kid: string): string => encodeJsonSegment({ alg, enc: JWE_ENC, kid });

/** `sealed` is the AES-GCM output as PKCS#11 returns it: ciphertext followed by the tag. */
export function compactJwe(header: string, encryptedKey: Buffer, iv: Buffer, sealed: Buffer): string {
  const ciphertext = sealed.subarray(0, sealed.length - GCM_TAG_BYTES);
  const tag = sealed.subarray(sealed.length - GCM_TAG_BYTES);
  return [header, b64u(encryptedKey), b64u(iv), b64u(ciphertext), b64u(tag)].join('.');
}
