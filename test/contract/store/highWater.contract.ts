/** The policy high-water mark: a compare-and-set that only moves forward, atomic across connections. */
import { afterEach, describe, expect, it } from 'vitest';
import { advanceHighWater, readHighWater, StoreHighWater } from '../../../src/store/highWater.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';
import { policyHighWaterContract } from '../policyHighWater.contract.js';

const d = (c: string) => c.repeat(64);

export function highWaterContract(make: MakeStore): void {
  describe('policy high-water mark', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('moves up, refuses rollback and a conflicting digest, accepts the same mark again', async () => {
      const { store } = await make();
      opened.add(store);
      const adv = (version: number, digest: string) => store.transaction((tx) => advanceHighWater(tx, { version, manifestSha256: digest }));
      expect(await readHighWater(store.read)).toBeUndefined();
      expect(await adv(3, d('a'))).toBe('ok');
      expect(await adv(3, d('a'))).toBe('ok');
      expect(await adv(3, d('b'))).toBe('conflict');
      expect(await adv(2, d('c'))).toBe('rollback');
      expect(await adv(5, d('e'))).toBe('ok');
      expect(await readHighWater(store.read)).toEqual({ version: 5, manifestSha256: d('e') });
    });

    it('through the PolicyHighWater seam, shared by two stores on one database', async () => {
      const t = await make();
      opened.add(t.store);
      const a = new StoreHighWater(t.store);
      const b = new StoreHighWater(opened.add(await t.another()));
      expect(await a.get()).toBeUndefined();
      expect(await a.advance({ version: 4, manifestSha256: d('a') })).toBe('ok');
      expect(await b.get()).toEqual({ version: 4, manifestSha256: d('a') });
      expect(await b.advance({ version: 3, manifestSha256: d('b') })).toBe('rollback');
      expect(await b.advance({ version: 4, manifestSha256: d('c') })).toBe('conflict');
      expect(await b.advance({ version: 6, manifestSha256: d('f') })).toBe('ok');
      expect(await a.get()).toEqual({ version: 6, manifestSha256: d('f') });
    });

    it('concurrent advances with different digests at one version: exactly one wins', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      const results = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((c, i) => (i % 2 ? t.store : other).transaction((tx) => advanceHighWater(tx, { version: 7, manifestSha256: d(c) }))));
      expect(results.filter((r) => r === 'ok')).toHaveLength(1);
      expect(results.filter((r) => r === 'conflict')).toHaveLength(5);
    });
  });

  // The same suite the file backend passes, on the store: each open() is another broker's handle.
  policyHighWaterContract('the state store', async () => {
    const t = await make();
    const opened = new Opened();
    opened.add(t.store);
    return {
      open: async () => new StoreHighWater(opened.add(await t.another())),
      cleanup: () => opened.closeAll(),
    };
  });
}

