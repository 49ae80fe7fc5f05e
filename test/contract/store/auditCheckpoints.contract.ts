/** The checkpoint log's rows, the writer-chain registry, this writer's committed heads, and the audit write probe. */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { appendAudit, GENESIS, probeAuditWrite } from '../../../src/store/audit.js';
import { insertEntry, lastCheckpointOf, lastWitnessed, logHead, markWitnessed, openChains, readLog, setChainsClosed, type LogEntry } from '../../../src/store/auditCheckpoints.js';
import type { MakeStore } from './harness.js';
import { headsOf, Opened } from './harness.js';

const entry = (n: number, chain: string, seq: number, at = 1000 + n): Omit<LogEntry, 'witnessedAt' | 'witnessedBy'> => ({
  n, kind: 'checkpoint', chainId: chain, seq, hash: 'ab'.repeat(32), at, text: `entry ${n}\n`, digest: 'cd'.repeat(32), sig: randomBytes(70), keyId: 'ef'.repeat(32),
});

export function auditCheckpointsContract(make: MakeStore): void {
  describe('audit checkpoint log', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('takes each position once; reads back in order; finds a chain\'s last checkpoint and the last witnessed entry', async () => {
      const t = await make();
      const a = opened.add(t.store);
      const b = opened.add(await t.another());
      expect(await logHead(a.read)).toBeUndefined();
      const e1 = entry(1, 'c1', 5);
      expect(await a.transaction((tx) => insertEntry(tx, e1))).toBe(true);
      expect(await b.transaction((tx) => insertEntry(tx, entry(1, 'c2', 9)))).toBe(false);
      expect(await b.transaction((tx) => insertEntry(tx, entry(2, 'c1', 8)))).toBe(true);
      expect(await a.transaction((tx) => insertEntry(tx, entry(3, 'c2', 2)))).toBe(true);
      expect(await logHead(a.read)).toEqual({ n: 3, text: 'entry 3\n' });
      const log: LogEntry[] = [];
      for await (const e of readLog(a.read, 2)) log.push(e);
      expect(log.map((e) => [e.n, e.chainId, e.seq])).toEqual([[1, 'c1', 5], [2, 'c1', 8], [3, 'c2', 2]]);
      expect(log[0]).toEqual(e1);
      expect((await lastCheckpointOf(a.read, 'c1'))?.n).toBe(2);
      expect(await lastWitnessed(a.read, 5000)).toBeUndefined();
      await a.transaction((tx) => markWitnessed(tx, 2, 'file:/w', 7000));
      await a.transaction((tx) => markWitnessed(tx, 2, 'webhook:https://w', 7001)); // the first witness stays
      expect(await lastWitnessed(a.read, 1001)).toBeUndefined();
      expect(await lastWitnessed(a.read, 5000)).toMatchObject({ n: 2, witnessedAt: 7000, witnessedBy: 'file:/w' });
    });

    it('registers a chain with its first record; chains are closed and opened again', async () => {
      const t = await make();
      const a = opened.add(t.store);
      const before = await openChains(a.read);
      await a.transaction((tx) => appendAudit(tx, { event: 'release' }, 1));
      await a.transaction((tx) => appendAudit(tx, { event: 'release' }, 2));
      const mine = headsOf(t, a).map((h) => h.chainId);
      expect((await openChains(a.read)).filter((c) => !before.includes(c))).toEqual(mine.filter((c) => !before.includes(c)));
      await a.transaction((tx) => setChainsClosed(tx, mine, 5));
      expect((await openChains(a.read)).filter((c) => mine.includes(c))).toEqual([]);
      await a.transaction((tx) => setChainsClosed(tx, mine, null));
      expect((await openChains(a.read)).filter((c) => mine.includes(c)).length).toBe(mine.length);
    });

    it('a writer\'s committed heads follow its commits only', async () => {
      const t = await make();
      const a = opened.add(t.store);
      const start = new Map(headsOf(t, a).map((h) => [h.chainId, h.seq]));
      const row = await a.transaction((tx) => appendAudit(tx, { event: 'release' }, 1));
      await expect(a.transaction(async (tx) => {
        await appendAudit(tx, { event: 'release' }, 2);
        throw new Error('rolled back');
      })).rejects.toThrow();
      const head = headsOf(t, a).find((h) => h.chainId === row.chainId)!;
      expect(head).toEqual({ chainId: row.chainId, seq: row.seq, hash: row.hash, live: true });
      expect(row.seq).toBe((start.get(row.chainId) ?? 0) + 1);
    });

    it('the audit write probe leaves nothing behind, and fails when records cannot be written', async () => {
      const t = await make();
      const a = opened.add(t.store);
      const count = async () => Number((await a.read.all('SELECT COUNT(*) AS n FROM audit'))[0]!.n);
      const before = await count();
      await probeAuditWrite((fn) => a.transaction(fn), 1);
      expect(await count()).toBe(before);
      await a.transaction((tx) => tx.run('ALTER TABLE audit RENAME TO audit_gone'));
      await expect(probeAuditWrite((fn) => a.transaction(fn), 1)).rejects.toMatchObject({ code: 'store_unavailable' });
      await a.transaction((tx) => tx.run('ALTER TABLE audit_gone RENAME TO audit'));
      expect(GENESIS).toHaveLength(64);
    });
  });
}
