/** Turns policy `certificate` / `publicKey` material into parsed objects, or a problem message. */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface MaterialContext {
  /** Directory of the policy file, for relative paths. */
  baseDir: string;
  /** Variables usable as ${name} in file paths, e.g. stateDir. */
  vars: Readonly<Record<string, string>>;
}

export class MaterialError extends Error {}

export function readMaterial(m: { file?: string; pem?: string }, ctx: MaterialContext): string {
  if (m.pem !== undefined) return m.pem;
  const expanded = m.file!.replace(/\$\{([A-Za-z]+)\}/g, (_, v: string) => {
    const val = ctx.vars[v];
    if (val === undefined) throw new MaterialError(`unknown variable \${${v}} (known: ${Object.keys(ctx.vars).join(', ') || 'none'})`);
    return val;
  });
  const file = path.resolve(ctx.baseDir, expanded);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new MaterialError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function parseCaCertificate(pem: string): { cert: X509Certificate; fingerprint: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new MaterialError('not a PEM X.509 certificate');
  }
  if (!cert.ca) throw new MaterialError('the certificate is not a CA (basicConstraints cA is not true)');
  return { cert, fingerprint: createHash('sha256').update(cert.raw).digest('hex') };
}

export function parsePublisherKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new MaterialError('not a PEM public key');
  }
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  if (t === 'ec' && (d?.namedCurve === 'prime256v1' || d?.namedCurve === 'secp384r1')) return key;
  if (t === 'ed25519') return key;
  if (t === 'rsa' && (d?.modulusLength ?? 0) >= 2048) return key;
  throw new MaterialError(`unsupported publisher key (${t}${d?.namedCurve ? ' ' + d.namedCurve : ''}${d?.modulusLength ? ' ' + d.modulusLength : ''}); use EC P-256/P-384, Ed25519 or RSA ≥ 2048`);
}
