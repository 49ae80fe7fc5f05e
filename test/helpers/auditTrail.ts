/**
 * An audit trail to check and tamper with: a real store, the software audit signing key (made at
 * test time in a temp directory), a checkpointer with a file witness, and the tampering an
 * attacker with write access to the store could do, in plain SQL on either backend.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Checkpointer } from '../../src/audit/checkpointer.js';
import type { LogWriter } from '../../src/audit/checkpointLog.js';
import { auditStoreId } from '../../src/audit/signingKey.js';
import { verifyTrail, type Against, type TrailReport } from '../../src/audit/verify.js';
import { FileWitness } from '../../src/audit/witness/fileWitness.js';
import type { ManualClock } from '../../src/clock.js';
import type { AuditSigner } from '../../src/custody/auditSigner.js';
import { softwareAuditSigner } from '../../src/custody/softwareAuditKey.js';
import { appendAudit, recordHash } from '../../src/store/audit.js';
import { indexAudit } from '../../src/store/auditIndex.js';
import type { StateStore } from '../../src/store/stateStore.js';

export interface Trail {
  store: StateStore;
  clock: ManualClock;
  signer: AuditSigner;
  key: KeyObject;
  writer: LogWriter;
  checkpointer: Checkpointer;
  witnessFile: string;
  /** The newest entry the witness file holds. */
  witnessed(): Against;
  verify(o?: { keys?: KeyObject[]; against?: Against }): Promise<TrailReport>;
  /** Appends `n` records on this writer's chain (and indexes them for search); returns the chain id. */
  write(n: number, event?: string): Promise<string>;
  cleanup(): void;
}

export async function makeTrail(store: StateStore, clock: ManualClock, o: { everyRecords?: number; dir?: string; witness?: boolean } = {}): Promise<Trail> {
  const dir = o.dir ?? mkdtempSync(path.join(tmpdir(), 'keyanchor-trail-'));
  const signer = softwareAuditSigner(dir, { create: true })!;
  const witnessFile = path.join(dir, 'witness.jsonl');
  const writer: LogWriter = { store, signer, clock, storeId: await auditStoreId(store) };
  const checkpointer = new Checkpointer({
    ...writer, policy: () => ({ version: 3, manifestSha256: 'ab'.repeat(32) }), everyRecords: o.everyRecords ?? 1000, everyMs: 60_000, sweepMs: 0,
    witnesses: o.witness === false ? [] : [new FileWitness(witnessFile, (e) => { throw e; })], onError: () => undefined,
  });
  const key = createPublicKey(signer.publicKeyPem);
  let n = 0;
  return {
    store, clock, signer, key, writer, checkpointer, witnessFile,
    witnessed: () => {
      const lines = readFileSync(witnessFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; sig: string; log: number });
      const last = lines.reduce((a, b) => (b.log > a.log ? b : a));
      return { text: last.text, sig: Buffer.from(last.sig, 'base64') };
    },
    verify: (v = {}) => verifyTrail(store.read, { keys: v.keys ?? [key], ...(v.against ? { against: v.against } : {}) }),
    write: async (count, event = 'release') => {
      let chain = '';
      for (let i = 0; i < count; i++) {
        clock.advance(1000);
        const row = await store.transaction((tx) => appendAudit(tx, { event, n: ++n, requested: [{ name: `team/k${n % 3}` }] }, clock.now()));
        chain = row.chainId;
      }
      await indexAudit(store.read, (fn) => store.transaction(fn));
      return chain;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Rewrites a chain's records from `from` on so that every link and hash agrees again (what an attacker without the signing key can do). */
export async function rehashFrom(store: StateStore, chain: string, from: number): Promise<void> {
  const rows = await store.read.all('SELECT seq, at, prev, body FROM audit WHERE chain_id = $1 AND seq >= $2 ORDER BY seq', [chain, from - 1]);
  let prev = String(rows[0]!.prev);
  await store.transaction(async (tx) => {
    for (const r of rows) {
      const seq = Number(r.seq);
      if (seq < from) {
        prev = recordHash({ chainId: chain, seq, at: Number(r.at), prev: String(r.prev), body: String(r.body) });
        continue;
      }
      const hash = recordHash({ chainId: chain, seq, at: Number(r.at), prev, body: String(r.body) });
      await tx.run('UPDATE audit SET prev = $1, hash = $2 WHERE chain_id = $3 AND seq = $4', [prev, hash, chain, seq]);
      prev = hash;
    }
  });
}
