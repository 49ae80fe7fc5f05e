/**
 * The ephemeral recipient key: generated fresh for every attestation, sent as `cnf.jwk`, and
 * used once to open the released keys. Its private half never leaves this process.
 *
 * EC keys are made with createECDH and their raw points (no KeyObject, no JWK export: Node
 * 20.20.2's generateKeyPairSync('ec') + JWK export deadlocks after ~10,000 rounds), which is also
 * what src/jose's ECDH-ES decryption takes. RSA keys (PKCS#11 custody) come from node:crypto.
 */
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { generateP256, pointJwk, type JweAlg, type JweDecryptionKey } from '../../src/jose/index.js';
import { RecipientJwkSchema, type RecipientJwk, type RecipientKeyType } from '../../src/protocol.js';
import { AgentError } from './errors.js';

const generate = promisify(generateKeyPair);

/** Key types this agent can receive to, and the JWE key management algorithms allowed for each. */
export const SUPPORTED_RECIPIENTS: Readonly<Record<RecipientKeyType, readonly JweAlg[]>> = {
  EC: ['ECDH-ES+A256KW'],
  RSA: ['RSA-OAEP-256', 'RSA-OAEP'],
};

export interface Recipient {
  readonly type: RecipientKeyType;
  /** What opens the released keys: the ECDH state or the RSA private key. */
  readonly decryptionKey: JweDecryptionKey;
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
  if (type === 'EC') {
    const { ecdh, point } = generateP256();
    const publicJwk = RecipientJwkSchema.parse({ ...pointJwk(point), alg: 'ECDH-ES+A256KW', use: 'enc' });
    return Object.freeze<Recipient>({ type, decryptionKey: { kty: 'EC', ecdh }, publicJwk });
  }
  // 2048 bits, the protocol's floor: this key lives for one request, and RSA key generation
  // dominates the agent's start with HSM custody (≈160 ms at 2048 bits against ≈450 ms at
  // 3072 on a 2-core VM; see docs/benchmarks.md).
  const { publicKey, privateKey } = await generate('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const jwk = publicKey.export({ format: 'jwk' });
  // The RSA form names no alg: the broker picks RSA-OAEP-256 (software) or RSA-OAEP (HSMs that
  // only do SHA-1 OAEP), and the agent accepts either.
  const publicJwk = RecipientJwkSchema.parse({ kty: 'RSA', n: jwk.n, e: jwk.e, use: 'enc' });
  return Object.freeze<Recipient>({ type, decryptionKey: { kty: 'RSA', key: privateKey }, publicJwk });
}
