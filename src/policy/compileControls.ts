/**
 * The crypto-anchor sections of the policy, cross-checked and turned into plain data: every
 * subject names a zone, software entry, node CA or granted key that exists; rates and periods stay
 * within what the store keeps. Problems are located like every other (`file:line:col path`).
 */
import { formatDuration, parseDuration, parseRate } from '../limits/rates.js';
import { normalizeSerial } from '../limits/nodes.js';
import type { Alarm, NodeSelector, RateLimit, Subject } from './types.js';

/** Longest rate period: a window's state is a single time, so any length works; a month keeps policies sane. */
export const MAX_RATE_PERIOD_MS = 31 * 86_400_000;
/** Alarm periods: at least 10 s, at most a day; the N periods looked at fit in the 7 days counters are kept. */
export const MIN_ALARM_PERIOD_MS = 10_000;
export const MAX_ALARM_PERIOD_MS = 86_400_000;
export const MAX_ALARM_SPAN_MS = 7 * 86_400_000;

export interface ControlNames {
  zones: ReadonlySet<string>;
  software: ReadonlySet<string>;
  /** Keys some software entry is granted. */
  grantedKeys: ReadonlySet<string>;
  nodeCAs: ReadonlySet<string>;
}

type Report = (sub: PropertyKey[], message: string) => void;

interface SubjectEntry {
  zone?: string | undefined;
  software?: string | undefined;
  key?: string | undefined;
  node?: { fingerprint?: string | undefined; serial?: string | undefined; sanUri?: string | undefined; nodeCA?: string | undefined } | undefined;
  global?: true | undefined;
  perNode?: boolean | undefined;
}

export function nodeSelector(n: NonNullable<SubjectEntry['node']>, names: ControlNames, report: Report, at: PropertyKey[]): NodeSelector {
  if (n.nodeCA !== undefined && !names.nodeCAs.has(n.nodeCA)) report([...at, 'nodeCA'], `unknown node CA "${n.nodeCA}"`);
  return {
    ...(n.fingerprint !== undefined ? { fingerprint: n.fingerprint } : {}),
    ...(n.serial !== undefined ? { serial: normalizeSerial(n.serial) } : {}),
    ...(n.sanUri !== undefined ? { sanUri: n.sanUri } : {}),
    ...(n.nodeCA !== undefined ? { nodeCA: n.nodeCA } : {}),
  };
}

export function subjectOf(e: SubjectEntry, names: ControlNames, report: Report): Subject {
  if (e.zone !== undefined) {
    if (!names.zones.has(e.zone)) report(['zone'], `unknown zone "${e.zone}"`);
    return { kind: 'zone', name: e.zone };
  }
  if (e.software !== undefined) {
    if (!names.software.has(e.software)) report(['software'], `unknown software entry "${e.software}"`);
    return { kind: 'software', name: e.software };
  }
  if (e.key !== undefined) {
    if (!names.grantedKeys.has(e.key)) report(['key'], `no software entry is granted the key "${e.key}"`);
    return { kind: 'key', name: e.key };
  }
  if (e.node !== undefined) return { kind: 'node', node: nodeSelector(e.node, names, report, ['node']) };
  return { kind: 'global' };
}

export function compileLimit(e: SubjectEntry & { name: string; windows: string[] }, names: ControlNames, report: Report): RateLimit {
  const windows: Array<{ limit: number; periodMs: number; text: string }> = [];
  e.windows.forEach((text, i) => {
    const r = parseRate(text)!; // the schema checked the form
    if (r.periodMs > MAX_RATE_PERIOD_MS) return report(['windows', i], `a period of at most ${formatDuration(MAX_RATE_PERIOD_MS)}`);
    if (windows.some((w) => w.limit === r.limit && w.periodMs === r.periodMs)) return report(['windows', i], `the same rate as an earlier window of this limit`);
    windows.push(r);
  });
  return { name: e.name, subject: subjectOf(e, names, report), perNode: e.perNode ?? false, windows };
}

export function compileAlarm(
  e: SubjectEntry & { name: string; measure: Alarm['measure']; codes?: string[] | undefined; period: string; threshold: number; evaluationPeriods?: number | undefined; datapointsToAlarm?: number | undefined; action: Alarm['action'] },
  names: ControlNames,
  report: Report,
): Alarm {
  const periodMs = parseDuration(e.period)!;
  const n = e.evaluationPeriods ?? 1;
  if (periodMs < MIN_ALARM_PERIOD_MS || periodMs > MAX_ALARM_PERIOD_MS) report(['period'], `a period from ${formatDuration(MIN_ALARM_PERIOD_MS)} to ${formatDuration(MAX_ALARM_PERIOD_MS)}`);
  else if (periodMs * n > MAX_ALARM_SPAN_MS) report(['evaluationPeriods'], `${n} periods of ${formatDuration(periodMs)} span more than the ${formatDuration(MAX_ALARM_SPAN_MS)} counts are kept`);
  return {
    name: e.name,
    measure: e.measure,
    ...(e.codes ? { codes: [...new Set(e.codes)] } : {}),
    subject: subjectOf(e, names, report),
    perNode: e.perNode ?? false,
    periodMs,
    threshold: e.threshold,
    evaluationPeriods: n,
    datapointsToAlarm: e.datapointsToAlarm ?? n,
    action: e.action,
  };
}
