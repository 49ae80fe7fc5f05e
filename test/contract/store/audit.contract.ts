/** The audit rows: one hash chain per writer, advanced only by committed transactions. */
import { afterEach, describe, expect, it } from 'vitest';
import { appendAudit, auditChains, GENESIS, readChain, recordHash } from '../../../src/store/audit.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

export function auditContract(make: MakeStore): void {
  describe('audit', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    // The store's creation wrote a `store.migrate` record on a chain of its own (PostgreSQL) or on
    // the writer's chain (SQLite); these tests look at the records they write.
    const chains = async (sql: Parameters<typeof auditChains>[0]) => {
      const out = new Map<string, Array<{ seq: number; event: string }>>();
      for (const id of await auditChains(sql)) {
        let prev = GENESIS;
        const rows: Array<{ seq: number; event: string }> = [];
        for await (const r of readChain(sql, id, 7)) {
          expect(r.prev).toBe(prev);
          expect(r.hash).toBe(recordHash(r));
          prev = r.hash;
          rows.push({ seq: r.seq, event: r.event });
        }
        out.set(id, rows);
      }
      return out;
    };

    it('chains records per writer; a rolled-back record leaves no gap', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      for (let i = 0; i < 20; i++) {
        const s = i % 2 ? t.store : other;
        if (i % 5 === 4) {
          await expect(s.transaction(async (tx) => {
            await appendAudit(tx, { event: 'refusal', n: i }, 1000 + i);
            throw new Error('rolled back');
          })).rejects.toThrow();
        } else await s.transaction((tx) => appendAudit(tx, { event: 'release', n: i }, 1000 + i));
      }
      const all = await chains(t.store.read);
      for (const rows of all.values()) expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
      const records = [...all.values()].flat().filter((r) => r.event !== 'store.migrate');
      expect(records).toHaveLength(16);
      expect(new Set(records.map((r) => r.event))).toEqual(new Set(['release']));
    });

    it('concurrent writers on two connections keep every chain intact', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => appendAudit(tx, { event: 'release', i }, i))));
      const all = await chains(t.store.read);
      expect([...all.values()].flat().filter((r) => r.event === 'release')).toHaveLength(60);
    });

    it('an edited body breaks the hash', async () => {
      const { store } = await make();
      opened.add(store);
      await store.transaction((tx) => appendAudit(tx, { event: 'key.create', key: 'a/k', actor: 'alice' }, 5));
      await store.transaction((tx) => tx.run("UPDATE audit SET body = REPLACE(body, 'alice', 'mallory')"));
      let edited = 0;
      for (const id of await auditChains(store.read)) {
        for await (const r of readChain(store.read, id)) {
          if (r.event !== 'key.create') continue;
          expect(r.hash).not.toBe(recordHash(r));
          edited++;
        }
      }
      expect(edited).toBe(1);
    });
  });
}
