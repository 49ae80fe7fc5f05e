/**
 * `npm run bench:store`: what the state store costs and carries (figures in docs/benchmarks.md).
 *
 * 1. The release transaction alone (consume the nonce, read the key versions, charge limits, count
 *    the release, write the audit record), in process: p50/p99 one at a time, and transactions/s
 *    with 32 waiting at once (SQLite's group commit batches them), for SQLite with
 *    synchronous=FULL and NORMAL and for PostgreSQL on loopback (fsync on).
 * 2. SQLite shared by 1 and by 2 processes on one host (WAL + busy_timeout).
 * 3. Releases/s end to end with real broker processes: SQLite; 1, 2 and 3 brokers on one
 *    PostgreSQL; CPU of the brokers, of PostgreSQL and of the load generator from /proc.
 * 4. Start-up and release latency with a 10-million-record audit table (1 million with --quick).
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pg from 'pg';
import { systemClock } from '../../src/clock.js';
import type { StoreConfig } from '../../src/config.js';
import { SoftwareCustodian } from '../../src/custody/software.js';
import { KeyService } from '../../src/keys/keyService.js';
import { Secret } from '../../src/secret.js';
import { appendAudit } from '../../src/store/audit.js';
import { openStore, type StateStore } from '../../src/store/index.js';
import { countRelease, resolveVersions } from '../../src/store/keys.js';
import { chargeLimits } from '../../src/store/limits.js';
import { consumeNonce } from '../../src/store/nonces.js';
import { postgresBin, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { ROOT, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';
import { fmt, median, quantile } from './stats.js';

const quick = process.argv.includes('--quick');
/** Only the in-process transaction figures (section 1). */
const txOnly = process.argv.includes('--tx-only');
const N = quick ? 300 : 2000;
const SECONDS = quick ? 4 : 10;
const CONCURRENCY = 16;
const AUDIT_ROWS = quick ? 1_000_000 : 10_000_000;
const say = (s: string) => process.stdout.write(s + '\n');
const UNLIMITED = { perSource: { ratePerSecond: 1_000_000, burst: 1_000_000 } };

/** The release transaction, as release.ts runs it (limits: none declared, as today). */
const releaseTx = (store: StateStore) =>
  store.transaction(async (tx) => {
    await consumeNonce(tx, randomBytes(16), Date.now() + 60_000);
    const [v] = await resolveVersions(tx, [{ name: APP_KEY }]);
    await chargeLimits(tx, [], Date.now());
    await countRelease(tx, [{ name: APP_KEY, version: v!.version.version }], new Date().toISOString(), 'spiffe://bench/node', ['app']);
    await appendAudit(tx, { event: 'release', requestId: randomBytes(8).toString('hex'), released: [`${APP_KEY}@1`], node: { subject: 'CN=bench' } }, Date.now());
  });

async function txFigures(name: string, config: StoreConfig, migrate: boolean): Promise<void> {
  const store = await openStore(config, { clock: systemClock, create: true, migrate });
  const custody = new SoftwareCustodian(randomBytes(32));
  await new KeyService(store, custody, systemClock).create(APP_KEY, 'bench').catch(() => undefined);
  for (let i = 0; i < 100; i++) await releaseTx(store);
  const xs: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await releaseTx(store);
    xs.push(performance.now() - t);
  }
  const t = performance.now();
  let done = 0;
  const until = t + (quick ? 1500 : 4000);
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (performance.now() < until) {
      await releaseTx(store);
      done++;
    }
  }));
  const rate = done / ((performance.now() - t) / 1000);
  say(`release transaction, ${name}: p50 ${fmt(median(xs), 3)} ms, p99 ${fmt(quantile(xs, 0.99), 3)} ms one at a time (n=${N}); ${fmt(rate, 0)} transactions/s with 32 waiting at once`);
  await custody.close();
  await store.close();
}

/** SQLite from `procs` processes at once, each running `n` release transactions one after another. */
async function sqliteProcesses(file: string, procs: number, n: number): Promise<number> {
  const mod = (p: string) => JSON.stringify(new URL(`file://${path.join(ROOT, 'dist', p)}`).href);
  const script = `
    const { openStore } = await import(${mod('src/store/index.js')});
    const { consumeNonce } = await import(${mod('src/store/nonces.js')});
    const { appendAudit } = await import(${mod('src/store/audit.js')});
    const { randomBytes } = await import('node:crypto');
    const store = await openStore(JSON.parse(process.argv[1]), { clock: { now: () => Date.now() } });
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => {
      for (let i = 0; i < ${n}; i++) await store.transaction(async (tx) => {
        await consumeNonce(tx, randomBytes(16), Date.now() + 60000);
        await appendAudit(tx, { event: 'release', i }, Date.now());
      });
      await store.close();
      process.stdout.write('done\\n');
    });`;
  const config = { kind: 'sqlite', file, synchronous: 'full', busyTimeoutMs: 10_000, changePollMs: 500 };
  const children = Array.from({ length: procs }, () => spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  await Promise.all(children.map((c) => new Promise<void>((r) => c.stdout.once('data', () => r()))));
  const t = performance.now();
  const done = Promise.all(children.map((c) => new Promise<void>((r) => c.on('close', () => r()))));
  for (const c of children) c.stdin.end('go');
  await done;
  return (procs * n) / ((performance.now() - t) / 1000);
}

/** CPU seconds used so far by a process and its children that are still running. */
function cpuSeconds(pids: number[]): number {
  const tick = 100;
  let s = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      s += (Number(f[11]) + Number(f[12])) / tick;
    } catch {
      /* gone */
    }
  }
  return s;
}

