import { createPublicKey, type KeyObject } from 'node:crypto';
import { BrokerError } from '../errors.js';
import type { RecipientJwk } from '../protocol.js';

export const MIN_RSA_BITS = 2048;

/** Imports the agent's ephemeral public key for encryption; rejects weak or odd keys. */
export async function importRecipient(jwk: RecipientJwk): Promise<KeyObject> {
  if (jwk.kty === 'RSA') {
    const bits = Buffer.from(jwk.n, 'base64url').length * 8;
    if (bits < MIN_RSA_BITS) throw new BrokerError('evidence_malformed', `recipient RSA key has ${bits} bits`);
  }
  try {
    // Node's own JWK import: a public key only (the schema already refused private members).
    const { kty, crv, x, y, n, e } = jwk as { kty: string; crv?: string; x?: string; y?: string; n?: string; e?: string };
    return createPublicKey({ key: kty === 'EC' ? { kty, crv, x, y } : { kty, n, e }, format: 'jwk' });
  } catch (e) {
    if (e instanceof BrokerError) throw e;
    throw new BrokerError('evidence_malformed', 'recipient key cannot be imported', { cause: e });
  }
}

export const jweAlgFor = (jwk: RecipientJwk): 'ECDH-ES+A256KW' | 'RSA-OAEP-256' =>
  jwk.kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
