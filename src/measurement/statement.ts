/**
 * Statement signatures, for algorithms the broker cannot (Ed25519) or will not (RSA-PSS) verify
 * from a digest alone: the publisher signs the short ASCII statement naming the digest, and the
 * broker rebuilds it from what it measured.
 */
import { constants, verify } from 'node:crypto';
import { isSha256Hex } from './digest.js';
import type { SigningKey } from './publisherKey.js';
import { reject } from './verdict.js';

const STATEMENT_PREFIX = 'keyanchor.artifact.v1:sha256:';

/**
 * The exact bytes a publisher signs for an artifact: `keyanchor.artifact.v1:sha256:<hex>`,
 * ASCII, no newline. Throws a RangeError unless given 64 lowercase hex characters.
 */
export function artifactStatement(sha256Hex: string): Buffer {
  if (!isSha256Hex(sha256Hex)) throw new RangeError('artifactStatement expects 64 lowercase hex characters');
  return Buffer.from(STATEMENT_PREFIX + sha256Hex, 'ascii');
}

/** Ed25519 (RFC 8032, pure) or RSASSA-PSS with SHA-256/MGF1-SHA-256, any salt length. */
export function verifyStatement(
  key: Extract<SigningKey, { kind: 'ed25519' | 'rsa' }>,
  sha256Hex: string,
  sig: Uint8Array,
): void {
  const statement = artifactStatement(sha256Hex);
  const ok =
    key.kind === 'ed25519'
      ? verify(null, statement, key.key, sig)
      : verify(
          'sha256',
          statement,
          { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO },
          sig,
        );
  if (!ok) reject(`${key.kind === 'rsa' ? 'RSA-PSS' : 'Ed25519'} statement signature does not verify for the measured SHA-256`);
}
