/** Turns policy `certificate` / `publicKey` material into parsed objects, or a problem message. */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { lstatSync } from 'node:fs';
import path from 'node:path';
import { POLICY_LIMITS, readRegularFile, ReadRefusal, type PolicyTree } from './files.js';

export interface MaterialContext {
  /** The policy directory and its files, already read (relative `file:` paths resolve against it). */
  tree: Pick<PolicyTree, 'dir' | 'files'>;
  /** Variables usable as ${name} in file paths, e.g. stateDir. */
  vars: Readonly<Record<string, string>>;
  /** A signed bundle covers only the files inside the directory: nothing outside may be read. */
  insideOnly: boolean;
}

export class MaterialError extends Error {}

const text = new TextDecoder('utf-8', { fatal: true });

/**
 * The PEM text of `m`: inline, a file of the policy directory (the bytes already read and, for a
 * bundle, hashed), or — for unsigned policies only — a regular file elsewhere, read bounded.
 */
export function readMaterial(m: { file?: string; pem?: string }, ctx: MaterialContext): string {
  if (m.pem !== undefined) return m.pem;
  const expanded = m.file!.replace(/\$\{([A-Za-z]+)\}/g, (_, v: string) => {
    const val = ctx.vars[v];
    if (val === undefined) throw new MaterialError(`unknown variable \${${v}} (known: ${Object.keys(ctx.vars).join(', ') || 'none'})`);
    return val;
  });
  const file = path.resolve(ctx.tree.dir, expanded);
  const rel = path.relative(ctx.tree.dir, file);
  let bytes: Buffer | undefined;
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) {
    bytes = ctx.tree.files.get(rel.split(path.sep).join('/'));
    if (!bytes) throw new MaterialError(missingInside(file, rel));
  } else if (ctx.insideOnly) {
    throw new MaterialError(`${file} is outside the policy directory; a signed policy may only use files inside it`);
  } else {
    try {
      bytes = readRegularFile(file, POLICY_LIMITS.maxMaterialBytes);
    } catch (e) {
      if (!(e instanceof ReadRefusal)) throw e;
      throw new MaterialError(e.message.startsWith('cannot read') ? e.message : `${file}: ${e.message}`);
    }
  }
  try {
    return text.decode(bytes);
  } catch {
    throw new MaterialError(`${file} is not UTF-8 text`);
  }
}

/** Why a path inside the policy directory is not among the files read from it. */
function missingInside(file: string, rel: string): string {
  if (rel.split(path.sep).some((seg) => seg.startsWith('.'))) return `${file} is hidden; names starting with "." are not part of the policy`;
  try {
    lstatSync(file);
  } catch (e) {
    return `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  return `${file} is not a regular file of the policy directory (see its own problem)`;
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

const SPKI_PEM = /^\s*-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/;

export function parsePublisherKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    // A plain SPKI PEM is decoded here: OpenSSL's generic PEM decoding costs twice as much.
    const spki = SPKI_PEM.exec(pem);
    key = spki ? createPublicKey({ key: Buffer.from(spki[1]!, 'base64'), format: 'der', type: 'spki' }) : createPublicKey(pem);
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
