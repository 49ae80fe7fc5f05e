/** Counters per (key, bucket): added in transactions, read by key and bucket range. */
import { afterEach, describe, expect, it } from 'vitest';
import { addCounters, addCountersReturning, readCounters } from '../../../src/store/counters.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

export function countersContract(make: MakeStore): void {
  describe('counters', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('adds per key and bucket, merges repeats, reads a bucket range in order', async () => {
      const { store } = await make();
      opened.add(store);
      await store.transaction((tx) => addCounters(tx, [{ key: 'refusals:a', bucket: 10 }, { key: 'refusals:a', bucket: 10 }, { key: 'refusals:a', bucket: 12, n: 5 }, { key: 'refusals:b', bucket: 10 }]));
      await store.transaction((tx) => addCounters(tx, [{ key: 'refusals:a', bucket: 10, n: 3 }, { key: 'refusals:a', bucket: 14 }]));
      expect(await readCounters(store.read, 'refusals:a', 10, 13)).toEqual([{ bucket: 10, count: 5 }, { bucket: 12, count: 5 }]);
      expect(await readCounters(store.read, 'refusals:b', 0, 100)).toEqual([{ bucket: 10, count: 1 }]);
      expect(await readCounters(store.read, 'refusals:c', 0, 100)).toEqual([]);
    });

    it('concurrent additions from two connections all count; a rolled-back one does not', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => addCounters(tx, [{ key: 'k', bucket: 1 }]))));
      await expect(t.store.transaction(async (tx) => {
        await addCounters(tx, [{ key: 'k', bucket: 1, n: 100 }]);
        throw new Error('rolled back');
      })).rejects.toThrow();
      expect(await readCounters(t.store.read, 'k', 1, 1)).toEqual([{ bucket: 1, count: 30 }]);
    });

    it('an addition returns the counts after it: of concurrent additions on two connections, exactly one sees each count', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      const seen = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => addCountersReturning(tx, [{ key: 'A:flood', bucket: 60_000 }, { key: 'A:other', bucket: 60_000, n: 2 }]))));
      expect(seen.map((r) => r.find((x) => x.key === 'A:flood')!.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
      expect(seen.every((r) => r.find((x) => x.key === 'A:other')!.count % 2 === 0)).toBe(true);
      expect(await readCounters(t.store.read, 'A:other', 0, 60_000)).toEqual([{ bucket: 60_000, count: 48 }]);
    });

    it('old buckets are purged in batches', async () => {
      const { store } = await make();
      opened.add(store);
      await store.transaction((tx) => addCounters(tx, Array.from({ length: 1500 }, (_, i) => ({ key: 'k', bucket: i }))));
      expect((await store.purge(1200)).counters).toBe(1200);
      expect((await readCounters(store.read, 'k', 0, 10_000)).map((r) => r.bucket)[0]).toBe(1200);
    });
  });
}
