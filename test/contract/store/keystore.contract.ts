/** Keystore rows: keys, versions, states, wrapped blobs (erased on destroy), release statistics. */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { anyWrappedVersion, countRelease, insertKey, insertVersion, lockVersion, newestVersion, readKeys, readReleaseStats, resolveVersions, setVersionState, type StoredVersion } from '../../../src/store/keys.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

const v = (version: number, blob = randomBytes(60)): StoredVersion => ({
  version, state: 'enabled', createdAt: `2030-01-01T00:00:0${version}.000Z`, createdBy: 'alice', wrapped: { alg: 'software:A256GCM', kekId: 'sha256:00aa', blob },
});

export function keystoreContract(make: MakeStore): void {
  describe('keystore', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('stores keys and versions; reads them sorted, blobs only when asked', async () => {
      const { store } = await make();
      opened.add(store);
      const blob = randomBytes(60);
      await store.transaction(async (tx) => {
        expect(await insertKey(tx, { name: 'zeta/k', createdAt: 'c0', createdBy: 'alice' })).toBe(true);
        expect(await insertVersion(tx, 'zeta/k', v(1, blob))).toBe(true);
        expect(await insertKey(tx, { name: 'alpha/k', createdAt: 'c1', createdBy: 'bob' })).toBe(true);
        expect(await insertVersion(tx, 'alpha/k', v(1))).toBe(true);
        expect(await insertVersion(tx, 'alpha/k', v(2))).toBe(true);
      });
      const keys = await readKeys(store.read);
      expect(keys.map((k) => [k.name, k.versions.map((x) => x.version)])).toEqual([['alpha/k', [1, 2]], ['zeta/k', [1]]]);
      expect(keys[1]!.versions[0]).toEqual({ version: 1, state: 'enabled', createdAt: '2030-01-01T00:00:01.000Z', createdBy: 'alice' });
      const [z] = await readKeys(store.read, { names: ['zeta/k'], blobs: true });
      expect(z!.versions[0]!.wrapped).toEqual({ alg: 'software:A256GCM', kekId: 'sha256:00aa', blob });
      expect(await newestVersion(store.read, 'alpha/k')).toBe(2);
      expect(await newestVersion(store.read, 'none/k')).toBeUndefined();
    });

    it('a taken name or version number is refused, not overwritten', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      await t.store.transaction(async (tx) => {
        await insertKey(tx, { name: 'a/k', createdAt: 'c', createdBy: 'alice' });
        await insertVersion(tx, 'a/k', v(1));
      });
      const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => insertVersion(tx, 'a/k', v(2)))));
      expect(racers.filter(Boolean)).toHaveLength(1);
      expect(await t.store.transaction((tx) => insertKey(tx, { name: 'a/k', createdAt: 'x', createdBy: 'mallory' }))).toBe(false);
      expect((await readKeys(t.store.read))[0]!.createdBy).toBe('alice');
    });

    it('state changes record who and when; destroying erases the blob', async () => {
      const { store } = await make();
      opened.add(store);
      await store.transaction(async (tx) => {
        await insertKey(tx, { name: 'a/k', createdAt: 'c', createdBy: 'alice' });
        await insertVersion(tx, 'a/k', v(1));
        await insertVersion(tx, 'a/k', v(2));
      });
      await store.transaction((tx) => setVersionState(tx, 'a/k', 1, 'disabled', 't1', 'bob'));
      await store.transaction((tx) => setVersionState(tx, 'a/k', 2, 'destroyed', 't2', 'carol'));
      const [k] = await readKeys(store.read, { blobs: true });
      expect(k!.versions[0]).toMatchObject({ state: 'disabled', changedAt: 't1', changedBy: 'bob' });
      expect(k!.versions[0]!.wrapped).toBeDefined();
      expect(k!.versions[1]).toEqual({ version: 2, state: 'destroyed', createdAt: '2030-01-01T00:00:02.000Z', createdBy: 'alice', changedAt: 't2', changedBy: 'carol' });
      expect(await store.transaction((tx) => lockVersion(tx, 'a/k', 2))).toMatchObject({ state: 'destroyed' });
      const raw = await store.read.all("SELECT blob, kek_id FROM key_versions WHERE name = 'a/k' AND version = 2");
      expect(raw[0]).toEqual({ blob: null, kek_id: null });
    });

    it('resolves the newest enabled version, or the named one if enabled, inside a transaction', async () => {
      const { store } = await make();
      opened.add(store);
      await store.transaction(async (tx) => {
        await insertKey(tx, { name: 'a/k', createdAt: 'c', createdBy: 'alice' });
        for (const n of [1, 2, 3]) await insertVersion(tx, 'a/k', v(n));
      });
      await store.transaction((tx) => setVersionState(tx, 'a/k', 3, 'disabled', 't', 'bob'));
      const r = await store.transaction((tx) => resolveVersions(tx, [{ name: 'a/k' }, { name: 'a/k', version: 1 }, { name: 'a/k', version: 3 }, { name: 'none/k' }]));
      expect(r.map((x) => x?.version.version)).toEqual([2, 1, undefined, undefined]);
      expect(r[0]!.version.wrapped?.blob).toHaveLength(60);
      expect((await anyWrappedVersion(store.read))?.name).toBe('a/k');
    });

    it('counts releases per version: count, last time, node and software', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => countRelease(tx, [{ name: 'a/k', version: 1 }, { name: 'b/k', version: 4 }], `t${i}`, 'spiffe://n', ['app']))));
      await t.store.transaction((tx) => countRelease(tx, [{ name: 'a/k', version: 1 }], 'last', 'spiffe://n2', ['app', 'tools']));
      const stats = await readReleaseStats(t.store.read, ['a/k']);
      expect([...stats.keys()]).toEqual(['a/k']);
      expect(stats.get('a/k')!.get(1)).toEqual({ count: 11, lastAt: 'last', lastNode: 'spiffe://n2', lastSoftware: ['app', 'tools'] });
      expect((await readReleaseStats(t.store.read)).get('b/k')!.get(4)!.count).toBe(10);
    });
  });
}
