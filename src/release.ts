/**
 * The attested release, top to bottom. Each step either passes or throws a BrokerError with its
 * own code; nothing is released unless every step passed.
 *
 * Steps 1–4 authenticate the attempt. A refusal there costs the broker no state: the nonce is
 * not consumed, and the refusal is only counted per source address (audit/unauthenticated.ts).
 *   1. parse      size and shape of the evidence (strict schema, allow-listed algorithms)
 *   2. nonce      cheap check: a nonce a broker of this store issued, not expired (broker clock)
 *   3. signature  the JWS verifies under the leaf certificate's key
 *   4. node       the chain leads to a node CA the policy trusts
 * From here on every attempt uses up its nonce and is recorded, refused or not, and counted for
 * the alarms that cover it.
 *   5. time       the policy has not expired; the evidence was issued within the allowed clock skew
 *   6. recipient  custody can encrypt to the agent's ephemeral key
 *   7. software   the binary (and image) are approved: pinned digest or publisher signature
 *   8. grant      the approved software may receive every requested key on this node
 *   9. suspended  the node is not on the policy's deny-list, and neither it nor its zones, the
 *                 software entries or the keys are suspended (an in-memory set; no store query)
 *  10. commit     ONE store transaction: consume the nonce, read the key versions, charge every
 *                 rate-limit window that covers the request (all of them or none) and count the
 *                 release for the alarms, count it for the statistics, fire the alarms it took
 *                 over their threshold, write the audit record
 *  11. release    only after the commit: each key is re-encrypted by custody to the agent's key
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Announce } from './alarms/announce.js';
import type { FiredAlarm } from './alarms/evaluate.js';
import type { Clock } from './clock.js';
import { parseEvidence, verifyEvidenceSignature, type ParsedEvidence } from './attestation/evidence.js';
import { parseChain, verifyNodeChain } from './attestation/nodeChain.js';
import type { NonceClaims } from './attestation/nonceToken.js';
import type { NonceService } from './attestation/nonces.js';
import { publishersVouching } from './attestation/workload.js';
import { capList, capText } from './audit/recorder.js';
import type { RefusalTally } from './audit/unauthenticated.js';
import type { KeyCustodian } from './custody/custodian.js';
import { validateRecipient } from './custody/recipient.js';
import { asBrokerError, BrokerError } from './errors.js';
import { controlsOf, type Controls, type RequestSubjects } from './limits/controls.js';
import { selectorSubject } from './limits/nodes.js';
import type { SuspensionCheck } from './limits/suspensionSet.js';
import type { BrokerMetrics } from './metrics/brokerMetrics.js';
import { evaluate, type NodeIdentity } from './policy/evaluate.js';
import { assertInForce, type PolicySnapshot } from './policy/runtime.js';
import type { Policy } from './policy/types.js';
import type { ReleasedKey } from './protocol.js';
import type { StoredVersion } from './store/keys.js';
import { appendRecord, commitRefusal, commitRelease, isNonceRefusal, limitThatRefused, recordedCodes } from './releaseCommit.js';
import { storeUnavailable, type StateStore } from './store/stateStore.js';

export interface ReleaseDeps {
  store: StateStore;
  nonces: NonceService;
  /** The latest policy loaded, expired or not: step 5 refuses an expired one, after authentication. */
  policy: () => PolicySnapshot;
  custodian: KeyCustodian;
  refusals: RefusalTally;
  /** Active suspensions, in memory, kept current from the store's change feed. */
  suspensions: SuspensionCheck;
  /** Announces the alarms a transaction fired, once it has committed. */
  announce: Announce;
  observe: ReleaseObserver;
  clock: Clock;
  maxClockSkewMs: number;
  /** Told when an audit record could not be written (readiness probes again at once). */
  auditFailed?: (e: unknown) => void;
}

/** What the metrics learn of each attempt. */
export type ReleaseObserver = Pick<BrokerMetrics, 'released' | 'refused' | 'custody'>;

/** What the broker knows about an attempt before reading it. */
export interface Attempt {
  requestId: string;
  /** The client's address. */
  source: string;
  /** Size of the request body, in bytes. */
  bytes: number;
}

