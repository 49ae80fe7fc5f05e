/**
 * The store transactions of the release decision (release.ts), as named procedures
 * (store/procedures.ts): plain data in, plain data out, run wherever the store's writer is (this
 * process, or the primary of `serve --workers` that owns the SQLite file).
 *   commitRelease  step 10: the nonce, the key versions, every rate-limit window and alarm count,
 *                  the release counted, the alarms it fired, its audit record
 *   commitRefusal  a refusal after authentication: the nonce, the record, the counts, the alarms
 *   appendRecord   one standalone record (custody failed after the commit)
 * A procedure that throws rolls its transaction back whole: a refused window charges nothing.
 */
import { counterAdds, countForAlarms, fireCrossed, type FiredAlarm } from './alarms/evaluate.js';
import type { NonceClaims } from './attestation/nonceToken.js';
import { consumeChecked } from './attestation/nonces.js';
import { BrokerError } from './errors.js';
import { limitOfWindow, type AlarmCount } from './limits/controls.js';
import type { GcraDecision, LimitWindow } from './limits/gcra.js';
import type { Decision } from './policy/evaluate.js';
import type { ProblemCode } from './protocol.js';
import { appendAudit, type AuditEvent } from './store/audit.js';
import { addCounters } from './store/counters.js';
import { countRelease, resolveVersions, type StoredVersion } from './store/keys.js';
import { chargeAndCount } from './store/controls.js';
import { txProcedure } from './store/procedures.js';
import type { TxSql } from './store/sql.js';

type GrantedKeys = Extract<Decision, { allow: true }>['keys'];

export interface ReleaseCommit {
  nonce: NonceClaims;
  keys: GrantedKeys;
  /** Every window of every limit that covers the request. */
  windows: LimitWindow[];
  /** The alarm counts the release adds to. */
  alarmCounts: AlarmCount[];
  now: number;
  requestId: string;
  node: string;
  software: string[];
  /** The audit record, to which the versions released are added. */
  record: AuditEvent;
}

export const commitRelease = txProcedure('release.commit', async (tx, c: ReleaseCommit) => {
  await consumeChecked(tx, c.nonce);
  const versions = await keysToRelease(tx, c.keys);
  const charged = await chargeAndCount(tx, c.windows, counterAdds(c.alarmCounts), c.now);
  refuseIfLimited(charged.limits);
  await countRelease(tx, versions.map((k) => ({ name: k.name, version: k.version.version })), new Date(c.now).toISOString(), c.node, c.software);
  const fired: FiredAlarm[] = await fireCrossed(tx, c.alarmCounts, charged.counts, c.now, c.requestId);
  await appendAudit(tx, { ...c.record, released: versions.map((k) => `${k.name}@${k.version.version}`) }, c.now);
  return { versions, fired };
});

/** The versions to hand out, read in the transaction: a rotation committed by any replica is seen. */
async function keysToRelease(tx: TxSql, keys: GrantedKeys): Promise<Array<{ name: string; version: StoredVersion }>> {
  const found = await resolveVersions(tx, keys);
  return found.map((k, i) => {
    const want = keys[i]!;
    if (!k?.version.wrapped) throw new BrokerError('key_unknown', `no enabled version of ${want.name}${want.version ? `@${want.version}` : ''}`);
    return k;
  });
}

const LIMIT_REASON = 'limit ';

/** A window refused: 429 with the exact wait of the window that frees up last (whole seconds, rounded up). */
function refuseIfLimited(d: GcraDecision): void {
  if (d.allowed) return;
  throw new BrokerError('rate_limited', `${LIMIT_REASON}${limitOfWindow(d.key)}`, { retryAfterSeconds: Math.max(1, Math.ceil(d.retryAfterMs / 1000)) });
}

/** The name of the limit that refused a `rate_limited` error of commitRelease (errors cross processes as code and reason). */
export const limitThatRefused = (e: BrokerError): string | undefined => (e.code === 'rate_limited' && e.reason.startsWith(LIMIT_REASON) ? e.reason.slice(LIMIT_REASON.length) : undefined);

const NONCE_CODES = new Set(['nonce_replayed', 'nonce_expired']);

export interface RefusalInput {
  /** The nonce to use up; absent when the refusal is about the nonce itself. */
  nonce: NonceClaims | undefined;
  now: number;
  code: ProblemCode;
  /** The alarm counts the refusal adds to, by the code it is recorded under: the one given, or a nonce refusal's if another attempt used the nonce first. */
  alarmCounts: Record<string, AlarmCount[]>;
  /** The refusal's audit record (its code is set here). */
  record: AuditEvent & { requestId: string; reason: string };
}

export const isNonceRefusal = (code: string) => NONCE_CODES.has(code);

/** The codes a refusal given `code` may be recorded under (commitRefusal): its own, or a nonce refusal's if another attempt used the nonce first. */
export const recordedCodes = (code: string): string[] => (NONCE_CODES.has(code) ? [code] : [code, ...NONCE_CODES]);

/**
 * A refusal after authentication: the nonce is used up (unless the refusal was about the nonce
 * itself), the refusal recorded and counted (per code and minute, and for the alarms that count
 * refusals). A nonce another attempt used first turns the refusal into that nonce refusal.
 */
export const commitRefusal = txProcedure('release.refusal', async (tx, c: RefusalInput) => {
  let answer: { code: ProblemCode; reason: string } | undefined;
  if (c.nonce) {
    await consumeChecked(tx, c.nonce).catch((e: unknown) => {
      if (e instanceof BrokerError && NONCE_CODES.has(e.code)) answer = { code: e.code, reason: e.reason };
      else throw e;
    });
  }
  const code = answer?.code ?? c.code;
  await appendAudit(tx, { ...c.record, code, ...(answer ? { reason: answer.reason } : {}) }, c.now);
  await addCounters(tx, [{ key: `refusals:${code}`, bucket: minuteOf(c.now) }]);
  const fired = await countForAlarms(tx, c.alarmCounts[code] ?? [], c.now, c.record.requestId);
  return { answer, fired };
});

/** The start of the minute, epoch ms (counter buckets are the start of their period). */
const minuteOf = (ms: number) => Math.floor(ms / 60_000) * 60_000;

export const appendRecord = txProcedure('audit.append', (tx, r: { record: AuditEvent; at: number }) => appendAudit(tx, r.record, r.at));