function postgresPids(pg: PgCluster): number[] {
  const master = Number(readFileSync(path.join(pg.primary.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const kids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === master;
    } catch {
      return false;
    }
  });
  return [master, ...kids.map(Number)];
}

interface LoadResult { lat: number[]; codes: Record<string, number>; attempts: number; elapsedMs: number; cpuMs: number }

function runLoad(w: World, urls: string[], seconds = SECONDS): Promise<LoadResult> {
  const args = {
    urls, seconds, concurrency: CONCURRENCY, nodeCertPem: w.node.certPem, nodeKey: path.join(w.dir, 'node.key'),
    program: { path: w.app.path, sha256: w.app.sha256, sig: w.app.sig.toString('base64url') }, key: APP_KEY,
  };
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [path.join(ROOT, 'dist/test/bench/storeLoad.js'), JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`load generator exited ${code}`))));
  });
}

async function e2e(w: World, label: string, brokers: BrokerProcess[], pgc?: PgCluster): Promise<void> {
  const pids = brokers.map((b) => b.proc.pid!);
  const pgPids = pgc ? postgresPids(pgc) : [];
  await runLoad(w, brokers.map((b) => b.url), 1); // warm-up
  const b0 = cpuSeconds(pids);
  const p0 = cpuSeconds(pgPids);
  const r = await runLoad(w, brokers.map((b) => b.url));
  const bs = cpuSeconds(pids) - b0;
  const ps = pgc ? cpuSeconds(postgresPids(pgc)) - p0 : 0;
  const rate = r.lat.length / (r.elapsedMs / 1000);
  const other = Object.entries(r.codes).filter(([k]) => k !== '200');
  say(`${label}: ${fmt(rate, 0)} releases/s at concurrency ${CONCURRENCY} for ${SECONDS} s (p50 ${fmt(median(r.lat))} ms, p99 ${fmt(quantile(r.lat, 0.99))} ms${other.length ? `, other answers ${JSON.stringify(Object.fromEntries(other))}` : ''}); CPU: brokers ${fmt(bs, 1)} s (${fmt(r.lat.length / Math.max(bs, 0.001), 0)} releases per broker CPU-second)${pgc ? `, PostgreSQL ${fmt(ps, 1)} s (${fmt((100 * ps) / (ps + bs), 0)} % of brokers + database)` : ''}, load generator ${fmt(r.cpuMs / 1000, 1)} s`);
}

function configFile(w: World, name: string, store: Record<string, unknown>): string {
  const file = path.join(w.dir, `${name}.json`);
  // One load generator is one source address: lift the per-source challenge limit.
  writeFileSync(file, JSON.stringify({ stateDir: path.join(w.dir, `state-${name}`), policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'warn' }, nonce: UNLIMITED, store }));
  return file;
}

async function startTime(config: string, env: NodeJS.ProcessEnv): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const b = await startBrokerProcess(['--config', config, 'serve'], env);
    runs.push(performance.now() - t);
    await b.stop();
  }
  return median(runs);
}

/** Fills the audit table with `rows` records by SQL (one statement, no per-row round trips). */
function bigAuditSqlite(file: string, rows: number): void {
  const db = new Database(file);
  db.pragma('synchronous = OFF');
  db.exec(`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${rows})
    INSERT INTO audit (chain_id, seq, at, event, prev, hash, body)
    SELECT 'bench-history', i, 1700000000000 + i, 'release', printf('%064d', i - 1), printf('%064d', i), '{"event":"release","requestId":"' || i || '"}' FROM g`);
  db.close();
}

async function bigAuditPostgres(pgc: PgCluster, db: string, rows: number): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: pgc.primary.port, user: 'postgres', password: pgc.password, database: db });
  await c.connect();
  await c.query(`INSERT INTO audit (chain_id, seq, at, event, prev, hash, body)
    SELECT 'bench-history', i, 1700000000000 + i, 'release', lpad((i - 1)::text, 64, '0'), lpad(i::text, 64, '0'), '{"event":"release","requestId":"' || i || '"}'
    FROM generate_series(1, ${rows}) AS i`);
  await c.query('ANALYZE audit');
  await c.end();
}

