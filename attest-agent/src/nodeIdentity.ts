/**
 * The node's signing identity: its certificate chain (→ JWS x5c) and PKCS#8 private key
 * (→ JWS alg). Checked locally before anything is sent, so that an expired certificate or a
 * mismatched key gives a clear local error instead of a terse broker refusal.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { EvidenceHeader } from '../../src/protocol.js';
import { AgentError } from './errors.js';
import { pemChainToX5c } from './signatures.js';

export type EvidenceAlg = EvidenceHeader['alg'];

export interface NodeIdentity {
  readonly alg: EvidenceAlg;
  readonly privateKey: KeyObject;
  /** Standard base64 DER, leaf first. */
  readonly x5c: string[];
  readonly leaf: X509Certificate;
}

const configError = (msg: string, cause?: unknown) =>
  new AgentError('config', msg, cause === undefined ? {} : { cause });

/** ES256 for P-256, ES384 for P-384, EdDSA for Ed25519, PS256 for RSA; nothing else. */
export function algForKey(key: KeyObject): EvidenceAlg {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'ec' && curve === 'prime256v1') return 'ES256';
  if (type === 'ec' && curve === 'secp384r1') return 'ES384';
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return 'PS256';
  throw configError(`unsupported node key type ${type}${curve ? ` (${curve})` : ''}; use EC P-256/P-384, Ed25519 or RSA ≥ 2048`);
}

export interface NodeIdentityPem { certPem: string; keyPem: string; now?: Date }

export function loadNodeIdentity({ certPem, keyPem, now = new Date() }: NodeIdentityPem): NodeIdentity {
  const x5c = pemChainToX5c(certPem, 'node certificate', configError);
  const leaf = new X509Certificate(Buffer.from(x5c[0]!, 'base64'));
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (err) {
    throw configError('node key is not an unencrypted PEM private key (PKCS#8)', err);
  }
  const alg = algForKey(privateKey);

  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (!(now >= notBefore && now <= notAfter)) {
    throw new AgentError(
      'node_cert_expired',
      `node certificate is valid from ${notBefore.toISOString()} to ${notAfter.toISOString()}, now is ${now.toISOString()}`,
    );
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new AgentError('node_key_mismatch', 'node key does not belong to the first certificate in --node-cert');
  }
  return Object.freeze({ alg, privateKey, x5c, leaf });
}

export async function readNodeIdentity(certFile: string, keyFile: string, now?: Date): Promise<NodeIdentity> {
  const read = (path: string, what: string) =>
    readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw configError(`cannot read ${what} ${path}: ${err.code ?? err.message}`, err);
    });
  const [certPem, keyPem] = await Promise.all([read(certFile, 'node certificate'), read(keyFile, 'node key')]);
  return loadNodeIdentity(now === undefined ? { certPem, keyPem } : { certPem, keyPem, now });
}
