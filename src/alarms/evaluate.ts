/**
 * Alarms, evaluated inside the transaction of the decision they count, without scanning anything:
 * each release (or refusal) adds 1 to the counter of each alarm that covers it, in its current
 * period, in one statement that returns the new counts. A period breaches when its count goes
 * above the threshold; exactly one transaction sees the count reach threshold + 1 (the counter row
 * is locked by the addition), on whichever replica. Only that one reads the alarm's previous
 * periods: when M of the last N (this one included) breach, the alarm fires — suspending its
 * subject in the same transaction when its action is `suspend` (idempotent: one suspension per
 * subject) and writing the `alarm` audit record there too. So an alarm fires at most once per
 * period and subject, at the moment the M-th breach happens, and a rolled-back decision counts
 * nothing.
 */
import type { AlarmCount } from '../limits/controls.js';
import { formatDuration } from '../limits/rates.js';
import { appendAudit } from '../store/audit.js';
import { addCountersReturning, readCounters } from '../store/counters.js';
import type { TxSql } from '../store/sql.js';
import { suspend, type Suspension } from '../store/suspensions.js';

/** An alarm that fired, for the announcement after the commit. */
export interface FiredAlarm {
  alarm: string;
  measure: 'releases' | 'refusals';
  action: 'notify' | 'suspend';
  subject: string;
  /** Start of the period that breached last, ISO 8601. */
  periodStart: string;
  periodSeconds: number;
  threshold: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  /** Counts of the last N periods, oldest first (this one last). */
  counts: number[];
  breaching: number;
  suspension?: { id: string; created: boolean };
  requestId: string;
}

/** Adds 1 to each alarm count and fires the alarms that crossed (a refusal's counts; a release's go through store/controls.ts). */
export async function countForAlarms(tx: TxSql, counts: readonly AlarmCount[], now: number, requestId: string): Promise<FiredAlarm[]> {
  if (counts.length === 0) return [];
  return fireCrossed(tx, counts, await addCountersReturning(tx, counterAdds(counts)), now, requestId);
}

/** The counter additions of these alarm counts. */
export const counterAdds = (counts: readonly AlarmCount[]) => counts.map((c) => ({ key: c.counterKey, bucket: c.bucket }));

/** Given the counts after the addition, fires each alarm whose period has just gone over its threshold and whose M of N breach. */
export async function fireCrossed(tx: TxSql, counts: readonly AlarmCount[], after: ReadonlyArray<{ key: string; bucket: number; count: number }>, now: number, requestId: string): Promise<FiredAlarm[]> {
  const fired: FiredAlarm[] = [];
  for (const c of counts) {
    const count = after.find((r) => r.key === c.counterKey && r.bucket === c.bucket)?.count;
    if (count !== c.alarm.threshold + 1) continue;
    const f = await evaluateBreach(tx, c, count, now, requestId);
    if (f) fired.push(f);
  }
  return fired;
}

/** This period has just breached: does the alarm fire? If so, act and record it. */
async function evaluateBreach(tx: TxSql, c: AlarmCount, count: number, now: number, requestId: string): Promise<FiredAlarm | undefined> {
  const { alarm } = c;
  const n = alarm.evaluationPeriods;
  const earlier = n > 1 ? await readCounters(tx, c.counterKey, c.bucket - (n - 1) * alarm.periodMs, c.bucket - alarm.periodMs) : [];
  const counts = Array.from({ length: n }, (_, i) => {
    const bucket = c.bucket - (n - 1 - i) * alarm.periodMs;
    return i === n - 1 ? count : earlier.find((r) => r.bucket === bucket)?.count ?? 0;
  });
  const breaching = counts.filter((x) => x > alarm.threshold).length;
  if (breaching < alarm.datapointsToAlarm) return undefined;
  const f: FiredAlarm = {
    alarm: alarm.name,
    measure: alarm.measure,
    action: alarm.action,
    subject: c.subject,
    periodStart: new Date(c.bucket).toISOString(),
    periodSeconds: alarm.periodMs / 1000,
    threshold: alarm.threshold,
    evaluationPeriods: n,
    datapointsToAlarm: alarm.datapointsToAlarm,
    counts,
    breaching,
    requestId,
  };
  let s: { created: boolean; suspension: Suspension } | undefined;
  if (alarm.action === 'suspend') {
    const reason = `alarm ${alarm.name}: ${alarm.measure} above ${alarm.threshold} per ${formatDuration(alarm.periodMs)} in ${breaching} of the last ${n} period(s)`;
    const { requestId: _r, ...figures } = f;
    s = await suspend(tx, { subject: c.subject, reason, figures, createdBy: `alarm:${alarm.name}`, createdAt: now });
    f.suspension = { id: s.suspension.id, created: s.created };
  }
  await appendAudit(tx, { event: 'alarm', ...f }, now);
  if (s?.created) await appendAudit(tx, { event: 'suspension.set', subject: c.subject, id: s.suspension.id, by: `alarm:${alarm.name}`, reason: s.suspension.reason }, now);
  return f;
}
