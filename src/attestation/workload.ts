/**
 * Which publishers vouch for the measured workload: every signature the agent sent is checked
 * against every publisher in the policy. The result feeds the pure policy decision.
 */
import { verifyBinarySignature, verifyImageSignature } from '../measurement/index.js';
import type { EvidencePayload } from '../protocol.js';
import type { Policy } from '../policy/types.js';

export interface SignedBy {
  binary: Set<string>;
  image: Set<string>;
}

export function publishersVouching(policy: Policy, workload: EvidencePayload['workload'], now: number, onReject: (why: string) => void): SignedBy {
  const out: SignedBy = { binary: new Set(), image: new Set() };
  for (const pub of policy.publishers.values()) {
    for (const [i, s] of workload.binary.signatures.entries()) {
      const ok = verifyBinarySignature(pub, workload.binary.sha256, Buffer.from(s.sig, 'base64url'), s.x5c, now, (why) =>
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
