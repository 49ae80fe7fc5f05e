/**
 * Verifies the audit trail in the store, a page at a time (bounded memory at any length):
 *
 * 1. the checkpoint log (verifyLog.ts), with signatures when keys are given;
 * 2. every chain, from its start or the prune anchor's cut: each record's number, its link to the
 *    record before and its hash, and, where a checkpoint covers it, the hash the checkpoint
 *    signed; a chain that ends before its last checkpoint was truncated;
 * 3. with a witnessed entry (`against`), that the store's log holds exactly that entry, so a
 *    store replaced, emptied or rolled back to before it is found.
 *
 * A record past its chain's last checkpoint is reported as uncovered: nothing signed vouches for
 * it yet (docs/operations.md says what that means).
 */
import type { KeyObject } from 'node:crypto';
import { auditKeyId } from '../custody/auditSigner.js';
import { auditChains, GENESIS, readChain, recordHash } from '../store/audit.js';
import { META, getMeta } from '../store/meta.js';
import type { Sql } from '../store/sql.js';
import { entryDigest, parseEntry, signatureValid } from './checkpoint.js';
import { verifyLog, type LogReport } from './verifyLog.js';

export interface ChainReport {
  chainId: string;
  records: number;
  /** The last record's number (0: none). */
  last: number;
  lastHash: string;
  /** The highest record number a checkpoint covers (0: none). */
  covered: number;
  /** The first record that does not verify (its seq), if any. */
  brokenAt?: number;
  why?: string;
}

export interface Against {
  text: string;
  sig: Buffer;
}

export interface TrailReport {
  chains: ChainReport[];
  log: LogReport;
  records: number;
  /** Records no checkpoint covers yet. */
  uncovered: number;
  events: Map<string, number>;
  /** With `against`: how the witnessed entry compares with the store. */
  against?: { log: number; ok: boolean; why?: string };
  intact: boolean;
}

export interface VerifyOptions {
  keys?: readonly KeyObject[];
  against?: Against;
}

export async function verifyTrail(sql: Sql, o: VerifyOptions = {}): Promise<TrailReport> {
  const keys = new Map((o.keys ?? []).map((k) => [auditKeyId(k), k]));
  const storeId = await getMeta(sql, META.auditStoreId);
  const witnessed = o.against ? parseEntry(o.against.text) : undefined;
  const log = await verifyLog(sql, { keys, storeId, ...(witnessed ? { keep: [witnessed.log] } : {}) });
  const cuts = new Map((log.anchor?.body.cuts ?? []).map((c) => [c.chain, c]));
  const ids = new Set([...(await auditChains(sql)), ...log.checkpoints.keys(), ...cuts.keys()]);
  const chains: ChainReport[] = [];
  const events = new Map<string, number>();
  for (const chainId of [...ids].sort()) chains.push(await verifyChain(sql, chainId, log.checkpoints.get(chainId) ?? [], cuts.get(chainId), events));
  const report: TrailReport = {
    chains, log, events,
    records: chains.reduce((n, c) => n + c.records, 0),
    uncovered: chains.reduce((n, c) => n + (c.brokenAt === undefined ? c.last - Math.min(c.covered, c.last) : 0), 0),
    intact: log.brokenAt === undefined && chains.every((c) => c.brokenAt === undefined),
  };
  if (o.against && witnessed) {
    report.against = compareWitnessed(log, o.against, witnessed.log, witnessed.store, storeId, keys);
    report.intact &&= report.against.ok;
  }
  return report;
}

async function verifyChain(sql: Sql, chainId: string, checkpoints: ReadonlyArray<{ seq: number; hash: string; n: number }>, cut: { seq: number; hash: string } | undefined, events: Map<string, number>): Promise<ChainReport> {
  const report: ChainReport = { chainId, records: 0, last: cut?.seq ?? 0, lastHash: cut?.hash ?? GENESIS, covered: cut?.seq ?? 0 };
  let next = 0;
  while (next < checkpoints.length && checkpoints[next]!.seq <= report.last) next++;
  for await (const r of readChain(sql, chainId, 5000, report.last)) {
    const cp = next < checkpoints.length && checkpoints[next]!.seq === r.seq ? checkpoints[next] : undefined;
    const why =
      r.seq !== report.last + 1 ? (r.seq > report.last + 1 ? `record ${report.last + 1} is missing (the next is ${r.seq})` : `expected record ${report.last + 1}, found ${r.seq}`) :
      r.prev !== report.lastHash ? 'its prev is not the hash of the record before it' :
      r.hash !== recordHash(r) ? 'its content does not match its hash' :
      eventOf(r.body) !== r.event ? 'its event column does not match its body' :
      cp && cp.hash !== r.hash ? `it is not the record checkpoint ${cp.n} signed` : undefined;
    if (why) return { ...report, brokenAt: report.last + 1, why };
    report.records++;
    report.last = r.seq;
    report.lastHash = r.hash;
    if (cp) {
      report.covered = r.seq;
      while (next < checkpoints.length && checkpoints[next]!.seq <= r.seq) next++;
    }
    events.set(r.event, (events.get(r.event) ?? 0) + 1);
  }
  const beyond = checkpoints.at(-1);
  if (beyond && beyond.seq > report.last) {
    return { ...report, brokenAt: report.last + 1, why: `the chain ends at record ${report.last}, but checkpoint ${beyond.n} signed ${beyond.seq}: records ${report.last + 1}–${beyond.seq} were removed (truncated)` };
  }
  return report;
}

const eventOf = (body: string): unknown => {
  try {
    return (JSON.parse(body) as { event?: unknown }).event;
  } catch {
    return undefined;
  }
};

/** The witnessed entry must be in the store's (verified) log, word for word. */
function compareWitnessed(log: LogReport, a: Against, n: number, store: string, storeId: string | undefined, keys: ReadonlyMap<string, KeyObject>): NonNullable<TrailReport['against']> {
  const key = keys.get(parseEntry(a.text).key);
  if (keys.size > 0 && (!key || !signatureValid(a.text, a.sig, key))) return { log: n, ok: false, why: 'the witnessed checkpoint is not signed by any of the keys given' };
  if (storeId !== store) return { log: n, ok: false, why: `the witnessed checkpoint is of store ${store}; this store is ${storeId ?? 'one that never signed a checkpoint'}: it was replaced or emptied` };
  const retired = log.anchor?.body.retired;
  if (retired && n <= retired.log) {
    return n === retired.log && retired.digest !== entryDigest(a.text) ? { log: n, ok: false, why: `the prune anchor retired a different entry ${n}` } : { log: n, ok: true };
  }
  if (log.brokenAt !== undefined && n >= log.brokenAt) return { log: n, ok: false, why: `the store's checkpoint log breaks at entry ${log.brokenAt}, before the witnessed entry ${n}` };
  const held = log.kept.get(n);
  if (held === undefined) return { log: n, ok: false, why: `the store's checkpoint log ends at entry ${log.head ?? 0}: the witnessed entry ${n} is missing (the store was rolled back, replaced or emptied)` };
  if (held !== a.text) return { log: n, ok: false, why: `the store's entry ${n} differs from the witnessed one (the log was rewritten)` };
  return { log: n, ok: true };
}
