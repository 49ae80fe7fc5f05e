/** The GCRA limits primitive: check-all-then-charge-all, atomic across connections. */
import { afterEach, describe, expect, it } from 'vitest';
import type { LimitWindow } from '../../../src/limits/gcra.js';
import { chargeAndCount } from '../../../src/store/controls.js';
import { readCounters } from '../../../src/store/counters.js';
import { chargeLimits } from '../../../src/store/limits.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

export function limitsContract(make: MakeStore): void {
  describe('limits', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());
    const T = 1_900_000_000_000;
    const perSecond: LimitWindow = { key: 'svc:a:1/s', limit: 2, periodMs: 1000 };
    const perMinute: LimitWindow = { key: 'svc:a:5/min', limit: 5, periodMs: 60_000 };

    it('allows the burst, then refuses with the exact wait; a refusal charges nothing', async () => {
      const { store } = await make();
      opened.add(store);
      const charge = (now: number, ws = [perSecond]) => store.transaction((tx) => chargeLimits(tx, ws, now));
      expect((await charge(T)).allowed).toBe(true);
      expect((await charge(T)).allowed).toBe(true);
      expect(await charge(T)).toEqual({ allowed: false, key: perSecond.key, retryAfterMs: 500 });
      expect(await charge(T + 499)).toEqual({ allowed: false, key: perSecond.key, retryAfterMs: 1 });
      expect((await charge(T + 500)).allowed).toBe(true);
    });

    it('if any window refuses, no window is charged', async () => {
      const { store } = await make();
      opened.add(store);
      const charge = (now: number, ws: LimitWindow[]) => store.transaction((tx) => chargeLimits(tx, ws, now));
      const tight: LimitWindow = { key: 'node:n1:1/h', limit: 1, periodMs: 3_600_000 };
      expect((await charge(T, [perMinute, tight])).allowed).toBe(true);
      // The tight window refuses: the per-minute window must not be charged for these attempts.
      for (let i = 0; i < 10; i++) expect((await charge(T, [perMinute, tight])).allowed).toBe(false);
      let passed = 0;
      for (let i = 0; i < 10; i++) if ((await charge(T, [perMinute])).allowed) passed++;
      expect(passed).toBe(4);
    });

    it('a window charged on one connection is seen by another; concurrent charges never pass the limit', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      const w: LimitWindow = { key: 'global:10/min', limit: 10, periodMs: 60_000 };
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => chargeLimits(tx, [w], T))));
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
    });

    it('a charge inside a transaction that rolls back is undone', async () => {
      const { store } = await make();
      opened.add(store);
      const w: LimitWindow = { key: 'k:1/min', limit: 1, periodMs: 60_000 };
      await expect(store.transaction(async (tx) => {
        expect((await chargeLimits(tx, [w], T)).allowed).toBe(true);
        throw new Error('custody refused');
      })).rejects.toThrow();
      expect((await store.transaction((tx) => chargeLimits(tx, [w], T))).allowed).toBe(true);
    });

    it('windows and alarm counts in one step: all or nothing, the counts after the addition, each count seen once across connections', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      const w: LimitWindow = { key: 'L:both:20/min', limit: 20, periodMs: 60_000 };
      const adds = [{ key: 'A:flood', bucket: 60_000 }, { key: 'A:flood@n1', bucket: 60_000 }];
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => chargeAndCount(tx, [w], adds, T))));
      const allowed = results.filter((r) => r.limits.allowed);
      expect(allowed).toHaveLength(20);
      expect(results.filter((r) => !r.limits.allowed).every((r) => r.counts.length === 0)).toBe(true);
      // Refused charges counted nothing: each allowed one saw a different count, 1 to 20.
      expect(allowed.map((r) => r.counts.find((c) => c.key === 'A:flood')!.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(await readCounters(t.store.read, 'A:flood@n1', 0, 60_000)).toEqual([{ bucket: 60_000, count: 20 }]);
      // Counts alone, and neither.
      expect((await t.store.transaction((tx) => chargeAndCount(tx, [], [{ key: 'A:flood', bucket: 60_000, n: 5 }], T))).counts).toEqual([{ key: 'A:flood', bucket: 60_000, count: 25 }]);
      expect(await t.store.transaction((tx) => chargeAndCount(tx, [], [], T))).toEqual({ limits: { allowed: true, tats: new Map() }, counts: [] });
    });

    it('idle windows are purged and count as idle', async () => {
      const { store, clock, clockIsInjected } = await make();
      opened.add(store);
      const now = clockIsInjected ? clock.now() : Date.now();
      const w: LimitWindow = { key: 'k:1/s', limit: 1, periodMs: 1000 };
      await store.transaction((tx) => chargeLimits(tx, [w], now - 5000));
      expect((await store.purge()).limits).toBe(1);
      expect((await store.transaction((tx) => chargeLimits(tx, [w], now - 4000))).allowed).toBe(true);
    });
  });
}
