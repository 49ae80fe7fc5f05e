/**
 * NonceService: 256-bit CSPRNG nonces, and the mapping of store answers to BrokerError codes
 * (and their HTTP status) that clients see.
 */
import { describe, expect, it } from 'vitest';
import { NonceService } from '../../../src/attestation/nonces.js';
import { ManualClock } from '../../../src/clock.js';
import { BrokerError } from '../../../src/errors.js';
import { MemoryNonceStore } from '../../../src/store/memoryNonceStore.js';
import type { NonceStore } from '../../../src/store/nonceStore.js';

const TTL = 30_000;

function setup(max = 1000) {
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  const store = new MemoryNonceStore(max, TTL);
  return { clock, store, nonces: new NonceService(store, clock, TTL) };
}

/** `{status, code}` of the BrokerError that `p` rejects with. */
async function failure(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  const e = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(BrokerError);
  return { status: (e as BrokerError).status, code: (e as BrokerError).code };
}

describe('NonceService.issue', () => {
  it('returns 32 random bytes as base64url, expiring one TTL from now', async () => {
    const { nonces, clock } = setup();
    const { nonce, expiresAt } = await nonces.issue();
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(nonce, 'base64url')).toHaveLength(32);
    expect(Buffer.from(nonce, 'base64url').toString('base64url')).toBe(nonce);
    expect(expiresAt).toBe(clock.now() + TTL);
  });

  it('never repeats a nonce', async () => {
    const { nonces } = setup();
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) seen.add((await nonces.issue()).nonce);
    expect(seen.size).toBe(500);
  });

  it('at capacity: challenge_capacity (503)', async () => {
    const { nonces } = setup(2);
    await nonces.issue();
    await nonces.issue();
    expect(await failure(nonces.issue())).toEqual({ status: 503, code: 'challenge_capacity' });
  });

  it('a duplicate from the store is an internal fault, not a silent reuse', async () => {
    const store: NonceStore = { kind: 'fake', issue: async () => 'exists', consume: async () => 'fresh', close: async () => {} };
    expect(await failure(new NonceService(store, new ManualClock(), TTL).issue())).toEqual({ status: 500, code: 'internal' });
  });
});

describe('NonceService.consume', () => {
  it('accepts a fresh nonce once, then nonce_replayed (401)', async () => {
    const { nonces } = setup();
    const { nonce } = await nonces.issue();
    await expect(nonces.consume(nonce)).resolves.toBeUndefined();
    expect(await failure(nonces.consume(nonce))).toEqual({ status: 401, code: 'nonce_replayed' });
  });

  it('after expiry: nonce_expired (401), then nonce_replayed', async () => {
    const { nonces, clock } = setup();
    const { nonce } = await nonces.issue();
    clock.advance(TTL + 1);
    expect(await failure(nonces.consume(nonce))).toEqual({ status: 401, code: 'nonce_expired' });
    expect(await failure(nonces.consume(nonce))).toEqual({ status: 401, code: 'nonce_replayed' });
  });

  it('never issued, or past retention: nonce_unknown (401)', async () => {
    const { nonces, clock } = setup();
    expect(await failure(nonces.consume('A'.repeat(43)))).toEqual({ status: 401, code: 'nonce_unknown' });
    const { nonce } = await nonces.issue();
    clock.advance(2 * TTL + 1);
    expect(await failure(nonces.consume(nonce))).toEqual({ status: 401, code: 'nonce_unknown' });
  });

  it('only one of concurrent consumers succeeds', async () => {
    const { nonces } = setup();
    const { nonce } = await nonces.issue();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => nonces.consume(nonce)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as BrokerError).code).toBe('nonce_replayed');
  });
});

describe('a failing store', () => {
  const boom = new Error('connection refused');
  const broken: NonceStore = {
    kind: 'broken',
    issue: async () => {
      throw boom;
    },
    consume: () => Promise.reject(boom),
    close: async () => {},
  };
  const nonces = new NonceService(broken, new ManualClock(), TTL);

  it('issue: store_unavailable (503), with the cause kept for the log', async () => {
    const e = await nonces.issue().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(BrokerError);
    expect({ status: (e as BrokerError).status, code: (e as BrokerError).code }).toEqual({ status: 503, code: 'store_unavailable' });
    expect((e as BrokerError).cause).toBe(boom);
    expect((e as BrokerError).message).not.toContain('connection refused');
  });

  it('consume: store_unavailable (503)', async () => {
    expect(await failure(nonces.consume('A'.repeat(43)))).toEqual({ status: 503, code: 'store_unavailable' });
  });

  it('a store that throws synchronously: store_unavailable too', async () => {
    const sync: NonceStore = {
      kind: 'sync',
      issue: () => {
        throw boom;
      },
      consume: () => {
        throw boom;
      },
      close: async () => {},
    };
    const s = new NonceService(sync, new ManualClock(), TTL);
    expect(await failure(s.issue())).toEqual({ status: 503, code: 'store_unavailable' });
    expect(await failure(s.consume('A'.repeat(43)))).toEqual({ status: 503, code: 'store_unavailable' });
  });
});
