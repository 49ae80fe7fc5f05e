/** Reading the trail in commit order from a cursor, every record once, across writers. */
import { afterEach, describe, expect, it } from 'vitest';
import { appendAudit } from '../../../src/store/audit.js';
import { parseTailCursor, formatTailCursor, tailPage, TAIL_START, type TailCursor } from '../../../src/store/auditTail.js';
import type { Sql } from '../../../src/store/sql.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

async function drain(sql: Sql, from: TailCursor, page = 7): Promise<{ ids: string[]; cursor: TailCursor }> {
  const ids: string[] = [];
  let cursor = from;
  for (;;) {
    const rows = await tailPage(sql, cursor, page);
    for (const r of rows) ids.push(String((JSON.parse(r.body) as { id?: unknown }).id ?? r.event));
    if (rows.length === 0) return { ids, cursor };
    cursor = rows.at(-1)!.cursor;
  }
}

export function auditTailContract(make: MakeStore): void {
  describe('audit tail', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('gives every committed record once, in commit order, resuming from any cursor', async () => {
      const t = await make();
      const a = opened.add(t.store);
      const b = opened.add(await t.another());
      const start = (await drain(a.read, TAIL_START)).cursor; // past the store's creation record
      const written: string[] = [];
      for (let i = 0; i < 30; i++) {
        const id = `r${i}`;
        await (i % 3 ? a : b).transaction((tx) => appendAudit(tx, { event: 'release', id }, 1000 - i)); // times run backwards: order is commit order
        written.push(id);
      }
      const all = await drain(a.read, start);
      expect(all.ids).toEqual(written);
      const [firstPage] = [await tailPage(a.read, start, 12)];
      const resumed = await drain(b.read, parseTailCursor(formatTailCursor(firstPage!.at(-1)!.cursor))!);
      expect(resumed.ids).toEqual(written.slice(12));
      expect(await tailPage(a.read, all.cursor, 10)).toEqual([]);
    });

    it('a record committed late (its transaction began first) is not skipped', async () => {
      const t = await make();
      const a = opened.add(t.store);
      const b = opened.add(await t.another());
      const start = (await drain(a.read, TAIL_START)).cursor;
      if (a.read.dialect.name === 'sqlite') {
        // One writer at a time: a transaction that holds the lock makes the other wait, so commit order is insert order.
        await a.transaction((tx) => appendAudit(tx, { event: 'release', id: 'first' }, 1));
        await b.transaction((tx) => appendAudit(tx, { event: 'release', id: 'second' }, 2));
        expect((await drain(a.read, start)).ids).toEqual(['first', 'second']);
        return;
      }
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let inserted!: () => void;
      const insertedP = new Promise<void>((r) => (inserted = r));
      const slow = a.transaction(async (tx) => {
        await appendAudit(tx, { event: 'release', id: 'slow' }, 1);
        inserted();
        await held;
      });
      await insertedP;
      await b.transaction((tx) => appendAudit(tx, { event: 'release', id: 'fast' }, 2));
      // The fast record committed, but the slow transaction (an older id) is still open: nothing past it is given yet.
      const early = await drain(b.read, start);
      expect(early.ids).toEqual([]);
      release();
      await slow;
      expect((await drain(b.read, early.cursor)).ids).toEqual(['slow', 'fast']);
    });
  });
}
