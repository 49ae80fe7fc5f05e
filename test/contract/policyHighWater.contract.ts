/**
 * The PolicyHighWater contract: one suite that every backend of the policy high-water mark
 * passes against the real thing (a state directory on disk, a database). Run it from a
 * `policyHighWater.<backend>.test.ts`. `open()` gives a new handle on the same stored mark: a
 * restart, or another replica.
 */
import { describe, expect, it } from 'vitest';
import type { PolicyHighWater, PolicyMark } from '../../src/policy/highWater.js';

export interface HighWaterWorld {
  /** A new handle on the same store (another process or replica would open one like it). */
  open(): Promise<PolicyHighWater>;
  cleanup(): Promise<void>;
}

const digest = (c: string) => c.repeat(64);
const mark = (version: number, c = 'a', root?: string): PolicyMark => ({ version, manifestSha256: digest(c), ...(root !== undefined ? { root } : {}) });

export function policyHighWaterContract(name: string, makeWorld: () => Promise<HighWaterWorld>): void {
  describe(`PolicyHighWater contract: ${name}`, () => {
    const withWorld = (fn: (w: HighWaterWorld, hw: PolicyHighWater) => Promise<void>) => async () => {
      const w = await makeWorld();
      try {
        await fn(w, await w.open());
      } finally {
        await w.cleanup();
      }
    };

    it('starts empty', withWorld(async (_w, hw) => {
      expect(await hw.get()).toBeUndefined();
    }));

    it('accepts a first mark and returns it', withWorld(async (_w, hw) => {
      expect(await hw.advance(mark(3))).toBe('ok');
      expect(await hw.get()).toEqual(mark(3));
    }));

    it('a higher version replaces the mark', withWorld(async (_w, hw) => {
      await hw.advance(mark(3));
      expect(await hw.advance(mark(4, 'b'))).toBe('ok');
      expect(await hw.get()).toEqual(mark(4, 'b'));
    }));

    it('a lower version is a rollback and changes nothing', withWorld(async (_w, hw) => {
      await hw.advance(mark(5, 'a', 'root-5'));
      expect(await hw.advance(mark(4, 'b', 'root-4'))).toBe('rollback');
      expect(await hw.get()).toEqual(mark(5, 'a', 'root-5'));
    }));

    it('the same version with the same digest is ok and changes nothing (a restart reloads its bundle)', withWorld(async (_w, hw) => {
      await hw.advance(mark(5, 'a', 'root-5'));
      expect(await hw.advance(mark(5, 'a', 'root-5'))).toBe('ok');
      expect(await hw.get()).toEqual(mark(5, 'a', 'root-5'));
    }));

    it('the same version with another digest is a conflict and changes nothing', withWorld(async (_w, hw) => {
      await hw.advance(mark(5, 'a'));
      expect(await hw.advance(mark(5, 'b'))).toBe('conflict');
      expect(await hw.get()).toEqual(mark(5, 'a'));
    }));

    it('stores the root with the mark, and drops it when a later mark has none', withWorld(async (_w, hw) => {
      const root = JSON.stringify({ keys: ['x'.repeat(100)], threshold: 2 });
      await hw.advance(mark(1, 'a', root));
      expect((await hw.get())?.root).toBe(root);
      await hw.advance(mark(2, 'b'));
      expect(await hw.get()).toEqual(mark(2, 'b'));
    }));

    it('survives a restart: a new handle sees the mark and refuses a rollback', withWorld(async (w, hw) => {
      await hw.advance(mark(7, 'c', 'r'));
      const again = await w.open();
      expect(await again.get()).toEqual(mark(7, 'c', 'r'));
      expect(await again.advance(mark(6, 'd'))).toBe('rollback');
    }));

    it('is shared by replicas: one replica advancing makes the older bundle a rollback on the other', withWorld(async (w, a) => {
      const b = await w.open();
      expect(await a.advance(mark(1, 'a'))).toBe('ok');
      expect(await b.advance(mark(1, 'a'))).toBe('ok');
      expect(await a.advance(mark(2, 'b'))).toBe('ok');
      expect(await b.advance(mark(1, 'a'))).toBe('rollback');
      expect(await b.get()).toEqual(mark(2, 'b'));
    }));

    it('compare-and-set: of two replicas racing with different bundles under one version, exactly one wins', withWorld(async (w, a) => {
      const b = await w.open();
      const results = await Promise.all([...Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).advance(mark(9, i % 2 ? 'e' : 'f')))]);
      const winner = (await a.get())!.manifestSha256;
      const won = results.filter((r, i) => r === 'ok' && digest(i % 2 ? 'e' : 'f') === winner).length;
      expect(won).toBe(5);
      expect(results.filter((r) => r === 'conflict')).toHaveLength(5);
      expect(results.filter((r) => r === 'ok')).toHaveLength(5);
    }));

    it('racing versions end at the highest, and never move down', withWorld(async (w, a) => {
      const b = await w.open();
      const order = [3, 9, 1, 7, 5, 2, 8, 4, 6, 10];
      const results = await Promise.all(order.map((v, i) => (i % 2 ? a : b).advance(mark(v, String.fromCharCode(97 + (v % 6))))));
      expect((await b.get())!.version).toBe(10);
      expect(results[order.indexOf(10)]).toBe('ok');
      for (const r of results) expect(['ok', 'rollback']).toContain(r);
    }));

    it('refuses a malformed mark as a programming error', withWorld(async (_w, hw) => {
      await expect(hw.advance({ version: 0, manifestSha256: digest('a') })).rejects.toThrow(TypeError);
      await expect(hw.advance({ version: 1, manifestSha256: 'A'.repeat(64) })).rejects.toThrow(TypeError);
      expect(await hw.get()).toBeUndefined();
    }));
  });
}
