/**
 * The ephemeral recipient key: generated fresh for every attestation, sent as `cnf.jwk`, and
 * used once to open the released keys. Its private half never leaves this process.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { RecipientJwkSchema, type RecipientJwk, type RecipientKeyType } from '../../src/protocol.js';
import { AgentError } from './errors.js';

const generate = promisify(generateKeyPair);

/** Key types this agent can receive to, and the JWE key management algorithms allowed for each. */
export const SUPPORTED_RECIPIENTS: Readonly<Record<RecipientKeyType, readonly string[]>> = {
  EC: ['ECDH-ES+A256KW'],
  RSA: ['RSA-OAEP-256', 'RSA-OAEP'],
};

export interface Recipient {
  readonly type: RecipientKeyType;
  readonly privateKey: KeyObject;
  readonly publicJwk: RecipientJwk;
}

/** The first type in the broker's preference list that the agent supports. */
export function chooseRecipientType(offered: readonly string[]): RecipientKeyType {
  const type = offered.find((t): t is RecipientKeyType => Object.hasOwn(SUPPORTED_RECIPIENTS, t));
  if (!type) {
    throw new AgentError('recipient_unsupported', `broker offers recipient key types [${offered.join(', ')}], agent supports EC, RSA`);
  }
  return type;
}

export async function createRecipient(type: RecipientKeyType): Promise<Recipient> {
  const { publicKey, privateKey } = type === 'EC'
    ? await generate('ec', { namedCurve: 'P-256' })
    : // 2048 bits, the protocol's floor: this key lives for one request, and RSA key generation
      // dominates the agent's start with HSM custody (≈160 ms at 2048 bits against ≈450 ms at
      // 3072 on a 2-core VM; see docs/benchmarks.md).
      await generate('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const jwk = publicKey.export({ format: 'jwk' });
  // The RSA form names no alg: the broker picks RSA-OAEP-256 (software) or RSA-OAEP (HSMs that
  // only do SHA-1 OAEP), and the agent accepts either.
  const publicJwk = RecipientJwkSchema.parse(
    type === 'EC'
      ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y, alg: 'ECDH-ES+A256KW', use: 'enc' }
      : { kty: 'RSA', n: jwk.n, e: jwk.e, use: 'enc' },
  );
  return Object.freeze({ type, privateKey, publicJwk });
}
