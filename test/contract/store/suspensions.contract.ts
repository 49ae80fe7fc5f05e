/** Suspensions: idempotent per subject, listed while active, cleared once, durable. */
import { afterEach, describe, expect, it } from 'vitest';
import { activeSuspensions, clearSuspension, suspend, suspensionsOf } from '../../../src/store/suspensions.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

export function suspensionsContract(make: MakeStore): void {
  describe('suspensions', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());
    const s = (subject: string, at = 1000) => ({ subject, reason: 'release rate over 100/min', figures: { count: 130, periodSeconds: 60 }, createdBy: 'alarm:payments-rate', createdAt: at });

    it('creates one suspension per subject however often, on however many connections', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => suspend(tx, s('software:payments', 1000 + i)))));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.suspension.id)).size).toBe(1);
      const active = await activeSuspensions(t.store.read);
      expect(active).toHaveLength(1);
      expect(active[0]).toMatchObject({ subject: 'software:payments', reason: 'release rate over 100/min', figures: { count: 130, periodSeconds: 60 }, createdBy: 'alarm:payments-rate' });
      expect(active[0]!.clearedAt).toBeUndefined();
    });

    it('clear lifts it (who, when) once; a new breach then makes a new one', async () => {
      const { store } = await make();
      opened.add(store);
      const first = await store.transaction((tx) => suspend(tx, s('node:n1')));
      await store.transaction((tx) => suspend(tx, s('zone:z1')));
      const cleared = await store.transaction((tx) => clearSuspension(tx, 'node:n1', 'cli:alice', 2000));
      expect(cleared).toMatchObject({ id: first.suspension.id, clearedBy: 'cli:alice', clearedAt: 2000 });
      expect(await store.transaction((tx) => clearSuspension(tx, 'node:n1', 'cli:alice', 2001))).toBeUndefined();
      expect((await activeSuspensions(store.read)).map((x) => x.subject)).toEqual(['zone:z1']);
      const again = await store.transaction((tx) => suspend(tx, s('node:n1', 3000)));
      expect(again.created).toBe(true);
      expect(again.suspension.id).not.toBe(first.suspension.id);
      // The subject's history, newest first: the active one, then the cleared one.
      const history = await suspensionsOf(store.read, 'node:n1');
      expect(history.map((x) => [x.id, x.clearedAt])).toEqual([[again.suspension.id, undefined], [first.suspension.id, 2000]]);
      expect(await suspensionsOf(store.read, 'node:never')).toEqual([]);
    });

    it('survives closing and reopening the store', async () => {
      const t = await make();
      await t.store.transaction((tx) => suspend(tx, s('key:payments/db')));
      await t.store.close();
      const reopened = opened.add(await t.another());
      expect((await activeSuspensions(reopened.read)).map((x) => x.subject)).toEqual(['key:payments/db']);
    });
  });
}
