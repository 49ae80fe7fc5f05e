/** The change feed: a change committed through one store reaches a watcher on another within the poll interval. */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChangeTopic } from '../../../src/store/sql.js';
import { suspend } from '../../../src/store/suspensions.js';
import { bumpChange } from '../../../src/store/changes.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

export function changesContract(make: MakeStore): void {
  describe('change feed', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('reports each committed change to watchers on another store, and nothing for a rollback', async () => {
      const t = await make();
      opened.add(t.store);
      const watcher = opened.add(await t.another());
      const seen: ChangeTopic[] = [];
      let wake: () => void = () => undefined;
      const stop = watcher.changes.watch((topic) => {
        seen.push(topic);
        wake();
      });
      const next = () => new Promise<void>((r) => (wake = r));
      await watcher.changes.poke(); // the baseline
      let arrived = next();
      await t.store.transaction((tx) => suspend(tx, { subject: 'zone:z1', reason: 'r', figures: {}, createdBy: 'test', createdAt: 1 }));
      await arrived;
      expect(seen).toEqual(['suspensions']);
      await expect(t.store.transaction(async (tx) => {
        await bumpChange(tx, 'keys');
        throw new Error('rolled back');
      })).rejects.toThrow();
      arrived = next();
      await t.store.transaction((tx) => bumpChange(tx, 'policy'));
      await arrived;
      expect(seen).toEqual(['suspensions', 'policy']);
      stop();
    });
  });
}
