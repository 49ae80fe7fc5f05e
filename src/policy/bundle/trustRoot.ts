/**
 * A trust root: the public keys that control policy bundles and how many of them must sign
 * (k of n). As in TUF, two roles:
 *
 * - the root keys (kept offline) change the root: a bundle that carries a different root must be
 *   signed by the threshold of the old root keys and of the new ones, and raise the root version
 *   by exactly one;
 * - the signers (online keys the root certifies), when the root names them, sign ordinary bundles;
 *   a root without signers signs its bundles with the root keys themselves.
 *
 * The first root is pinned in the broker's config, out of band (version 1, no signers); bundles
 * carry the later ones. Roots travel as plain data (base64 SPKI DER sorted by key id) so that the
 * canonical form, and so the digest, is the same wherever it is computed.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { canonicalJson, RootSchema, sha256Hex, type RootData } from './manifest.js';
import { keyId, policyPublicKey, SigningKeyError } from './signingKeys.js';

export interface KeySet {
  keys: ReadonlyMap<string, KeyObject>;
  threshold: number;
}

export interface TrustRoot extends KeySet {
  version: number;
  /** Who signs ordinary bundles: the signers when the root names them, else the root keys. */
  bundleSigners: KeySet;
  /** The root as RootData, canonical: what is stored and compared. */
  data: RootData;
  /** sha256 of the canonical form. */
  id: string;
}

export class RootError extends Error {}

function parsePems(pems: ReadonlyArray<string | Buffer>, what: string): KeyObject[] {
  return pems.map((pem, i) => {
    try {
      return policyPublicKey(pem);
    } catch (e) {
      throw new RootError(`${what} ${i + 1}: ${(e as SigningKeyError).message}`);
    }
  });
}

const spkiSorted = (keys: KeyObject[]): string[] =>
  [...new Map(keys.map((k) => [keyId(k), k.export({ type: 'spki', format: 'der' }).toString('base64')])).entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, der]) => der);

/** A root from PEM public keys: the config's pinned root (version 1), or a new one for a rotation. */
export function rootFromPems(
  pems: ReadonlyArray<string | Buffer>,
  threshold: number,
  o: { version?: number; signers?: { pems: ReadonlyArray<string | Buffer>; threshold: number } } = {},
): RootData {
  return {
    version: o.version ?? 1,
    keys: spkiSorted(parsePems(pems, 'root key')),
    threshold,
    ...(o.signers ? { signers: { keys: spkiSorted(parsePems(o.signers.pems, 'signer key')), threshold: o.signers.threshold } } : {}),
  };
}

function keySet(set: { keys: string[]; threshold: number }, what: string): KeySet {
  const keys = new Map<string, KeyObject>();
  for (const [i, der] of set.keys.entries()) {
    let key: KeyObject;
    try {
      key = policyPublicKey(createPublicKey({ key: Buffer.from(der, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }));
    } catch (e) {
      throw new RootError(`${what} ${i + 1}: ${e instanceof SigningKeyError ? e.message : 'not a SubjectPublicKeyInfo'}`);
    }
    keys.set(keyId(key), key);
  }
  if (keys.size !== set.keys.length) throw new RootError(`${what}s: the same key is listed twice (it would count twice toward the threshold)`);
  if (set.threshold > keys.size) throw new RootError(`${what}s: threshold ${set.threshold} is more than its ${keys.size} key(s)`);
  return { keys, threshold: set.threshold };
}

/** A usable root: every key valid, no key counted twice, thresholds the keys can reach, canonical. */
export function trustRoot(data: RootData): TrustRoot {
  const parsed = RootSchema.safeParse(data);
  if (!parsed.success) throw new RootError(`root: ${parsed.error.issues[0]!.message}`);
  const root = keySet(data, 'root key');
  const signers = data.signers ? keySet(data.signers, 'signer key') : undefined;
  const canonical: RootData = {
    version: data.version,
    keys: spkiSorted([...root.keys.values()]),
    threshold: data.threshold,
    ...(signers ? { signers: { keys: spkiSorted([...signers.keys.values()]), threshold: signers.threshold } } : {}),
  };
  if (canonicalJson(canonical) !== canonicalJson(data)) throw new RootError('root: keys must be sorted by key id');
  return { ...root, version: data.version, bundleSigners: signers ?? root, data: canonical, id: sha256Hex(canonicalJson(canonical)) };
}

/** Two roots that differ only in their version are still different roots (a rotation). */
export const sameRoot = (a: RootData, b: RootData): boolean => canonicalJson(a) === canonicalJson(b);
