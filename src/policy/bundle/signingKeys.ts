/**
 * Policy signing keys: Ed25519, ECDSA P-256 / P-384, RSA-PSS (≥ 2048 bits). The key decides the
 * algorithm, so a signature cannot choose a weaker one:
 *
 * | key          | signature over the PAE                              | openssl                              |
 * |--------------|-----------------------------------------------------|--------------------------------------|
 * | Ed25519      | Ed25519 (pure)                                      | pkeyutl -sign -rawin                 |
 * | ECDSA P-256  | ECDSA-SHA256, DER (or raw r‖s)                      | dgst -sha256 -sign                   |
 * | ECDSA P-384  | ECDSA-SHA384, DER (or raw r‖s)                      | dgst -sha384 -sign                   |
 * | RSA / RSA-PSS| RSASSA-PSS, SHA-256, MGF1-SHA-256, any salt length  | dgst -sha256 -sigopt rsa_padding_mode:pss |
 *
 * A key's id is the lowercase hex SHA-256 of its SubjectPublicKeyInfo DER (as TUF and sigstore
 * compute key ids), so anyone can compute it with `openssl pkey -pubin -outform DER | sha256sum`.
 */
import { constants, createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export class SigningKeyError extends Error {}

export const keyId = (publicKey: KeyObject): string => createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

/** Which hash and padding a key signs with, or why it cannot sign policies. */
function scheme(key: KeyObject): { hash: string | null; pss: boolean } {
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (t === 'ed25519') return { hash: null, pss: false };
  if (t === 'ec' && d.namedCurve === 'prime256v1') return { hash: 'sha256', pss: false };
  if (t === 'ec' && d.namedCurve === 'secp384r1') return { hash: 'sha384', pss: false };
  if ((t === 'rsa' || t === 'rsa-pss') && (d.modulusLength ?? 0) >= 2048) return { hash: 'sha256', pss: true };
  throw new SigningKeyError(`unsupported policy signing key (${t}${d.namedCurve ? ' ' + d.namedCurve : ''}${d.modulusLength ? ' ' + d.modulusLength : ''}); use Ed25519, ECDSA P-256/P-384 or RSA-PSS ≥ 2048`);
}

/** A public key from PEM (SPKI), checked to be one policy signatures may use. */
export function policyPublicKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new SigningKeyError('not a PEM public key');
  }
  scheme(key);
  return key;
}

/** A private key from PEM (PKCS#8 or traditional), checked the same way. */
export function policyPrivateKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new SigningKeyError('not a PEM private key (an encrypted key must be decrypted first, e.g. with openssl pkey)');
  }
  scheme(key);
  return key;
}

export function signPae(privateKey: KeyObject, data: Buffer): Buffer {
  const { hash, pss } = scheme(privateKey);
  return sign(hash, data, pss ? { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : privateKey);
}

/** Whether `sig` is a valid signature by `publicKey` over `data`; malformed signatures are false. */
export function verifyPae(publicKey: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    const { hash, pss } = scheme(publicKey);
    if (pss) return verify(hash, data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig);
    if (hash === null) return verify(null, data, publicKey, sig);
    return attempt(() => verify(hash, data, publicKey, sig)) || attempt(() => verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig));
  } catch {
    return false;
  }
}

function attempt(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
