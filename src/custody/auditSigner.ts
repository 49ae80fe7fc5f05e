/**
 * The audit signing key: what signs audit checkpoints (audit/checkpoint.ts). It lives where the
 * custody kind keeps keys: with PKCS#11 custody an EC P-256 key pair on the token whose private
 * half never leaves it (non-extractable, sign only); with software custody a 0600 PKCS#8 file in
 * the state directory. Signatures are ECDSA P-256 over SHA-256, DER-encoded: exactly what
 * `openssl dgst -sha256 -verify audit.pub -signature cp.sig cp.txt` checks.
 *
 * The key is identified by the SHA-256 of its public key's DER SubjectPublicKeyInfo
 * (`openssl pkey -pubin -in audit.pub -outform DER | sha256sum`).
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { Config } from '../config.js';
import { BrokerError } from '../errors.js';
import type { KeyCustodian } from './custodian.js';
import { softwareAuditSigner } from './softwareAuditKey.js';

export interface AuditSigner {
  readonly kind: 'software' | 'pkcs11';
  /** SHA-256 (hex) of the public key's DER SubjectPublicKeyInfo. */
  readonly keyId: string;
  /** The public key, PEM (SPKI): what verifiers pin. */
  readonly publicKeyPem: string;
  /** ECDSA P-256 over SHA-256(data), DER-encoded. */
  sign(data: Buffer): Promise<Buffer>;
}

/** Whether a missing key may be made now (a broker's start, `keys create --init`), and where it is looked for. */
export interface AuditSignerOptions {
  create: boolean;
}

export const auditKeyId = (publicKey: KeyObject): string =>
  createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

/** Refuses anything but an EC P-256 public key. */
export function p256PublicKey(input: Parameters<typeof createPublicKey>[0]): KeyObject {
  const key = createPublicKey(input);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new BrokerError('custody_unavailable', 'the audit signing key is not an EC P-256 key');
  }
  return key;
}

/**
 * The audit signer of the configured custody. With PKCS#11 custody it signs through `custodian`'s
 * sessions (pkcs11js loads only there); `undefined` when the key does not exist and may not be made.
 */
export async function openAuditSigner(config: Pick<Config, 'custody' | 'stateDir'>, custodian: KeyCustodian, o: AuditSignerOptions): Promise<AuditSigner | undefined> {
  const c = config.custody;
  switch (c.kind) {
    case 'software':
      return softwareAuditSigner(config.stateDir, o);
    case 'pkcs11': {
      const { pkcs11AuditSigner } = await import('./pkcs11/auditKey.js');
      return pkcs11AuditSigner(custodian, c.auditKeyLabel, o);
    }
  }
}
