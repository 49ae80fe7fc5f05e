/**
 * Liveness: the broker never stays failed while `/readyz` says ready. Any audit write that fails
 * — records no longer insertable while the rest of the store takes writes, checkpoints that cannot
 * be stored, the store file removed under the running broker — makes it not ready at once (the
 * failure triggers a probe; no `/readyz` call needed), and it is ready again as soon as writes
 * succeed. Real SQLite store, real broker parts; the failures are made in SQL or on disk.
 */
import { renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { ManualClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World | undefined;
let b: Assembled | undefined;
afterEach(async () => {
  await b?.close().catch(() => undefined);
  b = undefined;
  w?.cleanup();
});

async function start(): Promise<{ b: Assembled; w: World; lines: Array<Record<string, unknown>>; clock: ManualClock }> {
  w = await makeWorld({ configExtra: { audit: { checkpoint: { everyRecords: 1, everySeconds: 3600, sweepSeconds: 0 } } } });
  const lines: Array<Record<string, unknown>> = [];
  const clock = new ManualClock(Date.now());
  b = await assembleBroker({ ...w.config, log: { level: 'info' } }, { clock, log: createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) })) });
  await b.keys.create(APP_KEY, 'test');
  return { b, w, lines, clock };
}

async function attempt(x: { b: Assembled; w: World; clock: ManualClock }) {
  const nonce = (await request(x.b.app).post('/v1/challenge').expect(200)).body.nonce as string;
  const { compact } = await makeEvidence(x.w, { nonce, iat: Math.floor(x.clock.now() / 1000) });
  return request(x.b.app).post('/v1/attest').send({ evidence: compact });
}

const readyz = async (x: { b: Assembled }) => {
  const r = await request(x.b.app).get('/readyz');
  return { status: r.status, code: r.body.code as string | undefined };
};

/** Waits (a few event-loop turns, no timer) for a log line. */
async function logged(lines: Array<Record<string, unknown>>, msg: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    const l = lines.find((x) => x.msg === msg);
    if (l) return l;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`no "${msg}" in the log`);
}

describe('audit liveness', () => {
  it('records that cannot be written (the rest of the store still takes writes): a release is refused and the broker is not ready until they can', async () => {
    const x = await start();
    expect(await readyz(x)).toEqual({ status: 200, code: undefined });
    await x.b.store.transaction((tx) => tx.run("CREATE TRIGGER no_records BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'records refused'); END"));
    const r = await attempt(x);
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'store_unavailable' });
    // The failed write made readiness probe at once: the log says so before anyone asks /readyz.
    expect(await logged(x.lines, 'not ready')).toMatchObject({ code: 'store_unavailable' });
    expect(await readyz(x)).toEqual({ status: 503, code: 'store_unavailable' });
    await x.b.store.transaction((tx) => tx.run('DROP TRIGGER no_records'));
    expect(await readyz(x)).toEqual({ status: 200, code: undefined });
    expect((await attempt(x)).status).toBe(200);
  });

  it('checkpoints that cannot be stored make the broker not ready until one is', async () => {
    const x = await start();
    await x.b.store.transaction((tx) => tx.run('ALTER TABLE audit_checkpoints RENAME TO audit_checkpoints_gone'));
    expect((await attempt(x)).status).toBe(200);
    await expect(x.b.audit.checkpointer.checkpointNow()).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(await readyz(x)).toEqual({ status: 503, code: 'store_unavailable' });
    expect(x.b.audit.checkpointer.metrics().find((m) => m.name === 'keyanchor_audit_checkpoint_failures_total')!.value).toBeGreaterThan(0);
    await x.b.store.transaction((tx) => tx.run('ALTER TABLE audit_checkpoints_gone RENAME TO audit_checkpoints'));
    const run = await x.b.audit.checkpointer.checkpointNow();
    expect(run.entries.length).toBeGreaterThan(0);
    expect(await readyz(x)).toEqual({ status: 200, code: undefined });
  });

  it('a broker does not start on a store that lacks the newest checkpoint its file witness has (a store deleted, replaced or rolled back)', async () => {
    w = await makeWorld({ configExtra: { audit: { witnesses: [{ kind: 'file', path: 'witness.jsonl' }] } } });
    b = await assembleBroker(w.config);
    await b.keys.create(APP_KEY, 'test');
    await b.close(); // the final checkpoint reaches the witness
    b = undefined;
    for (const f of ['keyanchor.db', 'keyanchor.db-wal', 'keyanchor.db-shm']) rmSync(path.join(w.stateDir, f), { force: true });
    await expect(assembleBroker(w.config)).rejects.toMatchObject({
      code: 'audit_witness_mismatch',
      message: expect.stringMatching(/^the store \S+ does not hold checkpoint-log entry \d+, the newest the witness \S+witness\.jsonl has: the store was replaced, emptied or rolled back since\./),
    });
    renameSync(path.join(w.dir, 'witness.jsonl'), path.join(w.dir, 'witness.old'));
    b = await assembleBroker(w.config); // moved aside on purpose: a new store, and a new witness file from here on
    expect((await request(b.app).get('/readyz')).status).toBe(200);
  });

  it('the store file removed under the running broker: nothing more is released into a file no one will open, and it is not ready', async () => {
    const x = await start();
    renameSync(path.join(x.w.stateDir, 'keyanchor.db'), path.join(x.w.stateDir, 'moved.db'));
    const r = await attempt(x);
    expect({ status: r.status, code: r.body.code, keys: r.body.keys }).toEqual({ status: 503, code: 'store_unavailable', keys: undefined });
    expect(await readyz(x)).toEqual({ status: 503, code: 'store_unavailable' });
    expect(x.lines.some((l) => String(l.reason ?? '').includes('was removed while open'))).toBe(true);
    renameSync(path.join(x.w.stateDir, 'moved.db'), path.join(x.w.stateDir, 'keyanchor.db'));
    expect(await readyz(x)).toEqual({ status: 200, code: undefined });
  });
});
