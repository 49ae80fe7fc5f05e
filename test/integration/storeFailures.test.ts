/**
 * The SQLite store failing under a running broker, through HTTP: read-only (SQLite's query_only
 * on the broker's own connection), full (a real 8 MB tmpfs filled up), and locked by another
 * process past the busy timeout. Each gives `503 store_unavailable` and no key, `/readyz`
 * answers 503 while it lasts, and releases resume by themselves once it is over. (The same for a
 * stopped or locked PostgreSQL is in test/e2e/replicas.e2e.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;

beforeAll(async () => {
  w = await makeWorld({ configExtra: { store: { kind: 'sqlite', busyTimeoutMs: 200 } } });
  b = await assembleBroker(w.config);
  await b.keys.create(APP_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

async function attempt() {
  const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce as string;
  const { compact } = await makeEvidence(w, { nonce });
  return request(b.app).post('/v1/attest').send({ evidence: compact });
}

async function expectOutage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const r = await attempt();
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'store_unavailable' });
    expect(r.body.keys).toBeUndefined();
    expect(r.headers['retry-after']).toBe('1');
  }
  const ready = await request(b.app).get('/readyz');
  expect({ status: ready.status, code: ready.body.code }).toEqual({ status: 503, code: 'store_unavailable' });
}

async function expectRecovered(): Promise<void> {
  expect((await attempt()).status).toBe(200);
  expect((await request(b.app).get('/readyz')).status).toBe(200);
}

/**
 * The broker's own SQLite writer connection, reached past TypeScript's `private` (test only): a
 * pragma on it makes the store read-only or full under the running broker, and undoes it.
 */
const writer = (): Database.Database => (b.store as unknown as { driver: { writer: { db: Database.Database } } }).driver.writer.db;
const onWriter = (sql: string) => writer().exec(sql);

describe('the SQLite store fails under a running broker', () => {
  it('works to begin with', expectRecovered);

  it('read-only: 503 store_unavailable, not ready; writable again: releases resume', async () => {
    onWriter('PRAGMA query_only = ON');
    await expectOutage();
    onWriter('PRAGMA query_only = OFF');
    await expectRecovered();
  });

  it('full (the file system has no room: SQLITE_FULL): 503 store_unavailable, not ready; room again: releases resume', async () => {
    const mnt = mkdtempSync(path.join(tmpdir(), 'keyanchor-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      rmSync(mnt, { recursive: true, force: true });
      const msg = 'cannot mount a small tmpfs (needs root on Linux): the disk-full case cannot run';
      if (process.env.KEYANCHOR_REQUIRE_DEPS === '1') throw new Error(`${msg} (KEYANCHOR_REQUIRE_DEPS=1)`);
      console.warn(`\n*** SKIPPING: ${msg} ***\n`);
      return;
    }
    const w2 = await makeWorld({ configExtra: { stateDir: mnt } });
    const b2 = await assembleBroker(w2.config);
    try {
      await b2.keys.create(APP_KEY, 'test');
      const attempt2 = async () => {
        const nonce = (await request(b2.app).post('/v1/challenge').expect(200)).body.nonce as string;
        return request(b2.app).post('/v1/attest').send({ evidence: (await makeEvidence(w2, { nonce })).compact });
      };
      expect((await attempt2()).status).toBe(200);
      // Empty the WAL, so that the next commit must grow it; then fill the file system.
      (b2.store as unknown as { driver: { writer: { db: Database.Database } } }).driver.writer.db.pragma('wal_checkpoint(TRUNCATE)');
      const filler = path.join(mnt, 'filler');
      try {
        for (;;) appendFileSync(filler, Buffer.alloc(64 * 1024));
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      for (let i = 0; i < 3; i++) {
        const r = await attempt2();
        expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'store_unavailable' });
        expect(r.body.keys).toBeUndefined();
      }
      const ready = await request(b2.app).get('/readyz');
      expect({ status: ready.status, code: ready.body.code }).toEqual({ status: 503, code: 'store_unavailable' });
      rmSync(filler);
      expect((await attempt2()).status).toBe(200);
      expect((await request(b2.app).get('/readyz')).status).toBe(200);
    } finally {
      await b2.close();
      w2.cleanup();
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('locked by another process past the busy timeout: 503 store_unavailable, not ready; lock released: releases resume', async () => {
    const other = new Database(w.config.store.kind === 'sqlite' ? w.config.store.file : '');
    other.exec('BEGIN IMMEDIATE');
    try {
      await expectOutage();
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    await expectRecovered();
  });
});

describe('readiness proves custody can unwrap the store\'s keys', () => {
  it('a version whose blob no longer unwraps makes /readyz 503 custody_unavailable; fixed, ready again', async () => {
    const ok = await request(b.app).get('/readyz');
    expect(ok.status).toBe(200);
    const [row] = (await b.store.read.all('SELECT name, version, blob FROM key_versions WHERE blob IS NOT NULL ORDER BY created_at DESC LIMIT 1')) as Array<{ name: string; version: number; blob: Buffer }>;
    const flipped = Buffer.from(row!.blob);
    flipped[flipped.length - 1]! ^= 1;
    await b.store.transaction((tx) => tx.run('UPDATE key_versions SET blob = $3 WHERE name = $1 AND version = $2', [row!.name, row!.version, flipped]));
    const bad = await request(b.app).get('/readyz');
    expect({ status: bad.status, code: bad.body.code }).toEqual({ status: 503, code: 'custody_unavailable' });
    await b.store.transaction((tx) => tx.run('UPDATE key_versions SET blob = $3 WHERE name = $1 AND version = $2', [row!.name, row!.version, row!.blob]));
    expect((await request(b.app).get('/readyz')).status).toBe(200);
  });
});
