/**
 * Nonce tokens and NonceService: a challenge stores nothing; the token proves which broker store
 * issued it and until when it is good; the cheap check maps failures to the codes clients see; the
 * consumption in a store transaction is one attempt per nonce (against a real SQLite store).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintNonce, NONCE_TOKEN_BYTES, openNonce } from '../../../src/attestation/nonceToken.js';
import { NonceService } from '../../../src/attestation/nonces.js';
import { ManualClock } from '../../../src/clock.js';
import { BrokerError } from '../../../src/errors.js';
import { NonceString } from '../../../src/protocol.js';
import { openStore, type StateStore } from '../../../src/store/index.js';

const TTL = 30_000;
const KEY = randomBytes(32);

function setup() {
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  return { clock, nonces: new NonceService(KEY, clock, TTL) };
}

function failure(f: () => unknown): { status: number; code: string } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError);
    return { status: (e as BrokerError).status, code: (e as BrokerError).code };
  }
  throw new Error('expected a BrokerError');
}

async function failureOf(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(BrokerError);
  return { status: (e as BrokerError).status, code: (e as BrokerError).code };
}

describe('nonce tokens', () => {
  it('are 57 bytes of base64url the wire schema accepts, and open to their id and expiry', () => {
    const id = randomBytes(16);
    const t = mintNonce(KEY, 1_900_000_000_123, id);
    expect(t).toMatch(/^[A-Za-z0-9_-]{76}$/);
    expect(Buffer.from(t, 'base64url')).toHaveLength(NONCE_TOKEN_BYTES);
    expect(NonceString.safeParse(t).success).toBe(true);
    expect(openNonce(KEY, t)).toEqual({ id, expiresAt: 1_900_000_000_123 });
  });

  it('are refused under another key, with any byte changed, truncated, extended or re-encoded', () => {
    const t = mintNonce(KEY, 1_900_000_000_000, randomBytes(16));
    const raw = Buffer.from(t, 'base64url');
    expect(openNonce(randomBytes(32), t)).toBeUndefined();
    for (let i = 0; i < raw.length; i++) {
      const bad = Buffer.from(raw);
      bad[i]! ^= 0x01;
      expect(openNonce(KEY, bad.toString('base64url')), `byte ${i}`).toBeUndefined();
    }
    expect(openNonce(KEY, raw.subarray(0, -1).toString('base64url'))).toBeUndefined();
    expect(openNonce(KEY, Buffer.concat([raw, Buffer.of(0)]).toString('base64url'))).toBeUndefined();
    expect(openNonce(KEY, `${t}=`)).toBeUndefined();
    expect(openNonce(KEY, `${t.slice(0, 10)}+${t.slice(11)}`)).toBeUndefined();
    expect(openNonce(KEY, 'A'.repeat(43))).toBeUndefined();
  });

  it('the MAC is HMAC-SHA256 over version, expiry and id (an independent computation agrees)', () => {
    const id = randomBytes(16);
    const raw = Buffer.from(mintNonce(KEY, 42, id), 'base64url');
    const body = Buffer.concat([Buffer.of(1), Buffer.from('000000000000002a', 'hex'), id]);
    expect(raw.subarray(0, 25).equals(body)).toBe(true);
    expect(raw.subarray(25).equals(createHmac('sha256', KEY).update(body).digest())).toBe(true);
  });
});

describe('NonceService.issue and check', () => {
  it('issues a token good for one TTL from now, never the same twice', () => {
    const { nonces, clock } = setup();
    const { nonce, expiresAt } = nonces.issue();
    expect(expiresAt).toBe(clock.now() + TTL);
    expect(nonces.check(nonce).expiresAt).toBe(expiresAt);
    const seen = new Set(Array.from({ length: 500 }, () => nonces.issue().nonce));
    expect(seen.size).toBe(500);
  });

  it('good up to and including its expiry instant, then nonce_expired (401) for as long as the key stands', () => {
    const { nonces, clock } = setup();
    const { nonce } = nonces.issue();
    clock.advance(TTL);
    expect(() => nonces.check(nonce)).not.toThrow();
    clock.advance(1);
    expect(failure(() => nonces.check(nonce))).toEqual({ status: 401, code: 'nonce_expired' });
    clock.advance(365 * 86_400_000);
    expect(failure(() => nonces.check(nonce))).toEqual({ status: 401, code: 'nonce_expired' });
  });

  it('a nonce no broker of this store issued: nonce_unknown (401)', () => {
    const { nonces, clock } = setup();
    const other = new NonceService(randomBytes(32), clock, TTL);
    expect(failure(() => nonces.check(other.issue().nonce))).toEqual({ status: 401, code: 'nonce_unknown' });
    expect(failure(() => nonces.check('A'.repeat(43)))).toEqual({ status: 401, code: 'nonce_unknown' });
  });
});

describe('NonceService.consume (real SQLite store)', () => {
  let dir: string;
  let store: StateStore;
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-nonces-'));
    store = await openStore({ kind: 'sqlite', file: path.join(dir, 's.db'), synchronous: 'normal', busyTimeoutMs: 1000, changePollMs: 500 }, { clock, create: true });
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the first use consumes it; any later one is nonce_replayed (401)', async () => {
    const nonces = new NonceService(KEY, clock, TTL);
    const claims = nonces.check(nonces.issue().nonce);
    await store.transaction((tx) => nonces.consume(tx, claims));
    expect(await failureOf(store.transaction((tx) => nonces.consume(tx, claims)))).toEqual({ status: 401, code: 'nonce_replayed' });
  });

  it('of concurrent consumers exactly one succeeds', async () => {
    const nonces = new NonceService(KEY, clock, TTL);
    const claims = nonces.check(nonces.issue().nonce);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => store.transaction((tx) => nonces.consume(tx, claims))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as BrokerError).code).toBe('nonce_replayed');
  });

  it('expired by the store clock at consumption: nonce_expired, and nothing consumed', async () => {
    const nonces = new NonceService(KEY, clock, TTL);
    const claims = nonces.check(nonces.issue().nonce);
    clock.advance(TTL + 1);
    try {
      expect(await failureOf(store.transaction((tx) => nonces.consume(tx, claims)))).toEqual({ status: 401, code: 'nonce_expired' });
    } finally {
      clock.advance(-TTL - 1);
    }
    await store.transaction((tx) => nonces.consume(tx, claims));
  });

  it('a store that fails: store_unavailable (503), with the cause kept for the log', async () => {
    const nonces = new NonceService(KEY, clock, TTL);
    const claims = nonces.check(nonces.issue().nonce);
    const broken = await openStore({ kind: 'sqlite', file: path.join(dir, 'b.db'), synchronous: 'normal', busyTimeoutMs: 1000, changePollMs: 500 }, { clock, create: true });
    await broken.transaction((tx) => tx.run('DROP TABLE consumed_nonces'));
    const e = await broken.transaction((tx) => nonces.consume(tx, claims)).catch((err: unknown) => err);
    await broken.close();
    expect(e).toBeInstanceOf(BrokerError);
    expect({ status: (e as BrokerError).status, code: (e as BrokerError).code }).toEqual({ status: 503, code: 'store_unavailable' });
    expect(String((e as BrokerError).cause)).toContain('consumed_nonces');
    expect((e as BrokerError).message).not.toContain('consumed_nonces');
  });
});
