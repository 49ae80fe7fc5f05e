/**
 * The audit signing key on the token: an EC P-256 key pair labelled `custody.auditKeyLabel`
 * (default `keyanchor-audit`). The private key is a token object that is sensitive, never
 * extractable and can only sign; the public key is read from the token (CKA_EC_POINT) for
 * verifiers. Signing hashes with SHA-256 here and signs the digest in the HSM with CKM_ECDSA
 * (SoftHSM2 and HSMs all have it), returning the DER form openssl verifies. Sessions are the
 * custodian's pool's, with its recovery.
 */
import { createHash, randomBytes, verify } from 'node:crypto';
import { BrokerError } from '../../errors.js';
import { auditKeyId, p256PublicKey, type AuditSigner, type AuditSignerOptions } from '../auditSigner.js';
import type { KeyCustodian } from '../custodian.js';
import { CKA, CKK, CKM, CKO } from './constants.js';
import { Pkcs11Custodian } from './custodian.js';
import type { Handle, Pkcs11Module } from './library.js';

/** DER OID of prime256v1 (CKA_EC_PARAMS). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** A P-256 SubjectPublicKeyInfo up to the 65-byte uncompressed point. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

function find(mod: Pkcs11Module, session: Handle, cls: number, label: string): Handle[] {
  mod.C_FindObjectsInit(session, [{ type: CKA.CLASS, value: cls }, { type: CKA.LABEL, value: label }]);
  try {
    return mod.C_FindObjects(session, 4);
  } finally {
    mod.C_FindObjectsFinal(session);
  }
}

function generate(mod: Pkcs11Module, session: Handle, label: string): void {
  const id = randomBytes(16);
  mod.C_GenerateKeyPair(
    session,
    { mechanism: CKM.EC_KEY_PAIR_GEN },
    [
      { type: CKA.CLASS, value: CKO.PUBLIC_KEY }, { type: CKA.KEY_TYPE, value: CKK.EC }, { type: CKA.EC_PARAMS, value: P256_PARAMS },
      { type: CKA.LABEL, value: label }, { type: CKA.ID, value: id }, { type: CKA.TOKEN, value: true }, { type: CKA.PRIVATE, value: false },
      { type: CKA.VERIFY, value: true }, { type: CKA.ENCRYPT, value: false }, { type: CKA.WRAP, value: false }, { type: CKA.DERIVE, value: false },
      { type: CKA.MODIFIABLE, value: false },
    ],
    [
      { type: CKA.CLASS, value: CKO.PRIVATE_KEY }, { type: CKA.KEY_TYPE, value: CKK.EC }, { type: CKA.LABEL, value: label }, { type: CKA.ID, value: id },
      { type: CKA.TOKEN, value: true }, { type: CKA.PRIVATE, value: true }, { type: CKA.SENSITIVE, value: true }, { type: CKA.EXTRACTABLE, value: false },
      { type: CKA.SIGN, value: true }, { type: CKA.DECRYPT, value: false }, { type: CKA.UNWRAP, value: false }, { type: CKA.DERIVE, value: false },
      { type: CKA.MODIFIABLE, value: false },
    ],
  );
}

/** The point in CKA_EC_POINT: a DER OCTET STRING around 04‖x‖y (PKCS#11), or the bare point (some tokens). */
function pointOf(v: Buffer): Buffer {
  if (v.length === 67 && v[0] === 0x04 && v[1] === 0x41 && v[2] === 0x04) return v.subarray(2);
  if (v.length === 65 && v[0] === 0x04) return v;
  throw new BrokerError('custody_unavailable', 'pkcs11: the audit public key is not an uncompressed P-256 point');
}

/** r‖s (what CKM_ECDSA returns) as the DER SEQUENCE { INTEGER r, INTEGER s } openssl reads. */
export function p1363ToDer(sig: Buffer): Buffer {
  if (sig.length !== 64) throw new BrokerError('custody_unavailable', `pkcs11: an ECDSA P-256 signature of ${sig.length} bytes`);
  const int = (b: Buffer) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    const body = v[0]! & 0x80 ? Buffer.concat([Buffer.of(0), v]) : v;
    return Buffer.concat([Buffer.of(0x02, body.length), body]);
  };
  const seq = Buffer.concat([int(sig.subarray(0, 32)), int(sig.subarray(32))]);
  return Buffer.concat([Buffer.of(0x30, seq.length), seq]);
}

/** The key pair labelled `label`, refused unless its private half is sensitive, non-extractable and EC. */
function keyPair(mod: Pkcs11Module, session: Handle, label: string): { priv: Handle; point: Buffer } | undefined {
  const privs = find(mod, session, CKO.PRIVATE_KEY, label);
  const pubs = find(mod, session, CKO.PUBLIC_KEY, label);
  if (privs.length === 0 && pubs.length === 0) return undefined;
  if (privs.length !== 1 || pubs.length !== 1) {
    throw new BrokerError('custody_unavailable', `pkcs11: ${privs.length} private and ${pubs.length} public keys labelled "${label}"; the audit signing key needs exactly one of each`);
  }
  const [type, sensitive, extractable, signs] = mod.C_GetAttributeValue(session, privs[0]!, [
    { type: CKA.KEY_TYPE }, { type: CKA.SENSITIVE }, { type: CKA.EXTRACTABLE }, { type: CKA.SIGN },
  ]).map((a) => a.value ?? Buffer.alloc(0));
  if (type![0] !== CKK.EC || sensitive![0] !== 1 || extractable![0] !== 0 || signs![0] !== 1) {
    throw new BrokerError('custody_unavailable', `pkcs11: refusing the audit signing key "${label}": it must be an EC key that is sensitive, not extractable and allowed to sign`);
  }
  const [point] = mod.C_GetAttributeValue(session, pubs[0]!, [{ type: CKA.EC_POINT }]);
  return { priv: privs[0]!, point: pointOf(point!.value ?? Buffer.alloc(0)) };
}

export async function pkcs11AuditSigner(custodian: KeyCustodian, label: string, o: AuditSignerOptions): Promise<AuditSigner | undefined> {
  if (!(custodian instanceof Pkcs11Custodian)) throw new BrokerError('custody_unavailable', 'the audit signing key with pkcs11 custody needs the pkcs11 custodian');
  const found = await custodian.withSession('finding the audit signing key', async ({ mod, session }) => {
    let pair = keyPair(mod, session, label);
    if (!pair && o.create) {
      generate(mod, session, label);
      pair = keyPair(mod, session, label);
    }
    return pair?.point;
  });
  if (!found) return undefined;
  const pub = p256PublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, found]), format: 'der', type: 'spki' });
  const sign = (data: Buffer) =>
    custodian.withSession('signing an audit checkpoint', async ({ mod, session }) => {
      const pair = keyPair(mod, session, label);
      if (!pair || !pair.point.equals(found)) throw new BrokerError('custody_unavailable', `pkcs11: the audit signing key "${label}" is gone or was replaced`);
      mod.C_SignInit(session, { mechanism: CKM.ECDSA }, pair.priv);
      return p1363ToDer(await mod.C_SignAsync(session, createHash('sha256').update(data).digest(), Buffer.alloc(64)));
    });
  // The token's private key must match the public key verifiers will pin.
  const probe = randomBytes(32);
  if (!verify('sha256', probe, pub, await sign(probe))) throw new BrokerError('custody_unavailable', `pkcs11: the audit signing key "${label}" does not verify under its own public key`);
  return { kind: 'pkcs11', keyId: auditKeyId(pub), publicKeyPem: pub.export({ type: 'spki', format: 'pem' }).toString(), sign };
}
