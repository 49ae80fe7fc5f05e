/**
 * Opens released keys. Both forms are compact JWEs to the ephemeral recipient key, decrypted
 * by src/jose (synchronous node:crypto, strict headers: allow-listed alg, enc A256GCM, no crit,
 * no zip, no duplicate members):
 * - `plaintext`: the JWE plaintext is the key; the protected header `kid` must be name@version.
 * - `cek` (RSA recipients only): the key *is* the content-encryption key, unwrapped with RSA-OAEP;
 *   the JWE must authenticate under it and its plaintext must be exactly the kid name@version.
 * Every check failure is `release_invalid`; nothing about the key bytes is ever reported.
 */
import { timingSafeEqual } from 'node:crypto';
import { compactDecrypt, isJoseError, type DecryptedJwe } from '../../src/jose/index.js';
import { releaseKid, type ReleasedKey } from '../../src/protocol.js';
import { AgentError } from './errors.js';
import type { KeyRequest } from './evidence.js';
import { SUPPORTED_RECIPIENTS, type Recipient } from './recipient.js';

const invalid = (name: string, why: string, cause?: unknown) =>
  new AgentError('release_invalid', `released key ${name}: ${why}`, cause === undefined ? {} : { cause });

function decrypt(released: ReleasedKey, recipient: Recipient): DecryptedJwe {
  try {
    return compactDecrypt(released.jwe, recipient.decryptionKey, { algorithms: SUPPORTED_RECIPIENTS[recipient.type] });
  } catch (err) {
    if (isJoseError(err) && err.code === 'ERR_JOSE_NOT_ALLOWED') throw invalid(released.name, `unexpected alg or enc (${err.message})`, err);
    throw invalid(released.name, `JWE does not decrypt (${(err as Error).message})`, err);
  }
}

export async function openReleasedKey(released: ReleasedKey, recipient: Recipient): Promise<Buffer> {
  const kid = releaseKid(released.name, released.version);
  if (released.form === 'cek' && recipient.type !== 'RSA') throw invalid(released.name, 'cek form needs an RSA recipient');
  const { header, plaintext, cek } = decrypt(released, recipient);
  const kidOk = released.form === 'plaintext' ? header.kid === kid : header.kid === undefined || header.kid === kid;
  if (released.form === 'plaintext') {
    cek.fill(0);
    if (!kidOk) {
      plaintext.fill(0);
      throw invalid(released.name, 'header kid must be name@version');
    }
    return plaintext;
  }
  const expected = Buffer.from(kid, 'utf8');
  const authenticated = kidOk && plaintext.length === expected.length && timingSafeEqual(plaintext, expected);
  if (!authenticated) {
    cek.fill(0);
    throw invalid(released.name, 'JWE does not authenticate to name@version');
  }
  return cek;
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
