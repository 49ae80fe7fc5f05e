/**
 * A trust root: the public keys that may sign policy bundles and how many of them must (k of n).
 * The first root is pinned in the broker's config, out of band; a bundle may carry the next one
 * (rotation). Roots travel as plain data (base64 SPKI DER, sorted) so that the canonical form,
 * and so its digest, is the same wherever it is computed.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { canonicalJson, RootSchema, sha256Hex, type RootData } from './manifest.js';
import { keyId, policyPublicKey, SigningKeyError } from './signingKeys.js';

export interface TrustRoot {
  keys: ReadonlyMap<string, KeyObject>;
  threshold: number;
  /** The root as RootData, canonical: what is stored and compared. */
  data: RootData;
  /** sha256 of the canonical form. */
  id: string;
}

export class RootError extends Error {}

export function rootFromPems(pems: ReadonlyArray<string | Buffer>, threshold: number): RootData {
  const keys = pems.map((pem, i) => {
    try {
      return policyPublicKey(pem);
    } catch (e) {
      throw new RootError(`root key ${i + 1}: ${(e as SigningKeyError).message}`);
    }
  });
  return normalise(keys, threshold);
}

function normalise(keys: KeyObject[], threshold: number): RootData {
  const byId = new Map(keys.map((k) => [keyId(k), k.export({ type: 'spki', format: 'der' }).toString('base64')]));
  return { keys: [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, der]) => der), threshold };
}

/** A usable root: every key valid, no key counted twice, a threshold the keys can reach. */
export function trustRoot(data: RootData): TrustRoot {
  const parsed = RootSchema.safeParse(data);
  if (!parsed.success) throw new RootError(`root: ${parsed.error.issues[0]!.message}`);
  const keys = new Map<string, KeyObject>();
  for (const [i, der] of data.keys.entries()) {
    let key: KeyObject;
    try {
      key = policyPublicKey(createPublicKey({ key: Buffer.from(der, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }));
    } catch (e) {
      throw new RootError(`root key ${i + 1}: ${e instanceof SigningKeyError ? e.message : 'not a SubjectPublicKeyInfo'}`);
    }
    keys.set(keyId(key), key);
  }
  if (keys.size !== data.keys.length) throw new RootError('root: the same key is listed twice (it would count twice toward the threshold)');
  if (data.threshold > keys.size) throw new RootError(`root: threshold ${data.threshold} is more than its ${keys.size} key(s)`);
  const canonical = normalise([...keys.values()], data.threshold);
  if (canonicalJson(canonical) !== canonicalJson(data)) throw new RootError('root: keys must be sorted by key id');
  return { keys, threshold: data.threshold, data: canonical, id: sha256Hex(canonicalJson(canonical)) };
}
