/**
 * Small certificate factory on @peculiar/x509 and WebCrypto: the dev CA and server certificate,
 * the demo node credentials, and test fixtures. Keys are ECDSA P-256 unless asked otherwise.
 */
import { webcrypto, X509Certificate as NodeX509, createPrivateKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as never);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface Issued {
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
  /** PEM of the certificate. */
  certPem: string;
  /** PKCS#8 PEM of the private key. */
  keyPem: string;
}

export interface CertOptions {
  subject: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Subject alternative names. */
  dns?: string[];
  ips?: string[];
  uris?: string[];
  ca?: boolean;
  pathLength?: number;
  usages?: x509.KeyUsageFlags;
  eku?: string[];
}

const DAY = 86_400_000;

async function exportPkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

/** Issues a certificate signed by `issuer`, or self-signed when `issuer` is omitted. */
export async function issueCertificate(o: CertOptions, issuer?: Issued): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const names: x509.JsonGeneralName[] = [
    ...(o.dns ?? []).map((v) => ({ type: 'dns' as const, value: v })),
    ...(o.ips ?? []).map((v) => ({ type: 'ip' as const, value: v })),
    ...(o.uris ?? []).map((v) => ({ type: 'url' as const, value: v })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(o.ca === true, o.ca ? o.pathLength : undefined, true),
    new x509.KeyUsagesExtension(
      o.usages ?? (o.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature),
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  if (o.eku?.length) extensions.push(new x509.ExtendedKeyUsageExtension(o.eku));
  if (issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: o.subject,
    issuer: issuer ? issuer.cert.subject : o.subject,
    notBefore: o.notBefore ?? new Date(now - 60_000),
    notAfter: o.notAfter ?? new Date(now + (o.ca ? 3650 : 825) * DAY),
    signingAlgorithm: EC,
    publicKey: keys.publicKey,
    signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
    extensions,
  });
  return { cert, keys, certPem: cert.toString('pem') + '\n', keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** Base64 DER of each certificate, leaf first, as JWS `x5c` carries them. */
export const toX5c = (...certs: Array<Issued | x509.X509Certificate>): string[] =>
  certs.map((c) => Buffer.from(('cert' in c ? c.cert : c).rawData).toString('base64'));

export const nodeCert = (i: Issued): NodeX509 => new NodeX509(Buffer.from(i.cert.rawData));
export const privateKeyObject = (i: Issued): KeyObject => createPrivateKey(i.keyPem);

export const CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export { x509 };
