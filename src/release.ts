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
import { consumeChecked, type NonceService } from './attestation/nonces.js';
import { publishersVouching } from './attestation/workload.js';
import type { RefusalTally } from './audit/unauthenticated.js';
import type { KeyCustodian } from './custody/custodian.js';
import { validateRecipient } from './custody/recipient.js';
import { asBrokerError, BrokerError } from './errors.js';
import type { LimitWindow } from './limits/gcra.js';
import { evaluate, type Decision, type NodeIdentity } from './policy/evaluate.js';
import { assertInForce, type PolicySnapshot } from './policy/runtime.js';
import type { Policy } from './policy/types.js';
import type { ProblemCode, ReleasedKey } from './protocol.js';
import { appendAudit, type AuditEvent } from './store/audit.js';
import { addCounters } from './store/counters.js';
import { countRelease, resolveVersions, type StoredVersion } from './store/keys.js';
import { chargeLimits } from './store/limits.js';
import { txProcedure } from './store/procedures.js';
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

    versions = await deps.store.transaction(commitRelease, { // 9
      nonce: claims,
      keys: decision.keys,
      limits: limitsToCharge(decision),
      now,
      node: nodeName(node),
      software: decision.software,
      record: { event: 'release', requestId: attempt.requestId, ...trail },
    });
  } catch (e) {
    const err = asBrokerError(e);
    if (err.code === 'store_unavailable') throw err; // nothing can be recorded either: no second wait
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

/** What step 9 needs, as plain data: it runs where the store's writer is (store/procedures.ts). */
interface ReleaseCommit {
  nonce: NonceClaims;
  keys: Granted['keys'];
  limits: LimitWindow[];
  now: number;
  node: string;
  software: string[];
  /** The audit record, to which the versions released are added. */
  record: AuditEvent;
}

/** Step 9, ONE store transaction: consume the nonce, read the key versions, charge the limits, count the release, write the audit record. */
const commitRelease = txProcedure('release.commit', async (tx, c: ReleaseCommit) => {
  await consumeChecked(tx, c.nonce);
  const toRelease = await keysToRelease(tx, c.keys);
  await chargeLimits(tx, c.limits, c.now).then(refuseIfLimited);
  await countRelease(tx, toRelease.map((k) => ({ name: k.name, version: k.version.version })), iso(c.now), c.node, c.software);
  await appendAudit(tx, { ...c.record, released: toRelease.map((k) => `${k.name}@${k.version.version}`) }, c.now);
  return toRelease;
});

/** The versions to hand out, read in the transaction: a rotation committed by any replica is seen. */
async function keysToRelease(tx: TxSql, keys: Granted['keys']): Promise<Array<{ name: string; version: StoredVersion }>> {
  const found = await resolveVersions(tx, keys);
  return found.map((k, i) => {
    const want = keys[i]!;
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
  try {
    const replayed = await deps.store.transaction(commitRefusal, { nonce: NONCE_CODES.has(err.code) ? undefined : claims, now, code: err.code, reason: err.reason, source: attempt.source, requestId: attempt.requestId, trail });
    return replayed ? new BrokerError(replayed.code, replayed.reason) : err;
  } catch (e) {
    return storeUnavailable(e, `recording the refusal ${err.code}`);
  }
}

interface RefusalCommit {
  /** The nonce to use up; absent when the refusal is about the nonce itself. */
  nonce: NonceClaims | undefined;
  now: number;
  code: ProblemCode;
  reason: string;
  source: string;
  requestId: string;
  trail: Trail;
}

/** The refusal's transaction; resolves with the nonce refusal that replaces the answer, if the nonce was used first. */
const commitRefusal = txProcedure('release.refusal', async (tx, c: RefusalCommit) => {
  let answer: { code: ProblemCode; reason: string } | undefined;
  if (c.nonce) {
    await consumeChecked(tx, c.nonce).catch((e: unknown) => {
      if (e instanceof BrokerError && NONCE_CODES.has(e.code)) answer = { code: e.code, reason: e.reason };
      else throw e;
    });
  }
  const code = answer?.code ?? c.code;
  await appendAudit(tx, { event: 'refusal', requestId: c.requestId, code, reason: answer?.reason ?? c.reason, source: c.source, ...c.trail }, c.now);
  await addCounters(tx, [{ key: `refusals:${code}`, bucket: minuteOf(c.now) }]);
  return answer;
});

/** Custody failed after the commit: the keys did not leave; a follow-up record says so. */
async function recordCustodyFailure(deps: ReleaseDeps, attempt: Attempt, err: BrokerError): Promise<BrokerError> {
  const record = { event: 'release.failed', requestId: attempt.requestId, code: err.code, reason: err.reason };
  await deps.store.transaction(appendRecord, { record, at: deps.clock.now() }).catch(() => undefined);
  return err.status >= 500 ? new BrokerError('custody_unavailable', err.reason, { cause: err }) : err;
}

const appendRecord = txProcedure('audit.append', (tx, r: { record: AuditEvent; at: number }) => appendAudit(tx, r.record, r.at));

/** Client-chosen text in a record is capped: the evidence verified, but its fields are still the client's. */
const cap = (s: string | undefined, n = 256) => (s === undefined || s.length <= n ? s : `${s.slice(0, n)}…(${s.length})`);
const capped = (w: ParsedEvidence['payload']['workload']) => ({
  path: cap(w.binary.path),
  sha256: w.binary.sha256,
  image: w.image ? { ref: cap(w.image.ref), digest: w.image.digest } : undefined,
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const iso = (ms: number) => new Date(ms).toISOString();
const minuteOf = (ms: number) => Math.floor(ms / 60_000);
const nodeName = (node: NodeIdentity) => node.sanUris[0] ?? node.subject;
