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
 * From here on every attempt uses up its nonce and is recorded, refused or not.
 *   5. time       the policy has not expired; the evidence was issued within the allowed clock skew
 *   6. recipient  custody can encrypt to the agent's ephemeral key
 *   7. software   the binary (and image) are approved: pinned digest or publisher signature
 *   8. grant      the approved software may receive every requested key on this node
 *   9. commit     ONE store transaction: consume the nonce, read the key versions, charge the rate
 *                 limits, count the release, write the audit record
 *  10. release    only after the commit: each key is re-encrypted by custody to the agent's key
 */
import { createHash } from 'node:crypto';
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
import type { LimitWindow } from './limits/gcra.js';
import { evaluate, type Decision, type NodeIdentity } from './policy/evaluate.js';
import { assertInForce, type PolicySnapshot } from './policy/runtime.js';
import type { Policy } from './policy/types.js';
import type { ReleasedKey } from './protocol.js';
import { appendAudit } from './store/audit.js';
import { addCounters } from './store/counters.js';
import { countRelease, resolveVersions, type StoredVersion } from './store/keys.js';
import { chargeLimits } from './store/limits.js';
import type { TxSql } from './store/sql.js';
import { storeUnavailable, type StateStore } from './store/stateStore.js';

export interface ReleaseDeps {
  store: StateStore;
  nonces: NonceService;
  /** The latest policy loaded, expired or not: step 5 refuses an expired one, after authentication. */
  policy: () => PolicySnapshot;
  custodian: KeyCustodian;
  refusals: RefusalTally;
  clock: Clock;
  maxClockSkewMs: number;
  /** Told when an audit record could not be written (readiness probes again at once). */
  auditFailed?: (e: unknown) => void;
}

/** What the broker knows about an attempt before reading it. */
export interface Attempt {
  requestId: string;
  /** The client's address. */
  source: string;
  /** Size of the request body, in bytes. */
  bytes: number;
}

/** What the audit record and the log say about one attempt, filled in as the steps pass. */
export type Trail = Record<string, unknown> & { rejected?: string[] };

type Granted = Extract<Decision, { allow: true }>;

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

  let versions: Array<{ name: string; version: StoredVersion }>;
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
    trail.zones = decision.zones;
    trail.software = decision.software;
    if (!decision.allow) throw new BrokerError(decision.code, decision.reason); // 7, 8

    versions = await deps.store.transaction(async (tx) => { // 9
      await deps.nonces.consume(tx, claims);
      const toRelease = await keysToRelease(tx, decision);
      await chargeLimits(tx, limitsToCharge(decision), now).then(refuseIfLimited);
      await countRelease(tx, toRelease.map((k) => ({ name: k.name, version: k.version.version })), iso(now), nodeName(node), decision.software);
      await appendAudit(tx, { event: 'release', requestId: attempt.requestId, ...recorded(trail), released: toRelease.map((k) => `${k.name}@${k.version.version}`) }, now);
      return toRelease;
    });
  } catch (e) {
    const err = asBrokerError(e);
    if (err.code === 'store_unavailable') { // nothing can be recorded either: no second wait
      deps.auditFailed?.(err);
      throw err;
    }
    throw await recordRefusal(deps, claims, attempt, trail, err, now);
  }

  try { // 10
    const keys = await Promise.all(versions.map((k) => deps.custodian.releaseTo({ name: k.name, version: k.version.version }, k.version.wrapped!, payload.cnf.jwk)));
    return { keys, trail: { ...trail, released: keys.map((k) => `${k.name}@${k.version}`) } };
  } catch (e) {
    throw await recordCustodyFailure(deps, attempt, asBrokerError(e));
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
    throw err;
  }
}

/** The versions to hand out, read in the transaction: a rotation committed by any replica is seen. */
async function keysToRelease(tx: TxSql, decision: Granted): Promise<Array<{ name: string; version: StoredVersion }>> {
  const found = await resolveVersions(tx, decision.keys);
  return found.map((k, i) => {
    const want = decision.keys[i]!;
    if (!k?.version.wrapped) throw new BrokerError('key_unknown', `no enabled version of ${want.name}${want.version ? `@${want.version}` : ''}`);
    return k;
  });
}

/**
 * The rate-limit windows this release is charged to. Limits are declared in policy by a later
 * change; until then there are none, and the (atomic, all-or-nothing) charge is a no-op.
 */
function limitsToCharge(_decision: Granted): LimitWindow[] {
  return [];
}

function refuseIfLimited(d: Awaited<ReturnType<typeof chargeLimits>>): void {
  if (!d.allowed) throw new BrokerError('rate_limited', `limit ${d.key}`, { retryAfterSeconds: Math.max(1, Math.ceil(d.retryAfterMs / 1000)) });
}

const NONCE_CODES = new Set(['nonce_replayed', 'nonce_expired']);

/**
 * A refusal after step 4, in one transaction: the nonce is used up (unless the refusal was about
 * the nonce itself), the refusal recorded and counted. A nonce another attempt used first turns the
 * refusal into nonce_replayed. If this cannot be written, the answer is store_unavailable.
 */
async function recordRefusal(deps: ReleaseDeps, claims: NonceClaims, attempt: Attempt, trail: Trail, err: BrokerError, now: number): Promise<BrokerError> {
  let answer = err;
  try {
    await deps.store.transaction(async (tx) => {
      if (!NONCE_CODES.has(err.code)) {
        await deps.nonces.consume(tx, claims).catch((e: unknown) => {
          if (e instanceof BrokerError && NONCE_CODES.has(e.code)) answer = e;
          else throw e;
        });
      }
      await appendAudit(tx, { event: 'refusal', requestId: attempt.requestId, code: answer.code, reason: capText(answer.reason), source: attempt.source, ...recorded(trail) }, now);
      await addCounters(tx, [{ key: `refusals:${answer.code}`, bucket: minuteOf(now) }]);
    });
  } catch (e) {
    deps.auditFailed?.(e);
    return storeUnavailable(e, `recording the refusal ${err.code}`);
  }
  return answer;
}

/** Custody failed after the commit: the keys did not leave; a follow-up record says so. */
async function recordCustodyFailure(deps: ReleaseDeps, attempt: Attempt, err: BrokerError): Promise<BrokerError> {
  const now = deps.clock.now();
  await deps.store.transaction((tx) => appendAudit(tx, { event: 'release.failed', requestId: attempt.requestId, code: err.code, reason: capText(err.reason) }, now)).catch((e: unknown) => deps.auditFailed?.(e));
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
const iso = (ms: number) => new Date(ms).toISOString();
const minuteOf = (ms: number) => Math.floor(ms / 60_000);
const nodeName = (node: NodeIdentity) => node.sanUris[0] ?? node.subject;
