/**
 * Opens released keys. Both forms are compact JWEs to the ephemeral recipient key:
 * - `plaintext`: the JWE plaintext is the key; the protected header `kid` must be name@version.
 * - `cek` (RSA recipients only): the key *is* the content-encryption key. The agent unwraps the
 *   JWE encrypted key with RSA-OAEP itself, then has jose decrypt the whole JWE to prove it
 *   authenticates under that key and that its plaintext is exactly the kid name@version.
 * Every check failure is `release_invalid`; nothing about the key bytes is ever reported.
 */
import { constants, privateDecrypt, timingSafeEqual } from 'node:crypto';
import { compactDecrypt, decodeProtectedHeader } from 'jose';
import { RELEASE_ENC, releaseKid, type ReleasedKey } from '../../src/protocol.js';
import { AgentError } from './errors.js';
import type { KeyRequest } from './evidence.js';
import { SUPPORTED_RECIPIENTS, type Recipient } from './recipient.js';

const invalid = (name: string, why: string, cause?: unknown) =>
  new AgentError('release_invalid', `released key ${name}: ${why}`, cause === undefined ? {} : { cause });

const AES256_KEY_BYTES = 32;

export async function openReleasedKey(released: ReleasedKey, recipient: Recipient): Promise<Buffer> {
  const kid = releaseKid(released.name, released.version);
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(released.jwe);
  } catch (err) {
    throw invalid(released.name, 'JWE header does not parse', err);
  }
  const allowed = SUPPORTED_RECIPIENTS[recipient.type];
  if (typeof header.alg !== 'string' || !allowed.includes(header.alg)) throw invalid(released.name, `unexpected alg ${String(header.alg)}`);
  if (header.enc !== RELEASE_ENC) throw invalid(released.name, `unexpected enc ${String(header.enc)}`);
  if (header.kid !== undefined && header.kid !== kid) throw invalid(released.name, 'header kid does not match name@version');

  const options = { keyManagementAlgorithms: [header.alg], contentEncryptionAlgorithms: [RELEASE_ENC] };
  if (released.form === 'plaintext') {
    if (header.kid !== kid) throw invalid(released.name, 'header kid must be name@version');
    try {
      const { plaintext } = await compactDecrypt(released.jwe, recipient.privateKey, options);
      return Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
    } catch (err) {
      throw invalid(released.name, 'JWE does not decrypt', err);
    }
  }

  if (recipient.type !== 'RSA') throw invalid(released.name, 'cek form needs an RSA recipient');
  const parts = released.jwe.split('.');
  if (parts.length !== 5 || !parts[1]) throw invalid(released.name, 'not a compact JWE with an encrypted key');
  let key: Buffer;
  try {
    key = privateDecrypt(
      { key: recipient.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: header.alg === 'RSA-OAEP' ? 'sha1' : 'sha256' },
      Buffer.from(parts[1], 'base64url'),
    );
  } catch (err) {
    throw invalid(released.name, 'encrypted key does not unwrap', err);
  }
  if (key.length !== AES256_KEY_BYTES) {
    key.fill(0);
    throw invalid(released.name, `unwrapped key is ${key.length} bytes, expected ${AES256_KEY_BYTES}`);
  }
  try {
    const { plaintext } = await compactDecrypt(released.jwe, recipient.privateKey, options);
    const expected = Buffer.from(kid, 'utf8');
    if (plaintext.length !== expected.length || !timingSafeEqual(plaintext, expected)) throw new Error('kid mismatch');
  } catch (err) {
    key.fill(0);
    throw invalid(released.name, 'JWE does not authenticate to name@version', err);
  }
  return key;
}

/**
 * Opens every released key and checks the set is exactly what was asked: each requested name
 * once, at the requested version when one was given, nothing else.
 */
export async function openReleasedKeys(
  released: readonly ReleasedKey[],
  requested: readonly KeyRequest[],
  recipient: Recipient,
): Promise<{ keys: Map<string, Buffer>; versions: Map<string, number> }> {
  const wanted = new Map(requested.map((k) => [k.name, k.version]));
  const keys = new Map<string, Buffer>();
  const versions = new Map<string, number>();
  try {
    for (const r of released) {
      if (!wanted.has(r.name)) throw invalid(r.name, 'was not requested');
      if (keys.has(r.name)) throw invalid(r.name, 'released twice');
      const version = wanted.get(r.name);
      if (version !== undefined && version !== r.version) throw invalid(r.name, `version ${r.version}, asked for ${version}`);
      keys.set(r.name, await openReleasedKey(r, recipient));
      versions.set(r.name, r.version);
    }
    const missing = [...wanted.keys()].filter((n) => !keys.has(n));
    if (missing.length > 0) throw invalid(missing.join(', '), 'not released');
  } catch (err) {
    zeroKeys(keys);
    throw err;
  }
  return { keys, versions };
}

/** Overwrites key buffers in place. */
export function zeroKeys(keys: Iterable<Buffer> | Map<string, Buffer>): void {
  for (const k of keys instanceof Map ? keys.values() : keys) k.fill(0);
}
