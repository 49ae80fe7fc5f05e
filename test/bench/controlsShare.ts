/**
 * The controls' cost measured in this process, where there is less noise than in the brokers' CPU
 * (controls.ts runs these beside its phases), and what keeping suspensions in memory saves.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { counterAdds, fireCrossed } from '../../src/alarms/evaluate.js';
import { systemClock } from '../../src/clock.js';
import { controlsOf } from '../../src/limits/controls.js';
import { SuspensionSet } from '../../src/limits/suspensionSet.js';
import { issueCertificate } from '../../src/pki.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import { appendAudit } from '../../src/store/audit.js';
import { openStore } from '../../src/store/index.js';
import { chargeAndCount } from '../../src/store/controls.js';
import { activeSuspensions, suspend } from '../../src/store/suspensions.js';
import { APP_KEY, IMG_KEY, MISSING_KEY, sha256hex } from '../helpers/world.js';
import { load } from './report.js';
import { fmt } from './stats.js';

const STEADY_KEY = 'team/steady-key';
const signed = (n: number, d: number) => `${n >= 0 ? '+' : ''}${fmt(n, d)}`;

/**
 * Where the controls' cost is, in this process (less noise than the brokers' CPU): the decision's
 * work in JavaScript (which windows and alarm counts, the deny-list, the suspensions), and the
 * store's, as a release-shaped transaction (a nonce, release statistics, an audit record) each
 * committed alone (SQLite, synchronous full, as at concurrency 1) with and without the windows and
 * counts; the best of interleaved batches.
 */
export async function attributionLine(quick: boolean, controlsYaml: string): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-bench-ctl-'));
  const policyDir = path.join(dir, 'p');
  mkdirSync(policyDir);
  writeFileSync(path.join(policyDir, 'ca.pem'), (await issueCertificate({ subject: 'CN=ca', ca: true })).certPem);
  writeFileSync(path.join(policyDir, 'p.yaml'), `nodeCAs: [{ name: test-nodes, certificate: { file: ca.pem } }]\nzones: [{ name: z1, match: { nodeCA: test-nodes } }]\nsoftware:\n${['app', 'pinned-in-image', 'steady'].map((n) => `  - { name: ${n}, binary: { digests: ["${sha256hex(n)}"] }, grants: [{ keys: [${n === 'app' ? `${APP_KEY}, ${MISSING_KEY}` : n === 'steady' ? STEADY_KEY : IMG_KEY}], zones: [z1] }] }`).join('\n')}\n${controlsYaml}`);
  const policy = loadPolicyDir(policyDir);
  const store = await openStore({ kind: 'sqlite', file: path.join(dir, 's.db'), synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 }, { clock: systemClock, create: true });
  const set = new SuspensionSet(store, () => undefined);
  await set.start();
  try {
    const req = { node: { nodeCA: 'test-nodes', subject: 'CN=n', sanUris: ['spiffe://test/zone/z1/node-1'], fingerprint: 'ab'.repeat(32), serial: '1f' }, zones: ['z1'], software: ['app'], keys: [APP_KEY] };
    const c = controlsOf(policy);
    const decide = () => {
      if (c.denied(req.node) || set.suspendedOf(req)) throw new Error('refused');
      return { windows: c.windowsFor(req), counts: c.alarmCounts('releases', req, Date.now()) };
    };
    const J = 100_000;
    let t = performance.now();
    for (let i = 0; i < J; i++) decide();
    const jsUs = ((performance.now() - t) * 1000) / J;
    let n = 0;
    const release = async (controls: boolean) =>
      store.transaction(async (tx) => {
        await tx.run('INSERT INTO consumed_nonces (nonce, expires_at) VALUES ($1, $2)', [Buffer.from(`n${++n}-${Math.random()}`), Date.now() + 60_000]);
        if (controls) {
          const d = decide();
          const charged = await chargeAndCount(tx, d.windows, counterAdds(d.counts), Date.now());
          await fireCrossed(tx, d.counts, charged.counts, Date.now(), 'bench');
        }
        await tx.run(`INSERT INTO release_stats (name, version, count, last_at, last_node, last_software) VALUES ($1, 1, 1, $2, 'n', '[]') ON CONFLICT (name, version) DO UPDATE SET count = release_stats.count + 1, last_at = excluded.last_at`, [APP_KEY, new Date().toISOString()]);
        await appendAudit(tx, { event: 'release', requestId: String(n), released: [`${APP_KEY}@1`] }, Date.now());
      });
    const batch = async (controls: boolean) => {
      const N = quick ? 200 : 500;
      const c0 = process.cpuUsage();
      for (let i = 0; i < N; i++) await release(controls);
      const u = process.cpuUsage(c0);
      return (u.user + u.system) / N;
    };
    const best = { off: Infinity, on: Infinity };
    for (let k = 0; k < (quick ? 3 : 10); k++) {
      best.off = Math.min(best.off, await batch(false));
      best.on = Math.min(best.on, await batch(true));
    }
    return `controls' share of a release (9 windows, 3 alarm counts, 20 limits and 10 alarms in force): ${fmt(jsUs, 1)} µs deciding in JavaScript; the release transaction committed alone (SQLite) ${fmt(best.off, 0)} µs of CPU without the windows and counts, ${fmt(best.on, 0)} µs with them (${signed(best.on - best.off, 0)} µs), best of ${quick ? 3 : 10} interleaved batches ${load()}`;
  } finally {
    set.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the release path saves by keeping the suspensions in memory: one check, against the query it would otherwise make. */
export async function suspensionCheckLine(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-bench-susp-'));
  const store = await openStore({ kind: 'sqlite', file: path.join(dir, 's.db'), synchronous: 'normal', busyTimeoutMs: 5000, changePollMs: 500 }, { clock: systemClock, create: true });
  try {
    await store.transaction(async (tx) => {
      for (let i = 0; i < 100; i++) await suspend(tx, { subject: `node:spiffe://bench/node-${i}`, reason: 'bench', figures: {}, createdBy: 'bench', createdAt: i });
    });
    const set = new SuspensionSet(store, () => undefined);
    await set.start();
    const req = { node: { nodeCA: 'ca', subject: 'CN=n', sanUris: ['spiffe://test/zone/z1/node-1'], fingerprint: 'ab'.repeat(32), serial: '1f' }, zones: ['z1'], software: ['app'], keys: [APP_KEY] };
    const N = 200_000;
    let t = performance.now();
    for (let i = 0; i < N; i++) if (set.suspendedOf(req)) throw new Error('not suspended');
    const memUs = ((performance.now() - t) * 1000) / N;
    const Q = 2000;
    t = performance.now();
    for (let i = 0; i < Q; i++) await activeSuspensions(store.read);
    const queryUs = ((performance.now() - t) * 1000) / Q;
    set.close();
    return `suspension check per release, 100 active: in memory ${fmt(memUs, 2)} µs; reading them from the store (SQLite) would cost ${fmt(queryUs, 0)} µs ${load()}`;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

