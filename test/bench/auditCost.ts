/**
 * What the audit trail's protection costs a release, in the same run as the other figures:
 *
 * 1. Checkpoints: three brokers side by side (software custody, TLS), measured in interleaved
 *    rounds at concurrency 8: checkpoints as shipped (every 1000 records or 60 s), practically
 *    none (every 10⁶ records or a day), and the worst case (after every record). Releases per
 *    broker CPU-second, median of the rounds.
 * 2. The richer records: the store part of the release transaction in process (SQLite, synchronous
 *    FULL, 8 at once) with the record as written before this work (migration 1's schema) and as now
 *    (migration 3's: commit-order positions, the chain registered), plus the search index per
 *    record (the indexer's batches) and the store-file check each batch makes. The difference in
 *    µs of CPU, as a share of the broker's CPU per release measured in (1).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { systemClock } from '../../src/clock.js';
import { appendAudit, recordHash } from '../../src/store/audit.js';
import { indexAudit } from '../../src/store/auditIndex.js';
import type { Driver } from '../../src/store/driver.js';
import { openDriver, openStore } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { countRelease, resolveVersions } from '../../src/store/keys.js';
import { consumeNonce } from '../../src/store/nonces.js';
import type { TxSql } from '../../src/store/sql.js';
import { startBenchBroker, type BenchBroker, type BrokerSpec } from './brokerProcess.js';
import type { LoadGenerator, PhaseFigures } from './loadDriver.js';
import { load } from './report.js';
import { fmt, median } from './stats.js';

const KEY = 'bench/audit';
const BODY = { event: 'release', requestId: '', policy: { version: 12, manifestSha256: 'ab'.repeat(32) }, node: { nodeCA: 'nodes', subject: 'CN=node-7', sanUris: ['spiffe://bench/zone/z1/node-7'], fingerprint: 'cd'.repeat(32) }, workload: { path: '/opt/app/bin/app', sha256: 'ef'.repeat(32) }, requested: [{ name: KEY }], zones: ['z1'], software: ['app'], rejected: [], released: [`${KEY}@1`] };
const body = () => ({ ...BODY, requestId: randomBytes(8).toString('hex') });

/** The record as the broker wrote it before this work: the row alone, in the schema of migration 1. */
async function recordBefore(tx: TxSql, at: number): Promise<void> {
  const head = tx.chain();
  const row = { chainId: head.chainId, seq: head.seq + 1, at, prev: head.hash, body: JSON.stringify(body()) };
  const hash = recordHash(row);
  await tx.run('INSERT INTO audit (chain_id, seq, at, event, prev, hash, body) VALUES ($1, $2, $3, $4, $5, $6, $7)', [row.chainId, row.seq, row.at, 'release', row.prev, hash, row.body]);
  head.seq = row.seq;
  head.hash = hash;
}

/** The store part of a release transaction (as release.ts runs it) with either record. */
const releaseTx = (transaction: Driver['transaction'], record: (tx: TxSql, at: number) => Promise<unknown>) =>
  transaction(async (tx) => {
    await consumeNonce(tx, randomBytes(16), Date.now() + 60_000);
    await resolveVersions(tx, [{ name: KEY }]);
    await countRelease(tx, [{ name: KEY, version: 1 }], new Date().toISOString(), 'spiffe://bench/zone/z1/node-7', ['app']);
    await record(tx, Date.now());
  });

const cpuUs = async (fn: () => Promise<unknown>): Promise<number> => {
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
};

/**
 * µs of this process's CPU per release: the store part of the transaction with the record as
 * before (migration 1's schema) and as now (migration 3's, its chain registered), `waiting`
 * transactions at once (8: what the broker sees at concurrency 8, where the store commits them in
 * groups); the search index's cost per record (a batch of the indexer); the store-file check per batch.
 */
