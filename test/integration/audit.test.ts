/** The audit trail: written before keys leave, hash-chained, and fail-closed when unwritable. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { FileAuditLog, AuditChainError, verifyChain } from '../../src/audit/fileAuditLog.js';
import { assembleBroker } from '../../src/broker.js';
import { systemClock } from '../../src/clock.js';
import { APP_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

let w: World | undefined;
afterEach(() => w?.cleanup());

const auditFile = (w: World) => path.join(w.stateDir, 'audit.jsonl');

async function attestOnce(app: Parameters<typeof request>[0], world: World) {
  const nonce = (await request(app).post('/v1/challenge').expect(200)).body.nonce;
  const { compact } = await makeEvidence(world, { nonce });
  return request(app).post('/v1/attest').send({ evidence: compact });
}

describe('audit trail', () => {
  it('records releases, refusals and lifecycle operations in one verified hash chain', async () => {
    w = await makeWorld();
    const b = await assembleBroker(w.config);
    await b.keys.create(APP_KEY, 'alice');
    expect((await attestOnce(b.app, w)).status).toBe(200);
    const nonce = (await request(b.app).post('/v1/challenge').expect(200)).body.nonce;
    const bad = await makeEvidence(w, { nonce, binary: { sha256: 'ab'.repeat(32) } });
    expect((await request(b.app).post('/v1/attest').send({ evidence: bad.compact })).status).toBe(403);
    await b.close();

    const text = readFileSync(auditFile(w), 'utf8');
    const events: Array<Record<string, unknown>> = [];
    expect(verifyChain(text, (r) => events.push(r))).toEqual({ lines: 3, lastHash: expect.any(String) });
    expect(events.map((e) => e.event)).toEqual(['key.create', 'release', 'refusal']);
    expect(events[0]).toMatchObject({ actor: 'alice', key: APP_KEY, version: 1 });
    expect(events[1]).toMatchObject({ released: [`${APP_KEY}@1`], software: ['app'], zones: ['z1'] });
    expect(events[2]).toMatchObject({ code: 'software_not_approved' });
    // The key's metadata shows who received it.
    const b2 = await assembleBroker(w.config);
    expect(b2.keys.show(APP_KEY).versions[0]!.releases).toMatchObject({ count: 1, lastNode: 'spiffe://test/zone/z1/node-1', lastSoftware: ['app'] });
    await b2.close();
  });

  it('refuses to open a chain that was edited, and says at which line', async () => {
    w = await makeWorld();
    const log = await FileAuditLog.open(auditFile(w), systemClock);
    for (let i = 0; i < 3; i++) await log.record({ event: 'key.create', actor: 'x', key: `t/k${i}` });
    await log.close();
    const lines = readFileSync(auditFile(w), 'utf8').split('\n');
    lines[1] = lines[1]!.replace('t/k1', 't/kX');
    writeFileSync(auditFile(w), lines.join('\n'));
    await expect(FileAuditLog.open(auditFile(w), systemClock)).rejects.toThrow(AuditChainError);
    await expect(FileAuditLog.open(auditFile(w), systemClock)).rejects.toThrow(/line 3/);
  });

  it('keeps one chain when two writers (broker and CLI) append to the same file', async () => {
    w = await makeWorld();
    const a = await FileAuditLog.open(auditFile(w), systemClock);
    const c = await FileAuditLog.open(auditFile(w), systemClock);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : c).record({ event: 'key.rotate', actor: `w${i % 2}`, key: 't/k' })));
    await a.close();
    await c.close();
    expect(verifyChain(readFileSync(auditFile(w), 'utf8'))).toEqual({ lines: 20, lastHash: expect.any(String) });
  });

  it('releases nothing and answers 503 audit_unavailable when the audit log cannot be written', async () => {
    w = await makeWorld();
    const b = await assembleBroker(w.config);
    await b.keys.create(APP_KEY, 'alice');
    await b.audit.close(); // the file handle is gone: every write now fails
    const r = await attestOnce(b.app, w);
    expect({ status: r.status, code: r.body.code }).toEqual({ status: 503, code: 'audit_unavailable' });
    expect(r.body.keys).toBeUndefined();
    expect(r.headers['retry-after']).toBe('1');
  });
});