const w = await makeWorld();
writeFileSync(path.join(w.dir, 'node.key'), w.node.keyPem, { mode: 0o600 });
const pgc = await startPostgres({ fsync: true });
const env = { KEYANCHOR_BENCH_DB_PW: pgc.password };
const pgStore = (db: string) => ({ kind: 'postgres', url: pgc.url(db), password: { env: 'KEYANCHOR_BENCH_DB_PW' }, pool: { max: 10, acquireTimeoutMs: 5000 }, statementTimeoutMs: 5000 });
const sqliteVersion = (new Database(':memory:').prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
const pgVersion = execFileSync(path.join(postgresBin()!, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
say(`# keyanchor store bench ${new Date().toISOString()} — ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, SQLite ${sqliteVersion}, ${pgVersion}${quick ? ' (quick)' : ''}`);
try {
  // 1. The transaction alone.
  for (const sync of ['full', 'normal'] as const) {
    await txFigures(`SQLite synchronous=${sync.toUpperCase()}`, { kind: 'sqlite', file: path.join(w.dir, `tx-${sync}.db`), synchronous: sync, busyTimeoutMs: 5000, changePollMs: 500 }, false);
  }
  for (const syncCommit of ['on', 'off']) {
    const txDb = await pgc.createDatabase();
    const c = new pg.Client({ host: '127.0.0.1', port: pgc.primary.port, user: 'postgres', password: pgc.password, database: 'postgres' });
    await c.connect();
    await c.query(`ALTER DATABASE ${txDb} SET synchronous_commit = ${syncCommit}`);
    await c.end();
    await txFigures(`PostgreSQL (loopback, fsync on, synchronous_commit=${syncCommit})`, { kind: 'postgres', url: pgc.url(txDb), password: new Secret(pgc.password), pool: { max: 10, acquireTimeoutMs: 5000 }, statementTimeoutMs: 5000, changePollMs: 500 }, true);
  }

  if (txOnly) {
    pgc.cleanup();
    w.cleanup();
    process.exit(0);
  }
  // 2. SQLite shared by processes.
  const shared = path.join(w.dir, 'shared.db');
  await (await openStore({ kind: 'sqlite', file: shared, synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 }, { clock: systemClock, create: true })).close();
  const one = await sqliteProcesses(shared, 1, N);
  const two = await sqliteProcesses(shared, 2, N);
  say(`SQLite (FULL) from several processes on one host: 1 process ${fmt(one, 0)} transactions/s; 2 processes ${fmt(two, 0)} transactions/s together (one at a time in each)`);

  // 3. End to end.
  const sqliteConfig = configFile(w, 'sqlite', { kind: 'sqlite' });
  const k = await runKeyanchor(['--config', sqliteConfig, 'keys', 'create', '--init', APP_KEY]);
  if (k.code !== 0) throw new Error(k.stderr);
  const sb = await startBrokerProcess(['--config', sqliteConfig, 'serve']);
  await e2e(w, 'SQLite, 1 broker', [sb]);
  await sb.stop();

  const e2eDb = await pgc.createDatabase();
  const pgConfig = configFile(w, 'postgres', pgStore(e2eDb));
  for (const args of [['store', 'migrate'], ['keys', 'create', '--init', APP_KEY]]) {
    const r = await runKeyanchor(['--config', pgConfig, ...args], env);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  const brokers: BrokerProcess[] = [];
  for (let n = 1; n <= 3; n++) {
    brokers.push(await startBrokerProcess(['--config', pgConfig, 'serve'], env));
    await e2e(w, `PostgreSQL, ${n} broker${n > 1 ? 's' : ''}`, brokers, pgc);
  }
  await Promise.all(brokers.map((b) => b.stop()));

  // 4. A long audit trail.
  const sqliteFile = path.join(w.dir, 'state-sqlite', 'keyanchor.db');
  const before = await startTime(sqliteConfig, {});
  let t = performance.now();
  bigAuditSqlite(sqliteFile, AUDIT_ROWS);
  const built = (performance.now() - t) / 1000;
  const after = await startTime(sqliteConfig, {});
  const big = await startBrokerProcess(['--config', sqliteConfig, 'serve']);
  const r = await runLoad(w, [big.url], quick ? 2 : 5);
  await big.stop();
  say(`SQLite with ${AUDIT_ROWS.toLocaleString('en')} audit records (built by SQL in ${fmt(built, 0)} s): broker start ${fmt(after, 0)} ms (${fmt(before, 0)} ms with a small trail); releases p50 ${fmt(median(r.lat))} ms at concurrency ${CONCURRENCY}`);
  const pgBefore = await startTime(pgConfig, env);
  t = performance.now();
  await bigAuditPostgres(pgc, e2eDb, AUDIT_ROWS);
  const pgBuilt = (performance.now() - t) / 1000;
  const pgAfter = await startTime(pgConfig, env);
  const pb = await startBrokerProcess(['--config', pgConfig, 'serve'], env);
  const pr = await runLoad(w, [pb.url], quick ? 2 : 5);
  await pb.stop();
  say(`PostgreSQL with ${AUDIT_ROWS.toLocaleString('en')} audit records (built by SQL in ${fmt(pgBuilt, 0)} s): broker start ${fmt(pgAfter, 0)} ms (${fmt(pgBefore, 0)} ms with a small trail); releases p50 ${fmt(median(pr.lat))} ms at concurrency ${CONCURRENCY}`);
} finally {
  pgc.cleanup();
  w.cleanup();
}
