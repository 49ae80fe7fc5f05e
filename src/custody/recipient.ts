import { importJWK, type CryptoKey, type KeyObject } from 'jose';
import { BrokerError } from '../errors.js';
import type { RecipientJwk } from '../protocol.js';

export const MIN_RSA_BITS = 2048;

/** Imports the agent's ephemeral public key for encryption; rejects weak or odd keys. */
export async function importRecipient(jwk: RecipientJwk, alg: string): Promise<CryptoKey | KeyObject> {
  if (jwk.kty === 'RSA') {
    const bits = Buffer.from(jwk.n, 'base64url').length * 8;
    if (bits < MIN_RSA_BITS) throw new BrokerError('evidence_malformed', `recipient RSA key has ${bits} bits`);
  }
  try {
    const key = await importJWK({ ...jwk }, alg);
    if (key instanceof Uint8Array) throw new Error('symmetric key');
    return key;
  } catch (e) {
    if (e instanceof BrokerError) throw e;
    throw new BrokerError('evidence_malformed', 'recipient key cannot be imported', { cause: e });
  }
}

export const jweAlgFor = (jwk: RecipientJwk): 'ECDH-ES+A256KW' | 'RSA-OAEP-256' =>
  jwk.kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
