/**
 * Certificate publishers. The agent sends the signing certificate and any intermediates (`x5c`,
 * standard base64 DER, leaf first); the broker checks the path up to the publisher's CA and
 * returns the signing certificate's public key. node:crypto checks the signatures and issuer
 * names; @peculiar/x509 reads dates and extensions. There is no path building: the order given
 * is the path, so a wrong order is refused.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { Publisher } from '../policy/types.js';
import { reject } from './verdict.js';

export type CaPublisher = Extract<Publisher, { kind: 'ca' }>;

/** Certificates in a path, the publisher CA included. */
export const MAX_PATH_LENGTH = 5;
const MAX_CERT_BASE64_CHARS = 16_384;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  codeSigning: '1.3.6.1.5.5.7.3.3',
} as const;
/** A certificate with any other critical extension is refused (RFC 5280 §4.2). */
const UNDERSTOOD_CRITICAL: ReadonlySet<string> = new Set([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
]);
const ACCEPTED_SIGNATURE_HASHES: ReadonlySet<string> = new Set(['SHA-256', 'SHA-384', 'SHA-512']);

interface Cert {
  readonly label: string;
  readonly node: X509Certificate;
  readonly parsed: x509.X509Certificate;
}

/** The public key of the signing certificate, once the whole path to `pub.ca` checks out. */
export function signingCertificateKey(pub: CaPublisher, x5c: readonly string[] | undefined, now: number): KeyObject {
  if (!Number.isFinite(now)) reject('verification time is not a finite number');
  const anchor = certFromDer(pub.ca.raw, 'publisher CA');
  const path = decodeX5c(x5c, anchor);
  const leaf = path[0] as Cert;

  // Each certificate on its own first (the clearer reason), then the links between them.
  for (const cert of [...path, anchor]) checkUsableAt(cert, now);
  checkCodeSigning(leaf);
  path.slice(1).forEach((cert, below) => checkCa(cert, below));
  checkCa(anchor, path.length - 1);
  path.forEach((cert, i) => checkIssuedBy(cert, path[i + 1] ?? anchor));
  if (pub.subjects !== undefined && !pub.subjects.includes(leaf.node.subject)) {
    reject(`signing certificate subject ${JSON.stringify(leaf.node.subject)} is not one of the publisher's subjects`);
  }
  return leaf.node.publicKey;
}

function decodeX5c(x5c: readonly string[] | undefined, anchor: Cert): Cert[] {
  if (!Array.isArray(x5c) || x5c.length === 0) reject('certificate publisher: no x5c');
  if (x5c.length > MAX_PATH_LENGTH) reject(`x5c has ${x5c.length} certificates, at most ${MAX_PATH_LENGTH} allowed`);
  const certs = x5c.map((entry, i) => certFromDer(base64Der(entry, i), i === 0 ? 'signing certificate' : `intermediate ${i}`));
  // Tolerate an agent that appends the CA itself; it adds nothing.
  if ((certs[certs.length - 1] as Cert).node.raw.equals(anchor.node.raw)) {
    if (certs.length === 1) reject('x5c holds only the publisher CA');
    certs.pop();
  }
  if (certs.length + 1 > MAX_PATH_LENGTH) reject(`certificate path longer than ${MAX_PATH_LENGTH}`);
  return certs;
}

function base64Der(entry: unknown, i: number): Buffer {
  if (typeof entry !== 'string' || entry.length > MAX_CERT_BASE64_CHARS || !BASE64.test(entry)) {
    reject(`x5c[${i}] is not standard base64`);
  }
  const der = Buffer.from(entry, 'base64');
  if (der.toString('base64') !== entry) reject(`x5c[${i}] is not canonical base64`);
  return der;
}

function certFromDer(der: Buffer, label: string): Cert {
  let cert: Cert;
  try {
    cert = { label, node: new X509Certificate(der), parsed: new x509.X509Certificate(new Uint8Array(der)) };
  } catch {
    return reject(`${label} is not a DER X.509 certificate`);
  }
  // Both parsers also take PEM (and ignore what follows the certificate); only exact DER is accepted.
  if (!cert.node.raw.equals(der)) reject(`${label} is not a DER X.509 certificate`);
  return cert;
}

function checkIssuedBy(cert: Cert, issuer: Cert): void {
  if (!cert.node.checkIssued(issuer.node)) reject(`${cert.label} was not issued by ${issuer.label} (names or key ids differ)`);
  if (!cert.node.verify(issuer.node.publicKey)) reject(`${cert.label} signature does not verify with ${issuer.label}'s key`);
  // A WebCrypto algorithm: { name: 'ECDSA', hash: { name: 'SHA-256' } }, { name: 'Ed25519' }, ...
  let alg: { name?: unknown; hash?: { name?: unknown } };
  try {
    alg = cert.parsed.signatureAlgorithm as typeof alg;
  } catch {
    return reject(`${cert.label} is signed with an unsupported algorithm`);
  }
  const hash = String(alg.hash?.name ?? '');
  if (alg.name !== 'Ed25519' && !ACCEPTED_SIGNATURE_HASHES.has(hash)) {
    reject(`${cert.label} is signed with ${String(alg.name)}/${hash || '?'}, SHA-256 or stronger required`);
  }
}

function checkUsableAt(cert: Cert, now: number): void {
  const { notBefore, notAfter, extensions } = cert.parsed;
  if (now < notBefore.getTime()) reject(`${cert.label} is not valid before ${notBefore.toISOString()}`);
  if (now > notAfter.getTime()) reject(`${cert.label} expired at ${notAfter.toISOString()}`);
  const seen = new Set<string>();
  for (const ext of extensions) {
    if (seen.has(ext.type)) reject(`${cert.label} repeats extension ${ext.type}`);
    seen.add(ext.type);
    if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) reject(`${cert.label} has unknown critical extension ${ext.type}`);
  }
}

/** A CA certificate with `below` intermediates under it in this path. */
function checkCa(cert: Cert, below: number): void {
  const bc = cert.parsed.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) reject(`${cert.label} is not a CA (basicConstraints cA is not true)`);
  if (bc.pathLength !== undefined && below > bc.pathLength) {
    reject(`${cert.label} allows ${bc.pathLength} intermediates below it, the path has ${below}`);
  }
  const ku = cert.parsed.getExtension(x509.KeyUsagesExtension);
  if (ku && !(ku.usages & x509.KeyUsageFlags.keyCertSign)) reject(`${cert.label} keyUsage lacks keyCertSign`);
}

function checkCodeSigning(leaf: Cert): void {
  if (leaf.parsed.getExtension(x509.BasicConstraintsExtension)?.ca) reject('signing certificate is a CA certificate');
  const eku = leaf.parsed.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku?.usages.some((u) => String(u) === OID.codeSigning)) reject('signing certificate lacks extendedKeyUsage codeSigning');
  const ku = leaf.parsed.getExtension(x509.KeyUsagesExtension);
  if (ku && !(ku.usages & x509.KeyUsageFlags.digitalSignature)) reject('signing certificate keyUsage lacks digitalSignature');
}