/** What the audit record and the log say about one attempt, filled in as the steps pass. */
export type Trail = Record<string, unknown> & { rejected?: string[]; limit?: string };

/** Who and what the attempt concerns, as the limits, alarms and suspensions see it (filled in as the steps pass). */
type Subjects = { -readonly [K in keyof RequestSubjects]: RequestSubjects[K] };

export async function attestAndRelease(deps: ReleaseDeps, evidence: unknown, attempt: Attempt): Promise<{ keys: ReleasedKey[]; trail: Trail }> {
  const now = deps.clock.now();
  // One policy version decides this request from start to end, whatever a reload does meanwhile.
  const snapshot = deps.policy();
  const { policy, version: policyVersion, manifestSha256 } = snapshot;
  const { ev, claims, node } = await authenticate(deps, policy, evidence, attempt, now); // 1–4
  const { payload } = ev;
  const trail: Trail = {
    policy: { version: policyVersion, manifestSha256 },
    node,
    workload: capped(payload.workload),
    requested: payload.keys,
  };

  const controls = controlsOf(policy);
  const subjects: Subjects = { node, zones: [], software: [], keys: payload.keys.map((k) => k.name) };
  let versions: Array<{ name: string; version: StoredVersion }>;
  let fired: FiredAlarm[];
  try {
    assertInForce(snapshot, now); // 5
    const skewMs = Math.abs(now - payload.iat * 1000);
    if (skewMs > deps.maxClockSkewMs) throw new BrokerError('clock_skew', `evidence iat is ${Math.round(skewMs / 1000)} s from broker time`);

    if (!deps.custodian.recipientKeyTypes.includes(payload.cnf.jwk.kty)) { // 6
      throw new BrokerError('recipient_unsupported', `${deps.custodian.kind} custody cannot release to a ${payload.cnf.jwk.kty} key`);
    }
    validateRecipient(payload.cnf.jwk);

    const rejected: string[] = (trail.rejected = []);
    const signedBy = publishersVouching(policy, payload.workload, now, (why) => rejected.push(why)); // 7
    const decision = evaluate(policy, {
      node,
      binary: { sha256: payload.workload.binary.sha256, publishers: signedBy.binary },
      ...(payload.workload.image ? { image: { digest: payload.workload.image.digest, publishers: signedBy.image } } : {}),
      keys: payload.keys,
    });
    trail.zones = subjects.zones = decision.zones;
    trail.software = subjects.software = decision.software;
    if (!decision.allow) throw new BrokerError(decision.code, decision.reason); // 7, 8

    refuseIfSuspended(deps, controls, subjects); // 9

    ({ versions, fired } = await deps.store.transaction(commitRelease, { // 10 (releaseCommit.ts)
      nonce: claims,
      keys: decision.keys,
      windows: controls.windowsFor(subjects),
      alarmCounts: controls.alarmCounts('releases', subjects, now),
      now,
      requestId: attempt.requestId,
      node: nodeName(node),
      software: decision.software,
      record: { event: 'release', requestId: attempt.requestId, ...recorded(trail) },
    }));
  } catch (e) {
    const err = asBrokerError(e);
    const limit = limitThatRefused(err);
    if (limit) trail.limit = limit;
    // A store that failed cannot record the refusal either: no second wait.
    if (err.code === 'store_unavailable') deps.auditFailed?.(err);
    const answer = err.code === 'store_unavailable' ? err : await recordRefusal(deps, controls, claims, attempt, trail, subjects, err, now);
    deps.observe.refused(answer.code, subjects.zones, answer.code === 'rate_limited' ? trail.limit : undefined);
    throw answer;
  }
  deps.announce(fired);

  const started = performance.now();
  try { // 11
    const keys = await Promise.all(versions.map((k) => deps.custodian.releaseTo({ name: k.name, version: k.version.version }, k.version.wrapped!, payload.cnf.jwk)));
    deps.observe.custody((performance.now() - started) / 1000);
    deps.observe.released(subjects.zones);
    return { keys, trail: { ...trail, released: keys.map((k) => `${k.name}@${k.version}`) } };
  } catch (e) {
    const err = await recordCustodyFailure(deps, attempt, asBrokerError(e));
    deps.observe.refused(err.code, subjects.zones);
    throw err;
  }
}

