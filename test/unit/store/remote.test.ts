/**
 * The SQLite writer shared by worker processes (src/store/remote/) on a real SQLite file, over a
 * channel that serializes each message as a child process's IPC does: what a worker's failure, a
 * stalled worker, an unknown procedure and a gone writer do. (The store contract suites run
 * through it too: test/contract/store.sqliteWorkers.test.ts.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { BrokerError } from '../../../src/errors.js';
import { openStore, type StateStore } from '../../../src/store/index.js';
import { txProcedure } from '../../../src/store/procedures.js';
import { StoreHost } from '../../../src/store/remote/host.js';
import type { Channel } from '../../../src/store/remote/protocol.js';
import { channelPair } from '../../helpers/channels.js';

const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-remote-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const setMeta = txProcedure('test.remote.setMeta', async (tx, m: { name: string; value: string }) => {
  await tx.run('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [m.name, m.value]);
  return { stored: m.value, blob: Buffer.from(m.value) };
});
const refuse = txProcedure('test.remote.refuse', async (tx, code: 'rate_limited') => {
  await tx.run("INSERT INTO meta (name, value) VALUES ('refused', 'x')");
  throw new BrokerError(code, 'limit test', { retryAfterSeconds: 7 });
});

async function writerAndWorker(timeoutMs = 5000): Promise<{ writer: StateStore; worker: StateStore; channel: Channel; detach: () => void }> {
  const config = { kind: 'sqlite' as const, file: path.join(dir, `r${++n}.db`), synchronous: 'full' as const, busyTimeoutMs: 5000, changePollMs: 50 };
  const clock = new ManualClock(Date.now());
  const writer = await openStore(config, { clock, create: true });
  const [w, h] = channelPair();
  const detach = new StoreHost(writer, { interactiveTimeoutMs: timeoutMs }).attach(h);
  const worker = await openStore(config, { clock, writer: w });
  return { writer, worker, channel: w, detach };
}
const meta = async (s: StateStore, name: string) => (await s.read.all<{ value: string }>('SELECT value FROM meta WHERE name = $1', [name]))[0]?.value;

describe('a worker\'s store through the writer process', () => {
  it('a procedure runs in the writer: its result crosses back (Buffers stay Buffers), its BrokerError keeps code and Retry-After and rolls back', async () => {
    const { writer, worker, detach } = await writerAndWorker();
    const r = await worker.transaction(setMeta, { name: 'a', value: 'one' });
    expect(r.stored).toBe('one');
    expect(Buffer.isBuffer(r.blob) && r.blob.toString()).toBe('one');
    expect(await meta(worker, 'a')).toBe('one');
    const e = await worker.transaction(refuse, 'rate_limited').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BrokerError);
    expect({ code: (e as BrokerError).code, retry: (e as BrokerError).retryAfterSeconds }).toEqual({ code: 'rate_limited', retry: 7 });
    expect(await meta(writer, 'refused')).toBeUndefined();
    await worker.close();
    detach();
    await writer.close();
  });

  it('a procedure the writer does not know: store_unavailable, nothing written', async () => {
    const { writer, worker, detach } = await writerAndWorker();
    const e = await worker.transaction({ name: 'test.remote.nowhere', run: async () => 1 }, {}).catch((x: unknown) => x);
    expect((e as BrokerError).code).toBe('store_unavailable');
    expect((e as BrokerError).reason).toContain('no transaction procedure test.remote.nowhere');
    await worker.close();
    detach();
    await writer.close();
  });

  it('a closure that throws rolls back in the writer; its error is the cause, as with a local store', async () => {
    const { writer, worker, detach } = await writerAndWorker();
    class Mine extends Error {}
    const e = await worker.transaction(async (tx) => {
      await tx.run("INSERT INTO meta (name, value) VALUES ('closure', 'x')");
      throw new Mine('no');
    }).catch((x: unknown) => x);
    expect((e as BrokerError).code).toBe('store_unavailable');
    expect((e as BrokerError).cause).toBeInstanceOf(Mine);
    expect(await meta(writer, 'closure')).toBeUndefined();
    await worker.close();
    detach();
    await writer.close();
  });

  it('a worker that goes away in the middle of a closure: rolled back, and the writer serves others', async () => {
    const { writer, worker, detach } = await writerAndWorker();
    let inside!: () => void;
    const entered = new Promise<void>((r) => (inside = r));
    const pending = worker.transaction(async (tx) => {
      await tx.run("INSERT INTO meta (name, value) VALUES ('orphan', 'x')");
      inside();
      await new Promise(() => undefined); // the worker never finishes: it is killed
    });
    void pending.catch(() => undefined);
    await entered;
    detach();
    await writer.transaction((tx) => tx.run("INSERT INTO meta (name, value) VALUES ('after', 'y')"));
    expect(await meta(writer, 'orphan')).toBeUndefined();
    expect(await meta(writer, 'after')).toBe('y');
    await writer.close();
  });

  it('a closure stalled past the deadline is rolled back; its next statement fails', async () => {
    const { writer, worker, detach } = await writerAndWorker(100);
    let release!: () => void;
    let inside!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const entered = new Promise<void>((r) => (inside = r));
    const pending = worker.transaction(async (tx) => {
      await tx.run("INSERT INTO meta (name, value) VALUES ('stalled', 'x')");
      inside();
      await gate;
      await tx.run("INSERT INTO meta (name, value) VALUES ('late', 'x')");
    });
    await entered;
    // Another transaction waits behind the stalled one, and goes through once it is rolled back.
    await writer.transaction((tx) => tx.run("INSERT INTO meta (name, value) VALUES ('other', 'z')"));
    release();
    expect(((await pending.catch((x: unknown) => x)) as BrokerError).code).toBe('store_unavailable');
    expect(await meta(writer, 'stalled')).toBeUndefined();
    expect(await meta(writer, 'late')).toBeUndefined();
    expect(await meta(writer, 'other')).toBe('z');
    await worker.close();
    detach();
    await writer.close();
  });

  it('when the writer is gone, every waiting and later transaction is store_unavailable', async () => {
    const config = { kind: 'sqlite' as const, file: path.join(dir, `r${++n}.db`), synchronous: 'full' as const, busyTimeoutMs: 5000, changePollMs: 50 };
    const clock = new ManualClock(Date.now());
    const writer = await openStore(config, { clock, create: true });
    let closed!: () => void;
    const silent: Channel = { send: () => undefined, onMessage: () => () => undefined, onClose: (fn) => (closed = fn) };
    const worker = await openStore(config, { clock, writer: silent });
    const waiting = worker.transaction(setMeta, { name: 'b', value: 'two' });
    closed();
    expect(((await waiting.catch((x: unknown) => x)) as BrokerError).code).toBe('store_unavailable');
    expect(((await worker.transaction(setMeta, { name: 'c', value: 'three' }).catch((x: unknown) => x)) as BrokerError).code).toBe('store_unavailable');
    await worker.close();
    await writer.close();
  });
});
