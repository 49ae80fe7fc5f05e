/**
 * Witnesses with real parts: a checkpoint reaches a real HTTP receiver as a Standard Webhooks
 * `audit.checkpoint` event (verified by the independent `standardwebhooks` package) whose text and
 * signature verify with the audit key, and the store records that the webhook holds it; the file
 * witness appends one line per entry, closes a line a crash tore, and its newest entry is found
 * from the file's end; the log witness writes a line and never claims to hold anything.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../../src/audit/checkpointer.js';
import { auditStoreId } from '../../../src/audit/signingKey.js';
import { FileWitness, newestWitnessed } from '../../../src/audit/witness/fileWitness.js';
import { LogWitness } from '../../../src/audit/witness/logWitness.js';
import { WebhookWitness } from '../../../src/audit/witness/webhookWitness.js';
import { systemClock } from '../../../src/clock.js';
import { softwareAuditSigner } from '../../../src/custody/softwareAuditKey.js';
import { createLogger } from '../../../src/log.js';
import { Secret } from '../../../src/secret.js';
import { appendAudit } from '../../../src/store/audit.js';
import { readLog } from '../../../src/store/auditCheckpoints.js';
import { openStore, type StateStore } from '../../../src/store/index.js';
import { WebhookSender } from '../../../src/webhook/sender.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(): Promise<{ dir: string; store: StateStore }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-witness-'));
  const store = await openStore({ kind: 'sqlite', file: path.join(dir, 'keyanchor.db'), synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 }, { clock: systemClock, create: true });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => store.close());
  return { dir, store };
}

describe('audit witnesses', () => {
  it('a webhook receives each checkpoint, signed per Standard Webhooks; the entry verifies with the audit key; the store marks it witnessed', async () => {
    const { dir, store } = await setup();
    const got: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => {
        got.push({ headers: req.headers, body });
        res.statusCode = 204;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/witness`;
    const signer = softwareAuditSigner(dir, { create: true })!;
    const witness = new WebhookWitness(new WebhookSender({ url, secret: new Secret(SECRET), timeoutMs: 2000, maxQueue: 10, maxAttempts: 3, backoffMs: 10, maxBackoffMs: 20 }, systemClock), url);
    const cp = new Checkpointer({ store, signer, clock: systemClock, storeId: await auditStoreId(store), policy: () => null, everyRecords: 1000, everyMs: 60_000, sweepMs: 0, witnesses: [witness], onError: () => undefined });
    await store.transaction((tx) => appendAudit(tx, { event: 'release' }, Date.now()));
    const run = await cp.checkpointNow();
    await cp.close(5000);
    expect(got).toHaveLength(run.entries.length);
    const event = new Webhook(SECRET).verify(got[0]!.body, got[0]!.headers as Record<string, string>) as { type: string; data: { log: number; text: string; sig: string; key: string } };
    expect(event.type).toBe('audit.checkpoint');
    expect(event.data).toMatchObject({ log: run.entries[0]!.n, key: signer.keyId });
    expect(verify('sha256', Buffer.from(event.data.text), createPublicKey(signer.publicKeyPem), Buffer.from(event.data.sig, 'base64'))).toBe(true);
    const log = [];
    for await (const e of readLog(store.read)) log.push(e);
    expect(log.map((e) => e.witnessedBy)).toEqual(run.entries.map(() => `webhook:${url}`));
    expect(witness.stats()).toEqual({ sent: 1, witnessed: 1, failed: 0 });
  });

  it('the file witness appends a line per entry, closes a torn line first, and its newest entry is found from the end', async () => {
    const { dir } = await setup();
    const file = path.join(dir, 'witness.jsonl');
    const errors: unknown[] = [];
    const fw = new FileWitness(file, (e) => errors.push(e));
    const line = (log: number) => ({ log, kind: 'checkpoint' as const, text: `entry ${log}\n`, sig: 'c2ln', key: 'ab'.repeat(32) });
    let held = 0;
    fw.send(line(1), () => held++);
    await fw.close(2000);
    appendFileSync(file, '{"log":2,"kind":"checkp'); // a crash tore this one
    fw.send(line(3), () => held++);
    await fw.close(2000);
    expect(held).toBe(2);
    expect(errors).toEqual([]);
    expect(readFileSync(file, 'utf8').split('\n')).toEqual([JSON.stringify(line(1)), '{"log":2,"kind":"checkp', JSON.stringify(line(3)), '']);
    expect(await newestWitnessed(file)).toEqual(line(3));
    expect(await newestWitnessed(path.join(dir, 'none.jsonl'))).toBeUndefined();
    const bad = new FileWitness(path.join(dir, 'no', 'such', 'dir'), (e) => errors.push(e));
    bad.send(line(4), () => held++);
    await bad.close(2000);
    expect({ held, errors: errors.length, stats: bad.stats() }).toEqual({ held: 2, errors: 1, stats: { sent: 1, witnessed: 0, failed: 1 } });
  });

  it('the log witness writes one line per entry and never claims to hold it', () => {
    const lines: Array<Record<string, unknown>> = [];
    const lw = new LogWitness(createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) })));
    let held = 0;
    lw.send({ log: 7, kind: 'checkpoint', text: 'entry 7\n', sig: 'c2ln', key: 'ab'.repeat(32) }, () => held++);
    expect(lines[0]).toMatchObject({ msg: 'audit checkpoint', auditCheckpoint: { log: 7, text: 'entry 7\n' } });
    expect({ held, confirms: lw.confirms, stats: lw.stats() }).toEqual({ held: 0, confirms: false, stats: { sent: 1, witnessed: 0, failed: 0 } });
  });
});
