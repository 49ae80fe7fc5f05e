/**
 * The attested release, top to bottom. Each step either passes or throws a BrokerError with its
 * own code; nothing is released unless every step passed.
 *
 *   1. parse      size and shape of the evidence (strict schema, allow-listed algorithms)
 *   2. nonce      consume it atomically: one attempt per nonce, success or not
 *   3. signature  the JWS verifies under the leaf certificate's key
 *   4. node       the chain leads to a node CA the policy trusts
 *   5. time       the evidence was issued within the allowed clock skew
 *   6. software   the binary (and image) are approved: pinned digest or publisher signature
 *   7. grant      the approved software may receive every requested key on this node
 *   8. release    each key is re-encrypted by custody to the agent's ephemeral key
 */
import type { Clock } from './clock.js';
import { parseEvidence, verifyEvidenceSignature } from './attestation/evidence.js';
import { parseChain, verifyNodeChain } from './attestation/nodeChain.js';
import type { NonceService } from './attestation/nonces.js';
import { publishersVouching } from './attestation/workload.js';
import { BrokerError } from './errors.js';
import type { KeyService } from './keys/keyService.js';
import { evaluate } from './policy/evaluate.js';
import type { PolicySnapshot } from './policy/runtime.js';
import type { ReleasedKey } from './protocol.js';

export interface ReleaseDeps {
  nonces: NonceService;
  /** The policy in force; throws policy_expired when its bundle has expired. */
  policy: () => PolicySnapshot;
  keys: KeyService;
  clock: Clock;
  maxClockSkewMs: number;
}

/** What the audit log records about one attempt, filled in as the steps pass. */
export type Trail = Record<string, unknown> & { rejected?: string[] };

export async function attestAndRelease(deps: ReleaseDeps, evidence: unknown, trail: Trail): Promise<ReleasedKey[]> {
  // One policy version decides this request from start to end, whatever a reload does meanwhile.
  const { policy, version, manifestSha256 } = deps.policy();
  trail.policy = { version, manifestSha256 };
  const ev = parseEvidence(evidence); // 1
  const { payload } = ev;
  trail.workload = {
    path: payload.workload.binary.path,
    sha256: payload.workload.binary.sha256,
    image: payload.workload.image ? { ref: payload.workload.image.ref, digest: payload.workload.image.digest } : undefined,
  };
  trail.requested = payload.keys;

  await deps.nonces.consume(payload.nonce); // 2

  const chain = parseChain(ev.header.x5c);
  await verifyEvidenceSignature(ev, chain[0]!); // 3

  const now = deps.clock.now();
  const node = verifyNodeChain(chain, policy.nodeCAs, now); // 4
  trail.node = node;

  const skewMs = Math.abs(now - payload.iat * 1000); // 5
  if (skewMs > deps.maxClockSkewMs) throw new BrokerError('clock_skew', `evidence iat is ${Math.round(skewMs / 1000)} s from broker time`);

  const rejected: string[] = (trail.rejected = []);
  const signedBy = publishersVouching(policy, payload.workload, now, (why) => rejected.push(why)); // 6
  const decision = evaluate(policy, {
    node,
    binary: { sha256: payload.workload.binary.sha256, publishers: signedBy.binary },
    ...(payload.workload.image ? { image: { digest: payload.workload.image.digest, publishers: signedBy.image } } : {}),
    keys: payload.keys,
  });
  trail.zones = decision.zones;
  trail.software = decision.software;
  if (!decision.allow) throw new BrokerError(decision.code, decision.reason); // 6, 7

  const released = await Promise.all(decision.keys.map((k) => deps.keys.releaseTo(k.name, k.version, payload.cnf.jwk))); // 8
  trail.released = released.map((k) => `${k.name}@${k.version}`);
  return released;
}