export async function richRecordCost(quick: boolean, waiting = 8): Promise<{ before: number; now: number; index: number; fileCheck: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-audit-cost-'));
  const config = (name: string) => ({ kind: 'sqlite' as const, file: path.join(dir, name), synchronous: 'full' as const, busyTimeoutMs: 5000, changePollMs: 500 });
  const old = await openDriver(config('before.db'), { clock: systemClock, create: true });
  const store = await openStore(config('now.db'), { clock: systemClock, create: true });
  try {
    await old.migrationTransaction(async (tx) => {
      for (const stmt of MIGRATIONS[0]!.sql('sqlite')) await tx.run(stmt);
    });
    for (const tx of [(fn: (tx: TxSql) => Promise<unknown>) => old.transaction(fn), (fn: (tx: TxSql) => Promise<unknown>) => store.transaction(fn)]) {
      await tx((t) => t.run("INSERT INTO keys (name, created_at, created_by) VALUES ($1, 'x', 'bench')", [KEY]).then(() =>
        t.run("INSERT INTO key_versions (name, version, state, created_at, created_by, wrap_alg, kek_id, blob) VALUES ($1, 1, 'enabled', 'x', 'bench', 'a', 'k', $2)", [KEY, randomBytes(60)])));
    }
    const per = { before: [] as number[], now: [] as number[], index: [] as number[] };
    const n = quick ? 96 : 400;
    const run = (transaction: Driver['transaction'], record: (tx: TxSql, at: number) => Promise<unknown>) =>
      cpuUs(() => Promise.all(Array.from({ length: waiting }, async () => {
        for (let i = 0; i < n / waiting; i++) await releaseTx(transaction, record);
      })));
    for (let batch = 0; batch < (quick ? 6 : 20); batch++) {
      const before = await run((fn) => old.transaction(fn), recordBefore);
      const now = await run((fn) => store.transaction(fn), (tx, at) => appendAudit(tx, body(), at));
      const index = await cpuUs(() => indexAudit(store.read, (fn) => store.transaction(fn)));
      if (batch > 1) {
        per.before.push(before / n);
        per.now.push(now / n);
        per.index.push(index / n);
      }
    }
    const file = config('now.db').file;
    const fileCheck = (await cpuUs(async () => {
      for (let i = 0; i < 20_000; i++) statSync(file, { throwIfNoEntry: false });
    })) / 20_000;
    return { before: median(per.before), now: median(per.now), index: median(per.index), fileCheck };
  } finally {
    await old.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface AuditCostRun {
  common: Pick<BrokerSpec, 'dir' | 'policyDir' | 'keys' | 'tls'>;
  loadgen: LoadGenerator;
  quick: boolean;
  warm: (label: string, broker: BenchBroker, maxSeconds: number) => Promise<void>;
  phases: PhaseFigures[];
}

const SETTINGS = [
  ['without checkpoints', { everyRecords: 1_000_000, everySeconds: 86_400, sweepSeconds: 0 }],
  ['as shipped', { everyRecords: 1000, everySeconds: 60, sweepSeconds: 300 }],
  ['after every record', { everyRecords: 1, everySeconds: 60, sweepSeconds: 300 }],
] as const;

export async function benchAuditCost(o: AuditCostRun): Promise<string[]> {
  const settings = o.quick ? SETTINGS.slice(0, 2) : SETTINGS;
  const brokers: BenchBroker[] = [];
  try {
    for (const [label, checkpoint] of settings) {
      const b = await startBenchBroker({ ...o.common, name: `audit-${brokers.length}`, custody: { kind: 'software' }, config: { audit: { checkpoint } } });
      brokers.push(b);
      await o.warm(`audit checkpoints ${label}`, b, o.quick ? 4 : 20);
    }
    const rates: number[][] = settings.map(() => []);
    const us: number[][] = settings.map(() => []);
    for (let round = 0; round < (o.quick ? 1 : 5); round++) {
      for (const [i, b] of brokers.entries()) {
        const p = await o.loadgen.run(b, { concurrency: 8, warmupMs: o.quick ? 300 : 1000, measureMs: o.quick ? 1500 : 4000, fresh: false, checkEvery: 50 });
        o.phases.push(p);
        rates[i]!.push(p.perBrokerCpuSecond);
        us[i]!.push(p.brokerUsPerRelease);
      }
    }
    const base = median(rates[0]!);
    const cost = (i: number) => (1 - median(rates[i]!) / base) * 100;
    const lines = [
      `audit checkpoints, releases per broker CPU-second at concurrency 8 (median of ${rates[0]!.length} interleaved rounds): ` +
        settings.map(([label], i) => `${label} ${fmt(median(rates[i]!), 0)}${i ? ` (${fmt(cost(i), 1)} %)` : ''}`).join(', ') + ` ${load()}`,
    ];
    const r = await richRecordCost(o.quick, 8);
    const brokerUs = median(us[1]!);
    const extra = r.now - r.before + r.index + r.fileCheck;
    lines.push(
      `audit records: the store part of a release transaction (SQLite FULL, 8 waiting at once) ${fmt(r.before, 1)} µs of CPU with the record as before, ${fmt(r.now, 1)} µs as now; its search terms ${fmt(r.index, 1)} µs per record (indexed in batches); ` +
        `the store-file check ${fmt(r.fileCheck, 1)} µs per batch: ${fmt(extra, 1)} µs more, ${fmt((extra / brokerUs) * 100, 1)} % of the broker's ${fmt(brokerUs, 0)} µs per release ${load()}`,
    );
    const total = cost(1) + (extra / brokerUs) * 100;
    lines.push(`target checkpoints as shipped and the richer records cost ≤ 3 % of releases per broker CPU-second: ${fmt(total, 1)} %: ${total <= 3 ? 'met' : 'NOT MET'}`);
    return lines;
  } finally {
    for (const b of brokers) await b.stop();
  }
}
