/**
 * Retiring old records, without breaking verification. Records are retired only up to a
 * checkpoint-log entry a confirming witness holds (or one the operator hands in, as exported
 * elsewhere), so what is deleted stays fixed by something outside the store. In order:
 *
 * 1. the whole trail is verified with the store's own key: tampered history is never retired;
 * 2. each chain's cut is its last checkpoint at or before that entry;
 * 3. one transaction appends a signed anchor (the retired entry's position and digest, and the
 *    cut of every chain that goes on past its cut), deletes the log entries up to the retired one
 *    (the log then starts right after it, and `audit verify` accepts that start) and writes the
 *    `audit.prune` record (so the newest record is never one that is deleted: positions are not
 *    reused, auditSchema.ts);
 * 4. the records up to each cut are deleted with their search terms, newest first, in batches. A
 *    chain the anchor lists is verified from its cut, so records below the cut that a crash left
 *    behind are skipped; a chain retired whole keeps, after a crash, a prefix that verifies.
 */
import { createPublicKey } from 'node:crypto';
import { auditTerms } from '../store/auditTerms.js';
import { type LogEntry, lastWitnessed, logEntry } from '../store/auditCheckpoints.js';
import { num } from '../store/sql.js';
import { appendAudit } from '../store/audit.js';
import { appendLogEntry, type LogWriter } from './checkpointLog.js';
import type { ChainCut } from './checkpoint.js';
import { verifyTrail, type Against } from './verify.js';

const BATCH = 1000;

export class PruneRefused extends Error {
  constructor(
    readonly code: 'nothing_witnessed' | 'not_in_store' | 'trail_broken' | 'too_new',
    message: string,
  ) {
    super(message);
  }
}

export interface PruneResult {
  anchor: LogEntry;
  retiredThrough: number;
  /** Log entries and records deleted. */
  entries: number;
  records: number;
  chains: number;
}

/** The entry to retire through: the witnessed one handed in (it must be in the store), or the newest a witness confirmed. */
async function retirePoint(w: LogWriter, before: number, against: Against | undefined): Promise<LogEntry> {
  if (against) {
    const n = Number(/^log (\d+)$/m.exec(against.text)?.[1]);
    const held = Number.isSafeInteger(n) ? await logEntry(w.store.read, n) : undefined;
    if (!held || held.text !== against.text) throw new PruneRefused('not_in_store', `the store's checkpoint log does not hold the given checkpoint (entry ${n})`);
    if (held.at > before) throw new PruneRefused('too_new', `the given checkpoint (entry ${n}) was signed at ${new Date(held.at).toISOString()}, after ${new Date(before).toISOString()}`);
    return held;
  }
  const found = await lastWitnessed(w.store.read, before);
  if (!found) throw new PruneRefused('nothing_witnessed', `no checkpoint signed before ${new Date(before).toISOString()} has been witnessed (a file or webhook witness confirms it; or give one with --against)`);
  return found;
}

export async function pruneTrail(w: LogWriter, opts: { before: number; against?: Against; actor: string }): Promise<PruneResult> {
  const sql = w.store.read;
  const point = await retirePoint(w, opts.before, opts.against);
  const report = await verifyTrail(sql, { keys: [createPublicKey(w.signer.publicKeyPem)] });
  if (!report.intact) throw new PruneRefused('trail_broken', 'the trail does not verify (run `keyanchor audit verify`): nothing is retired');
  // Each chain's last checkpoint at or before the point, else the cut an earlier anchor gave it.
  const cuts = new Map<string, ChainCut>((report.log.anchor?.body.cuts ?? []).map((c) => [c.chain, c]));
  const later = new Set<string>();
  for (const [chain, list] of report.log.checkpoints) {
    for (const cp of list) {
      if (cp.n <= point.n && cp.seq > (cuts.get(chain)?.seq ?? 0)) cuts.set(chain, { chain, seq: cp.seq, hash: cp.hash });
      if (cp.n > point.n) later.add(chain);
    }
  }
  const goesOn = [...cuts.values()].filter((c) => later.has(c.chain) || (report.chains.find((r) => r.chainId === c.chain)?.last ?? 0) > c.seq);
  let planned = 0;
  for (const cut of cuts.values()) planned += num((await sql.all('SELECT COUNT(*) AS n FROM audit WHERE chain_id = $1 AND seq <= $2', [cut.chain, cut.seq]))[0]?.n);
  const anchor = await appendLogEntry(w, { kind: 'anchor', retired: { log: point.n, digest: point.digest }, cuts: goesOn }, async (tx) => {
    await tx.run('DELETE FROM audit_checkpoints WHERE n <= $1', [point.n]);
    await appendAudit(tx, { event: 'audit.prune', actor: opts.actor, before: new Date(opts.before).toISOString(), retiredThrough: point.n, chains: cuts.size, records: planned }, w.clock.now());
  });
  let records = 0;
  for (const cut of cuts.values()) records += await deleteThrough(w, cut);
  const whole = [...cuts.keys()].filter((c) => !goesOn.some((g) => g.chain === c));
  await w.store.transaction(async (tx) => {
    for (const chain of whole) await tx.run('DELETE FROM audit_chains WHERE chain_id = $1', [chain]);
  });
  return { anchor, retiredThrough: point.n, entries: point.n - (report.log.first ?? point.n) + 1, records, chains: cuts.size };
}

/** Deletes a chain's records up to `cut.seq` and their terms, newest first, a batch per transaction. */
async function deleteThrough(w: LogWriter, cut: ChainCut): Promise<number> {
  let deleted = 0;
  for (;;) {
    const n = await w.store.transaction(async (tx) => {
      const rows = await tx.all('SELECT seq, at, event, body FROM audit WHERE chain_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT $3', [cut.chain, cut.seq, BATCH]);
      for (const r of rows) {
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(String(r.body)) as Record<string, unknown>;
        } catch {
          /* an unreadable body has only its event term */
        }
        for (const t of auditTerms(String(r.event), body)) await tx.run('DELETE FROM audit_terms WHERE term = $1 AND at = $2 AND chain_id = $3 AND seq = $4', [t, num(r.at), cut.chain, num(r.seq)]);
      }
      if (rows.length) await tx.run('DELETE FROM audit WHERE chain_id = $1 AND seq <= $2 AND seq >= $3', [cut.chain, num(rows[0]!.seq), num(rows.at(-1)!.seq)]);
      return rows.length;
    });
    deleted += n;
    if (n < BATCH) return deleted;
  }
}
