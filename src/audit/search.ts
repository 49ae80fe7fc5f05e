/**
 * An audit search as people ask it (key, node, software entry, decision, code, actor, time range)
 * turned into search terms, most selective first, and the records as they are shown: the record's
 * fields with its place in its chain. Service owners see only records of their keys, with other
 * teams' key names taken out.
 */
import type { AuditRow } from '../store/audit.js';
import { term, UNINDEXED_EVENTS, type TermKind } from '../store/auditTerms.js';
import type { AuditQuery, SearchCursor } from '../store/auditSearch.js';

export interface SearchFilter {
  key?: string;
  node?: string;
  software?: string;
  /** The record's event: release, refusal, key.create, policy.load… */
  decision?: string;
  code?: string;
  actor?: string;
  since?: number;
  until?: number;
}

/** Most selective first: the first term drives the query. */
const ORDER: ReadonlyArray<[keyof SearchFilter, TermKind]> = [['code', 'c'], ['key', 'k'], ['actor', 'a'], ['node', 'n'], ['software', 's'], ['decision', 'e']];

/** An ISO 8601 time, or an age (`90s`, `30m`, `24h`, `30d`) before `now`; epoch ms, or undefined when it is neither. */
export function whenFrom(s: string, now: number): number | undefined {
  const age = /^(\d{1,9})([smhd])$/.exec(s);
  if (age) return now - Number(age[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 's' | 'm' | 'h' | 'd'];
  const t = /^\d{4}-\d\d-\d\dT/.test(s) ? Date.parse(s) : NaN;
  return Number.isFinite(t) ? t : undefined;
}

export function toQuery(f: SearchFilter, limit: number, after?: SearchCursor): AuditQuery {
  const byColumn = f.decision !== undefined && UNINDEXED_EVENTS.has(f.decision);
  const terms = ORDER.flatMap(([field, kind]) => (typeof f[field] === 'string' && !(field === 'decision' && byColumn) ? [term(kind, f[field])] : []));
  return { terms, limit, ...(byColumn ? { event: f.decision } : {}), ...(f.since !== undefined ? { since: f.since } : {}), ...(f.until !== undefined ? { until: f.until } : {}), ...(after ? { after } : {}) };
}

export interface ShownRecord {
  chain: string;
  seq: number;
  time: string;
  event: string;
  hash: string;
  record: Record<string, unknown>;
  /** True when key names the caller may not see were taken out. */
  redacted?: boolean;
}

export function showRecord(r: AuditRow, maySee?: (key: string) => boolean): ShownRecord {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(r.body) as Record<string, unknown>;
  } catch {
    record = { unreadable: true };
  }
  let redacted = false;
  if (maySee) {
    const keep = <T>(xs: unknown, name: (x: T) => string) => {
      if (!Array.isArray(xs)) return xs;
      const kept = (xs as T[]).filter((x) => maySee(name(x)));
      redacted ||= kept.length !== xs.length;
      return kept;
    };
    if ('requested' in record) record.requested = keep<{ name: string }>(record.requested, (x) => String(x?.name));
    if ('released' in record) record.released = keep<string>(record.released, (x) => String(x).replace(/@\d+$/, ''));
    // A reason may name the keys taken out ("… is not granted …"): withheld with them.
    if (redacted && 'reason' in record) record.reason = '(withheld: it may name keys of other teams)';
  }
  return { chain: r.chainId, seq: r.seq, time: new Date(r.at).toISOString(), event: r.event, hash: r.hash, record, ...(redacted ? { redacted } : {}) };
}

/** One line per record, for people. */
export function recordLine(s: ShownRecord): string {
  const r = s.record;
  const bits = [s.time, s.event.padEnd(24)];
  for (const k of ['code', 'key', 'actor', 'source'] as const) if (typeof r[k] === 'string') bits.push(`${k}=${r[k] as string}`);
  if (Array.isArray(r.released)) bits.push(`released=${(r.released as string[]).join(',')}`);
  else if (Array.isArray(r.requested)) bits.push(`requested=${(r.requested as Array<{ name?: string }>).map((x) => x?.name).join(',')}`);
  const node = r.node as { sanUris?: string[]; subject?: string } | undefined;
  if (node) bits.push(`node=${node.sanUris?.[0] ?? node.subject ?? '?'}`);
  if (Array.isArray(r.software) && r.software.length) bits.push(`software=${(r.software as string[]).join(',')}`);
  bits.push(`(${s.chain}:${s.seq})`);
  return bits.join(' ');
}
