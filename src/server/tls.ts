/**
 * The broker's TLS: TLS 1.3, and TLS 1.2 only with ECDHE key exchange and AEAD ciphers (no CBC,
 * no SHA-1 MACs, no static-RSA or DHE key exchange, no CCM_8). The certificate and key are read
 * and checked before use (both parse, the key matches the leaf, the leaf is within its validity),
 * so a reload with a bad pair is refused and the pair in force stays.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

/** TLS 1.3 suites (all AEAD; CCM_8 left out) then the TLS 1.2 ECDHE-AEAD suites, strongest first. */
export const TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export const TLS_PROTOCOL = { minVersion: 'TLSv1.2', ciphers: TLS_CIPHERS, honorCipherOrder: true } as const satisfies SecureContextOptions;

export class TlsMaterialError extends Error {
  override readonly name = 'TlsMaterialError';
}

export interface TlsFiles {
  cert: string;
  key: string;
}

/** Reads the pair and checks it; throws TlsMaterialError naming the file and what is wrong. */
export function loadTlsMaterial(files: TlsFiles, now: Date = new Date()): { cert: Buffer; key: Buffer; notAfter: Date } {
  const read = (file: string) => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new TlsMaterialError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const cert = read(files.cert);
  const key = read(files.key);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (e) {
    throw new TlsMaterialError(`${files.cert}: not a PEM certificate (${(e as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new TlsMaterialError(`${files.key}: not an unencrypted PEM private key (${(e as Error).message})`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new TlsMaterialError(`${files.key} does not belong to the certificate in ${files.cert}`);
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now < notBefore || now > notAfter) {
    throw new TlsMaterialError(`${files.cert} is valid from ${notBefore.toISOString()} to ${notAfter.toISOString()}, not now`);
  }
  return { cert, key, notAfter };
}

/**
 * The options of a secure context for `files`, checked, and also built once (which catches what
 * OpenSSL alone refuses), so that `server.setSecureContext` with them cannot fail half-way.
 */
export function secureContextOptions(files: TlsFiles, extra: SecureContextOptions = {}, now?: Date): { options: SecureContextOptions; notAfter: Date } {
  const { cert, key, notAfter } = loadTlsMaterial(files, now);
  const options: SecureContextOptions = { ...TLS_PROTOCOL, ...extra, cert, key };
  try {
    createSecureContext(options);
  } catch (e) {
    throw new TlsMaterialError(`${files.cert}: ${(e as Error).message}`);
  }
  return { options, notAfter };
}
