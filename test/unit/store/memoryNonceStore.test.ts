/**
 * MemoryNonceStore: a nonce is fresh once, then replayed; late use is "expired" (once) and then
 * "replayed"; after the retention window it is forgotten; the map is capped, and stale entries
 * are swept to make room. Time is a ManualClock, never a sleep.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { createNonceStore } from '../../../src/store/index.js';
import { MemoryNonceStore } from '../../../src/store/memoryNonceStore.js';

const TTL = 60_000;
const RETAIN = 60_000;
const T0 = Date.UTC(2030, 0, 1);

function setup(max = 100) {
  return { store: new MemoryNonceStore(max, RETAIN), clock: new ManualClock(T0) };
}

describe('MemoryNonceStore', () => {
  it('issues a nonce once: a second issue of the same value is "exists"', async () => {
    const { store, clock } = setup();
    expect(await store.issue('n1', clock.now() + TTL, clock.now())).toBe('inserted');
    expect(await store.issue('n1', clock.now() + TTL, clock.now())).toBe('exists');
    expect(store.size).toBe(1);
  });

  it('is fresh once, then replayed', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    clock.advance(1_000);
    expect(await store.consume('n1', clock.now())).toBe('fresh');
    expect(await store.consume('n1', clock.now())).toBe('replayed');
    expect(await store.consume('n1', clock.now())).toBe('replayed');
  });

  it('is still fresh at the instant of expiry', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    clock.advance(TTL);
    expect(await store.consume('n1', clock.now())).toBe('fresh');
  });

  it('consumed after expiry is expired, then replayed', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    clock.advance(TTL + 1);
    expect(await store.consume('n1', clock.now())).toBe('expired');
    expect(await store.consume('n1', clock.now())).toBe('replayed');
  });

  it('a used nonce is replayed, not expired, when it comes back late', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    expect(await store.consume('n1', clock.now())).toBe('fresh');
    clock.advance(TTL + 1);
    expect(await store.consume('n1', clock.now())).toBe('replayed');
  });

  it('is unknown after the retention window, and when never issued', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    await store.issue('n2', clock.now() + TTL, clock.now());
    clock.advance(TTL + RETAIN);
    expect(await store.consume('n1', clock.now())).toBe('expired');
    clock.advance(1);
    expect(await store.consume('n2', clock.now())).toBe('unknown');
    expect(await store.consume('never-issued', clock.now())).toBe('unknown');
  });

  it('refuses new nonces at capacity', async () => {
    const { store, clock } = setup(3);
    for (const n of ['a', 'b', 'c']) expect(await store.issue(n, clock.now() + TTL, clock.now())).toBe('inserted');
    expect(await store.issue('d', clock.now() + TTL, clock.now())).toBe('capacity');
    // Consuming does not free room before retention ends: the entry must still answer "replayed".
    expect(await store.consume('a', clock.now())).toBe('fresh');
    clock.advance(TTL + RETAIN);
    expect(await store.issue('d', clock.now() + TTL, clock.now())).toBe('capacity');
    expect(store.size).toBe(3);
    expect(await store.consume('a', clock.now())).toBe('replayed');
  });

  it('sweeps entries past retention to make room, and keeps live ones', async () => {
    const { store, clock } = setup(3);
    await store.issue('old1', clock.now() + TTL, clock.now());
    await store.issue('old2', clock.now() + TTL, clock.now());
    clock.advance(TTL);
    await store.issue('live', clock.now() + TTL, clock.now());
    clock.advance(RETAIN + 1); // old1 and old2 are past retention, live is merely expired
    expect(await store.issue('new', clock.now() + TTL, clock.now())).toBe('inserted');
    expect(store.size).toBe(2);
    expect(await store.consume('old1', clock.now())).toBe('unknown');
    expect(await store.consume('live', clock.now())).toBe('expired');
    expect(await store.consume('new', clock.now())).toBe('fresh');
    expect(await store.issue('another', clock.now() + TTL, clock.now())).toBe('inserted');
    expect(await store.issue('too-many', clock.now() + TTL, clock.now())).toBe('capacity');
  });

  it('close forgets everything', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    await store.close();
    expect(store.size).toBe(0);
    expect(await store.consume('n1', clock.now())).toBe('unknown');
  });

  it('only one of many concurrent consumers sees fresh', async () => {
    const { store, clock } = setup();
    await store.issue('n1', clock.now() + TTL, clock.now());
    const results = await Promise.all(Array.from({ length: 20 }, () => store.consume('n1', clock.now())));
    expect(results.filter((r) => r === 'fresh')).toHaveLength(1);
    expect(results.filter((r) => r === 'replayed')).toHaveLength(19);
  });
});

describe('createNonceStore', () => {
  it('builds the memory store with the configured cap and the TTL as retention', async () => {
    const store = createNonceStore({ store: { kind: 'memory' }, nonce: { ttlSeconds: 5, maxOutstanding: 2 } });
    expect(store.kind).toBe('memory');
    const clock = new ManualClock(T0);
    await store.issue('a', clock.now() + 5_000, clock.now());
    await store.issue('b', clock.now() + 5_000, clock.now());
    expect(await store.issue('c', clock.now() + 5_000, clock.now())).toBe('capacity');
    clock.advance(10_000);
    expect(await store.consume('a', clock.now())).toBe('expired');
    clock.advance(1);
    expect(await store.consume('b', clock.now())).toBe('unknown');
  });
});
