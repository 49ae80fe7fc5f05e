/**
 * Which publishers vouch for the measured workload: each signature the agent sent is checked
 * against the publishers that could have made it, as the policy index names them — every
 * bare-key publisher, and the certificate publishers whose CA the signature's path leads to.
 * The result feeds the pure policy decision.
 */
import { createHash } from 'node:crypto';
import { Lru } from '../lru.js';
import { verifyBinarySignature, verifyImageSignature } from '../measurement/index.js';
import { indexOf } from '../policy/policyIndex.js';
import type { Policy, Publisher } from '../policy/types.js';
import type { EvidencePayload } from '../protocol.js';

export interface SignedBy {
  binary: Set<string>;
  image: Set<string>;
}

/**
 * Which bare-key publishers a signature verifies under, per policy and per (artifact, signature).
 * A bare key's verdict never changes (no certificate, no time), and every node starting the same
 * release presents the same signature, so the key publishers are tried once per signature and
 * the answer — failures included, so it is exact — is kept in a bounded LRU.
 */
const keyVerdicts = new WeakMap<Policy, Lru<string, string[]>>();

function keyPublishersVerifying(policy: Policy, cacheKey: string, verifies: (pub: Publisher) => boolean): string[] {
  let lru = keyVerdicts.get(policy);
  if (!lru) keyVerdicts.set(policy, (lru = new Lru(4096)));
  let names = lru.get(cacheKey);
  if (!names) lru.set(cacheKey, (names = indexOf(policy).keyPublishers.filter(verifies).map((p) => p.name)));
  return names;
}

export function publishersVouching(policy: Policy, workload: EvidencePayload['workload'], now: number, onReject: (why: string) => void): SignedBy {
  const out: SignedBy = { binary: new Set(), image: new Set() };
  const index = indexOf(policy);
  const { sha256 } = workload.binary;
  for (const [i, s] of workload.binary.signatures.entries()) {
    const sig = Buffer.from(s.sig, 'base64url');
    const check = (pub: Publisher) =>
      verifyBinarySignature(pub, sha256, sig, s.x5c, now, (why) => onReject(`binary signature ${i} vs publisher ${pub.name}: ${why}`));
    for (const name of keyPublishersVerifying(policy, `b:${sha256}:${s.sig}`, check)) out.binary.add(name);
    for (const pub of index.caPublishersFor(s.x5c)) if (!out.binary.has(pub.name) && check(pub)) out.binary.add(pub.name);
  }
  const image = workload.image;
  if (!image) return out;
  for (const [i, s] of image.signatures.entries()) {
    const payload = Buffer.from(s.payload, 'base64url');
    const sig = Buffer.from(s.sig, 'base64url');
    const check = (pub: Publisher) =>
      verifyImageSignature(pub, image.digest, payload, sig, s.x5c, now, (why) => onReject(`image signature ${i} vs publisher ${pub.name}: ${why}`));
    const payloadId = createHash('sha256').update(payload).digest('base64url');
    for (const name of keyPublishersVerifying(policy, `i:${image.digest}:${payloadId}:${s.sig}`, check)) out.image.add(name);
    for (const pub of index.caPublishersFor(s.x5c)) if (!out.image.has(pub.name) && check(pub)) out.image.add(pub.name);
  }
  return out;
}
