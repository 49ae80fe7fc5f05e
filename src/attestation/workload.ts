/**
 * Which publishers vouch for the measured workload: every signature the agent sent is checked
 * against every publisher in the policy. The result feeds the pure policy decision.
 */
import { verifyBinarySignature, verifyImageSignature } from '../measurement/index.js';
import type { EvidencePayload } from '../protocol.js';
import type { Policy, Publisher } from '../policy/types.js';
import { createHash, type KeyObject } from 'node:crypto';
import { Lru } from '../lru.js';

export interface SignedBy {
  binary: Set<string>;
  image: Set<string>;
}

/**
 * Signatures that verified under a bare-key publisher, by (key, digest, signature). Such a result
 * never changes (no certificate, no time), and every node starting the same release presents
 * the same signature, so it is verified once. Only successes are kept, in a bounded LRU;
 * certificate publishers are always verified afresh (their validity depends on time).
 */
const verified = new Lru<string, true>(4096);
const spkiIds = new WeakMap<KeyObject, string>();

function spkiId(key: KeyObject): string {
  let id = spkiIds.get(key);
  if (!id) spkiIds.set(key, (id = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')));
  return id;
}

function binarySignedBy(pub: Publisher, sha256: string, sig: string, x5c: string[] | undefined, now: number, onReject: (why: string) => void): boolean {
  const cacheKey = pub.kind === 'key' ? `${spkiId(pub.key)}:${sha256}:${sig}` : undefined;
  if (cacheKey && verified.get(cacheKey)) return true;
  const ok = verifyBinarySignature(pub, sha256, Buffer.from(sig, 'base64url'), x5c, now, onReject);
  if (ok && cacheKey) verified.set(cacheKey, true);
  return ok;
}

export function publishersVouching(policy: Policy, workload: EvidencePayload['workload'], now: number, onReject: (why: string) => void): SignedBy {
  const out: SignedBy = { binary: new Set(), image: new Set() };
  for (const pub of policy.publishers.values()) {
    for (const [i, s] of workload.binary.signatures.entries()) {
      const ok = binarySignedBy(pub, workload.binary.sha256, s.sig, s.x5c, now, (why) =>
        onReject(`binary signature ${i} vs publisher ${pub.name}: ${why}`),
      );
      if (ok) {
        out.binary.add(pub.name);
        break;
      }
    }
    const image = workload.image;
    if (!image) continue;
    for (const [i, s] of image.signatures.entries()) {
      const ok = verifyImageSignature(pub, image.digest, Buffer.from(s.payload, 'base64url'), Buffer.from(s.sig, 'base64url'), s.x5c, now, (why) =>
        onReject(`image signature ${i} vs publisher ${pub.name}: ${why}`),
      );
      if (ok) {
        out.image.add(pub.name);
        break;
      }
    }
  }
  return out;
}
