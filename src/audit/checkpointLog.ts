/**
 * Appending to the signed checkpoint log: read the head, sign the next entry, insert it at the
 * next position unless another writer took it (then read the new head and sign again). Nothing is
 * signed inside a transaction or under a lock, so an HSM's signing time never holds up releases.
 */
import type { Clock } from '../clock.js';
import type { AuditSigner } from '../custody/auditSigner.js';
import { GENESIS } from '../store/audit.js';
import { insertEntry, lastAnchor, lastCheckpointOf, logHead, type LogEntry } from '../store/auditCheckpoints.js';
import type { Sql, TxSql } from '../store/sql.js';
import type { StateStore } from '../store/stateStore.js';
import { entryDigest, formatEntry, parseEntry, type AnchorBody, type CheckpointBody, type EntryBody } from './checkpoint.js';

/** Lost races for one position before giving up (each costs one signature). */
const ATTEMPTS = 16;

export interface LogWriter {
  store: StateStore;
  signer: AuditSigner;
  clock: Clock;
  /** The store's audit id (meta `audit_store_id`). */
  storeId: string;
}

type Unplaced<T> = T extends EntryBody ? Omit<T, 'store' | 'log' | 'prev' | 'time' | 'key'> : never;

export class CheckpointRaceError extends Error {}

/**
 * Signs `body` at the next log position and inserts it; `also` runs in the same transaction (it
 * runs only if the entry went in). Returns the entry as stored.
 */
export async function appendLogEntry(w: LogWriter, body: Unplaced<CheckpointBody> | Unplaced<AnchorBody>, also?: (tx: TxSql) => Promise<void>): Promise<LogEntry> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const head = await logHead(w.store.read);
    const time = w.clock.now();
    const full = { ...body, store: w.storeId, log: (head?.n ?? 0) + 1, prev: head ? entryDigest(head.text) : GENESIS, time, key: w.signer.keyId } as EntryBody;
    const text = formatEntry(full);
    const entry: LogEntry = {
      n: full.log, kind: full.kind, at: time, text, digest: entryDigest(text), sig: await w.signer.sign(Buffer.from(text)), keyId: w.signer.keyId,
      ...(full.kind === 'checkpoint' ? { chainId: full.chain, seq: full.seq, hash: full.hash } : {}),
    };
    const placed = await w.store.transaction(async (tx) => {
      if (!(await insertEntry(tx, entry))) return false;
      await also?.(tx);
      return true;
    });
    if (placed) return entry;
  }
  throw new CheckpointRaceError(`another writer took the next checkpoint position ${ATTEMPTS} times in a row`);
}

/**
 * Where a chain's verified records start being covered: its last checkpoint, else the cut the
 * newest prune anchor gives for it, else the beginning (seq 0, the genesis hash).
 */
export async function chainBase(sql: Sql, chainId: string): Promise<{ seq: number; hash: string; from: string }> {
  const cp = await lastCheckpointOf(sql, chainId);
  if (cp) return { seq: cp.seq!, hash: cp.hash!, from: `checkpoint ${cp.n}` };
  const anchor = await lastAnchor(sql);
  if (anchor) {
    const body = parseEntry(anchor.text);
    const cut = body.kind === 'anchor' ? body.cuts.find((c) => c.chain === chainId) : undefined;
    if (cut) return { seq: cut.seq, hash: cut.hash, from: `anchor ${anchor.n}` };
  }
  return { seq: 0, hash: GENESIS, from: 'the chain start' };
}
