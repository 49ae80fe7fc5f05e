/**
 * Verifies the audit trail in the store: every chain from its first record, a page at a time
 * (bounded memory at any length), recomputing each record's hash and its link to the previous one.
 */
import { auditChains, GENESIS, readChain, recordHash } from '../store/audit.js';
import type { Sql } from '../store/sql.js';

export interface ChainReport {
  chainId: string;
  records: number;
  lastHash: string;
  /** The first record that does not verify (its seq), if any. */
  brokenAt?: number;
  why?: string;
}

export interface TrailReport {
  chains: ChainReport[];
  records: number;
  events: Map<string, number>;
  intact: boolean;
}

export async function verifyTrail(sql: Sql): Promise<TrailReport> {
  const chains: ChainReport[] = [];
  const events = new Map<string, number>();
  let records = 0;
  for (const chainId of await auditChains(sql)) {
    const report: ChainReport = { chainId, records: 0, lastHash: GENESIS };
    for await (const r of readChain(sql, chainId)) {
      const why =
        r.seq !== report.records + 1 ? `expected seq ${report.records + 1}, found ${r.seq}` :
        r.prev !== report.lastHash ? 'its prev is not the hash of the record before it' :
        r.hash !== recordHash(r) ? 'its content does not match its hash' :
        (JSON.parse(r.body) as { event?: unknown }).event !== r.event ? 'its event column does not match its body' : undefined;
      if (why) {
        Object.assign(report, { brokenAt: report.records + 1, why });
        break;
      }
      report.records++;
      report.lastHash = r.hash;
      events.set(r.event, (events.get(r.event) ?? 0) + 1);
    }
    records += report.records;
    chains.push(report);
  }
  return { chains, records, events, intact: chains.every((c) => c.brokenAt === undefined) };
}
