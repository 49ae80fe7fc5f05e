/**
 * Sweeping a chain whose writer is gone (SIGKILLed, crashed) or is another process: its records
 * past the last checkpoint are read from the store and verified from that checkpoint (or the
 * prune anchor's cut, or the chain's start), and, if every link holds, their head is signed as a
 * `sweep` checkpoint. A sweep attests what the store held when it ran, nothing earlier: records
 * rewritten before a sweep with consistent hashes cannot be told apart (docs/operations.md).
 */
import { auditRecord, chainExtent, readChain, recordHash } from '../store/audit.js';
import type { Sql } from '../store/sql.js';
import { chainBase } from './checkpointLog.js';

export type SweepPlan =
  | { chain: string; action: 'none'; lastAt?: number }
  | { chain: string; action: 'wait'; lastAt: number }
  | { chain: string; action: 'sign'; seq: number; hash: string; lastAt: number }
  | { chain: string; action: 'refuse'; why: string };

/**
 * What a sweep of `chain` would sign, after checking its uncovered records link up; `wait` when
 * its last record is younger than `quietMs` (its writer may still be at work).
 */
export async function planSweep(sql: Sql, chain: string, now: number, quietMs: number): Promise<SweepPlan> {
  const extent = await chainExtent(sql, chain);
  if (!extent) return { chain, action: 'none' };
  const lastAt = (await auditRecord(sql, chain, extent.last))!.at;
  const base = await chainBase(sql, chain);
  if (extent.last <= base.seq) return { chain, action: 'none', lastAt };
  if (now - lastAt < quietMs) return { chain, action: 'wait', lastAt };
  let expect = base.seq + 1;
  let prev = base.hash;
  for await (const r of readChain(sql, chain, 1000, base.seq)) {
    const why =
      r.seq !== expect ? `expected record ${expect}, found ${r.seq}` :
      r.prev !== prev ? `record ${r.seq} does not link to the record before it (${expect === base.seq + 1 ? base.from : `record ${r.seq - 1}`})` :
      r.hash !== recordHash(r) ? `record ${r.seq}: its content does not match its hash` : undefined;
    if (why) return { chain, action: 'refuse', why };
    prev = r.hash;
    expect++;
  }
  return { chain, action: 'sign', seq: expect - 1, hash: prev, lastAt };
}
