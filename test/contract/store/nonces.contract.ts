/** Consumed nonces: exactly one consumer ever, across connections; expiry by the store's clock; bounded purge. */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { consumeNonce, countConsumed } from '../../../src/store/nonces.js';
import { NONCE_PURGE_GRACE_MS } from '../../../src/store/stateStore.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

export function nonceContract(make: MakeStore): void {
  describe('nonces', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('a nonce is consumed once, then replayed', async () => {
      const { store } = await make();
      opened.add(store);
      const id = randomBytes(16);
      const exp = Date.now() + 60_000;
      expect(await store.transaction((tx) => consumeNonce(tx, id, exp))).toBe('consumed');
      expect(await store.transaction((tx) => consumeNonce(tx, id, exp))).toBe('replayed');
      expect(await store.transaction((tx) => consumeNonce(tx, randomBytes(16), exp))).toBe('consumed');
    });

    it('past its expiry (store clock) it is expired and nothing is recorded', async () => {
      const { store, clock } = await make();
      opened.add(store);
      const exp = Math.min(clock.now(), Date.now()) - 1;
      expect(await store.transaction((tx) => consumeNonce(tx, randomBytes(16), exp))).toBe('expired');
      expect(await countConsumed(store.read)).toBe(0);
    });

    it('a rolled-back transaction consumes nothing', async () => {
      const { store } = await make();
      opened.add(store);
      const id = randomBytes(16);
      const exp = Date.now() + 60_000;
      await expect(store.transaction(async (tx) => {
        await consumeNonce(tx, id, exp);
        throw new Error('a later step refused');
      })).rejects.toThrow();
      expect(await store.transaction((tx) => consumeNonce(tx, id, exp))).toBe('consumed');
    });

    it('of 40 concurrent consumers on two connections, exactly one consumes', async () => {
      const t = await make();
      opened.add(t.store);
      const other = opened.add(await t.another());
      const id = randomBytes(16);
      const exp = Date.now() + 60_000;
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? t.store : other).transaction((tx) => consumeNonce(tx, id, exp))));
      expect(results.filter((r) => r === 'consumed')).toHaveLength(1);
      expect(results.filter((r) => r === 'replayed')).toHaveLength(39);
    });

    it('purges consumed nonces only once they are past expiry and the grace period, in batches', async () => {
      const { store, clock, clockIsInjected } = await make();
      opened.add(store);
      const now = clockIsInjected ? clock.now() : Date.now();
      const stale = Array.from({ length: 1205 }, () => randomBytes(16));
      // Rows as consumption leaves them (consumption itself refuses an expired nonce).
      for (let i = 0; i < stale.length; i += 400) {
        await store.transaction(async (tx) => {
          for (const id of stale.slice(i, i + 400)) await tx.run('INSERT INTO consumed_nonces (nonce, expires_at) VALUES ($1, $2)', [id, now - NONCE_PURGE_GRACE_MS - 10_000]);
        });
      }
      const recent = randomBytes(16);
      await store.transaction((tx) => tx.run('INSERT INTO consumed_nonces (nonce, expires_at) VALUES ($1, $2)', [recent, now - 1000]));
      const live = randomBytes(16);
      await store.transaction((tx) => consumeNonce(tx, live, now + 60_000));
      expect((await store.purge()).nonces).toBe(1205);
      expect(await countConsumed(store.read)).toBe(2);
      // The one still inside its grace period is still consumed.
      expect(await store.transaction((tx) => consumeNonce(tx, live, now + 60_000))).toBe('replayed');
    });
  });
}