/** Steps 1–4. A refusal here is counted for its source address, nothing more. */
async function authenticate(deps: ReleaseDeps, policy: Policy, evidence: unknown, attempt: Attempt, now: number): Promise<{ ev: ParsedEvidence; claims: NonceClaims; node: NodeIdentity }> {
  try {
    const ev = parseEvidence(evidence); // 1
    const claims = deps.nonces.check(ev.payload.nonce); // 2
    const chain = parseChain(ev.header.x5c);
    await verifyEvidenceSignature(ev, chain[0]!); // 3
    const node = verifyNodeChain(chain, policy.nodeCAs, now); // 4
    return { ev, claims, node };
  } catch (e) {
    const err = asBrokerError(e);
    deps.refusals.note({ source: attempt.source, code: err.code, bytes: attempt.bytes, ...(typeof evidence === 'string' ? { evidenceSha256: sha256(evidence) } : {}) });
    deps.observe.refused(err.code, []);
    throw err;
  }
}

/** Step 9. A denied or suspended node, zone, software entry or key: 403 suspended (the log and the record say which). */
function refuseIfSuspended(deps: ReleaseDeps, controls: Controls, s: RequestSubjects): void {
  const denied = controls.denied(s.node);
  if (denied) throw new BrokerError('suspended', `the node is on the policy's deny-list (${selectorSubject(denied)})`);
  const hit = deps.suspensions.suspendedOf(s);
  if (hit) throw new BrokerError('suspended', `${hit} is suspended`);
}

/**
 * A refusal after step 4, in one transaction (commitRefusal): the nonce used up, the refusal
 * recorded and counted, its alarms. If this cannot be written, the answer is store_unavailable.
 */
async function recordRefusal(deps: ReleaseDeps, controls: Controls, claims: NonceClaims, attempt: Attempt, trail: Trail, subjects: RequestSubjects, err: BrokerError, now: number): Promise<BrokerError> {
  let out;
  try {
    out = await deps.store.transaction(commitRefusal, {
      nonce: isNonceRefusal(err.code) ? undefined : claims,
      now,
      code: err.code,
      alarmCounts: Object.fromEntries(recordedCodes(err.code).map((c) => [c, controls.alarmCounts('refusals', subjects, now, c)])),
      record: { event: 'refusal', requestId: attempt.requestId, reason: capText(err.reason), source: attempt.source, ...recorded(trail) },
    });
  } catch (e) {
    deps.auditFailed?.(e);
    return storeUnavailable(e, `recording the refusal ${err.code}`);
  }
  deps.announce(out.fired);
  return out.answer ? new BrokerError(out.answer.code, out.answer.reason) : err;
}

/** Custody failed after the commit: the keys did not leave; a follow-up record says so. */
async function recordCustodyFailure(deps: ReleaseDeps, attempt: Attempt, err: BrokerError): Promise<BrokerError> {
  const record = { event: 'release.failed', requestId: attempt.requestId, code: err.code, reason: capText(err.reason) };
  await deps.store.transaction(appendRecord, { record, at: deps.clock.now() }).catch((e: unknown) => deps.auditFailed?.(e));
  return err.status >= 500 ? new BrokerError('custody_unavailable', err.reason, { cause: err }) : err;
}

/** The trail as recorded: the rejected signatures' reasons are a bounded list. */
const recorded = ({ rejected, ...rest }: Trail): Trail => (rejected ? { ...rest, rejected: capList(rejected) } : rest);

/** Client-chosen text in a record is capped: the evidence verified, but its fields are still the client's. */
const cap = (s: string | undefined) => (s === undefined ? s : capText(s));
const capped = (w: ParsedEvidence['payload']['workload']) => ({
  path: cap(w.binary.path),
  sha256: w.binary.sha256,
  image: w.image ? { ref: cap(w.image.ref), digest: w.image.digest } : undefined,
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const nodeName = (node: NodeIdentity) => node.sanUris[0] ?? node.subject;
