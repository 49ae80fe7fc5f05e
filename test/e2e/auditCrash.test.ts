/**
 * SIGKILL during checkpointing never breaks verification. Real processes, killed again and again:
 *
 * - a writer that appends a record and checkpoints after every one (its own chain, and sweeps of
 *   the chains earlier writers left uncovered), killed at spread delays and at its n-th write to
 *   the store's WAL (inside a checkpoint transaction, or between a record and its checkpoint);
 * - `keyanchor keys rotate`, killed at the WAL writes of its final checkpoint;
 * - `keyanchor audit checkpoint`, killed while it sweeps.
 *
 * After every kill the whole trail verifies with the audit key (signatures, every link, every
 * checkpoint's record). At the end one `audit checkpoint` sweeps every chain a kill left
 * uncovered, and `audit verify --key` finds every record covered.
 */
import { createPublicKey } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyTrail } from '../../src/audit/verify.js';
import { systemClock } from '../../src/clock.js';
import { openStore, type StateStore } from '../../src/store/index.js';
import { runKeyanchorKilledAt, runNodeKilledAt, type KillAt } from '../helpers/crash.js';
import { ROOT, runKeyanchor } from '../helpers/processes.js';

const root = mkdtempSync(path.join(tmpdir(), 'keyanchor-audit-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mod = (p: string) => JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'src', p)).href);
/** Appends a record and checkpoints, forever (until killed). */
const WRITER = `
  const { openStore } = await import(${mod('store/index.js')});
  const { appendAudit } = await import(${mod('store/audit.js')});
  const { softwareAuditSigner } = await import(${mod('custody/softwareAuditKey.js')});
  const { Checkpointer } = await import(${mod('audit/checkpointer.js')});
  const { auditStoreId } = await import(${mod('audit/signingKey.js')});
  const [file, stateDir] = process.argv.slice(1);
  const clock = { now: () => Date.now() };
  const store = await openStore({ kind: 'sqlite', file, synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 }, { clock });
  const signer = softwareAuditSigner(stateDir, { create: false });
  const cp = new Checkpointer({ store, signer, clock, storeId: await auditStoreId(store), policy: () => null, everyRecords: 1, everyMs: 1000, sweepMs: 0, witnesses: [], onError: () => {} });
  process.stdout.write('ready\\n');
  for (let i = 0; ; i++) {
    await store.transaction((tx) => appendAudit(tx, { event: 'release', i, requested: [{ name: 'crash/k' }] }, clock.now()));
    await cp.checkpointNow();
  }`;

class Lane {
  readonly stateDir: string;
  readonly config: string;
  readonly db: string;
  constructor(readonly id: string) {
    const dir = path.join(root, id);
    this.stateDir = path.join(dir, 'state');
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(path.join(dir, 'policies'));
    this.config = path.join(dir, 'config.json');
    this.db = path.join(this.stateDir, 'keyanchor.db');
    writeFileSync(this.config, JSON.stringify({ stateDir: this.stateDir, policyDir: path.join(dir, 'policies'), dev: { enabled: false }, log: { level: 'silent' } }));
  }
  /** The trail, verified by another process's view of the store with the audit public key. */
  async verify(): Promise<Awaited<ReturnType<typeof verifyTrail>>> {
    const store: StateStore = await openStore({ kind: 'sqlite', file: this.db, synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 }, { clock: systemClock });
    try {
      return await verifyTrail(store.read, { keys: [createPublicKey(readFileSync(path.join(this.stateDir, 'audit-signing.pem')))] });
    } finally {
      await store.close();
    }
  }
}

const walWrite = (lane: Lane, n: number): KillAt => ({ onEvent: n, dir: lane.stateDir, file: 'keyanchor.db-wal', type: 'change' });

describe('SIGKILL during checkpointing', () => {
  it('never breaks verification: writers, rotations and sweeps killed over and over', { timeout: 240_000 }, async () => {
    const lanes = [new Lane('a'), new Lane('b')];
    for (const lane of lanes) expect((await runKeyanchor(['--config', lane.config, 'keys', 'create', '--init', `${lane.id}/key`])).code).toBe(0);
    const tally = { killed: 0, finished: 0, checks: 0, midWrite: 0 };
    const after = async (lane: Lane, what: string, r: { killed: boolean; events: string[]; code: number | null; stderr: string }) => {
      if (r.killed) tally.killed++;
      else {
        tally.finished++;
        expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      }
      if (r.killed && r.events.includes('change keyanchor.db-wal')) tally.midWrite++;
      const v = await lane.verify();
      const bad = v.log.brokenAt !== undefined ? `log entry ${v.log.brokenAt}: ${v.log.why}` : v.chains.filter((c) => c.brokenAt !== undefined).map((c) => `${c.chainId}@${c.brokenAt}: ${c.why}`).join('; ');
      expect(bad || undefined, `${lane.id}, after ${what}`).toBeUndefined();
      tally.checks++;
    };
    await Promise.all(lanes.map(async (lane) => {
      const plans: Array<[string, () => Promise<Awaited<ReturnType<typeof runNodeKilledAt>>>]> = [];
      for (let i = 0; i < 8; i++) {
        const ms = 300 + Math.round(Math.random() * 1500);
        plans.push([`writer killed after ${ms} ms`, () => runNodeKilledAt(['--input-type=module', '-e', WRITER, lane.db, lane.stateDir], { afterMs: ms })]);
      }
      for (const n of [2, 5, 9, 14, 20, 27]) plans.push([`writer killed at WAL write #${n}`, () => runNodeKilledAt(['--input-type=module', '-e', WRITER, lane.db, lane.stateDir], walWrite(lane, n))]);
      for (const n of [0, 1, 2]) plans.push([`keys rotate killed at WAL write #${n}`, () => runKeyanchorKilledAt(['--config', lane.config, 'keys', 'rotate', `${lane.id}/key`], walWrite(lane, n))]);
      for (const n of [0, 1, 3]) plans.push([`audit checkpoint killed at WAL write #${n}`, () => runKeyanchorKilledAt(['--config', lane.config, 'audit', 'checkpoint'], walWrite(lane, n))]);
      plans.sort(() => Math.random() - 0.5);
      for (const [what, go] of plans) await after(lane, what, await go());
    }));
    console.log(`audit checkpoint crash test: ${tally.killed} processes killed (${tally.midWrite} after they began writing), ${tally.finished} finished first; the trail verified after each (${tally.checks} checks)`);
    expect(tally.killed).toBeGreaterThanOrEqual(30);
    expect(tally.midWrite).toBeGreaterThan(10);

    for (const lane of lanes) {
      const sweep = await runKeyanchor(['--config', lane.config, 'audit', 'checkpoint', '-o', 'json']);
      expect(sweep.code, sweep.stderr).toBe(0);
      expect((JSON.parse(sweep.stdout) as { refused: unknown[] }).refused).toEqual([]);
      const pub = path.join(lane.stateDir, '..', 'audit.pub');
      expect((await runKeyanchor(['--config', lane.config, 'audit', 'key', '--out', pub])).code).toBe(0);
      const v = await runKeyanchor(['--config', lane.config, 'audit', 'verify', '--key', pub]);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toContain('every record is covered by a checkpoint');
    }
  });
});
