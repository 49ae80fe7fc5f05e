/**
 * Software custody's audit signing key: an EC P-256 private key, PKCS#8 PEM, in
 * `<stateDir>/audit-signing.pem` (0600), made once from the CSPRNG. Refused when others can read
 * it. Like the KEK file, whoever reads it can sign as the broker: back it up and guard it.
 */
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { BrokerError } from '../errors.js';
import { writeFileExclusive } from '../fsAtomic.js';
import { auditKeyId, p256PublicKey, type AuditSigner, type AuditSignerOptions } from './auditSigner.js';

export const AUDIT_KEY_FILE = 'audit-signing.pem';

export function softwareAuditSigner(stateDir: string, o: AuditSignerOptions): AuditSigner | undefined {
  const file = path.join(stateDir, AUDIT_KEY_FILE);
  if (o.create && !existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileExclusive(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600);
  }
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BrokerError('custody_unavailable', `the audit signing key ${file} cannot be read`, { cause: e });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new BrokerError('custody_unavailable', `the audit signing key ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  let key;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (e) {
    throw new BrokerError('custody_unavailable', `the audit signing key ${file} is not a PEM private key`, { cause: e });
  }
  const pub = p256PublicKey(key);
  return {
    kind: 'software',
    keyId: auditKeyId(pub),
    publicKeyPem: pub.export({ type: 'spki', format: 'pem' }).toString(),
    sign: async (data) => sign('sha256', data, key),
  };
}
