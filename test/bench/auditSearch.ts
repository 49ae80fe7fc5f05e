/**
 * `npm run bench:audit` (`node dist/test/bench/auditSearch.js [--quick]`): audit search and tail on
 * a trail of 5 million records (500,000 with --quick), on SQLite and on PostgreSQL.
 *
 * The records are made by SQL (a recursive CTE / generate_series) with their search terms, as the
 * indexer would write them: 96 % releases, 2 % refusals, some key creations; 485 keys, 2003
 * nodes, 41 software entries, over 29 days. Each search goes through the broker's own code
 * (toQuery → searchAudit): the first page of 100, timed five times (median and slowest), with the
 * query plan's first line, and this process's memory before and after all of them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { toQuery, type SearchFilter } from '../../src/audit/search.js';
import { systemClock } from '../../src/clock.js';
import type { StoreConfig } from '../../src/config.js';
import { Secret } from '../../src/secret.js';
import { indexAudit } from '../../src/store/auditIndex.js';
import { candidatesSql, searchAudit, timeSql } from '../../src/store/auditSearch.js';
import { tailPage } from '../../src/store/auditTail.js';
import { openStore, type StateStore } from '../../src/store/index.js';
import { startPostgres } from '../helpers/postgres.js';
import { fmt, median } from './stats.js';

const quick = process.argv.includes('--quick');
/** `--backend sqlite` or `--backend postgres`: one of them only. */
const only = process.argv.includes('--backend') ? process.argv[process.argv.indexOf('--backend') + 1] : undefined;
const N = quick ? 500_000 : 5_000_000;
const T0 = 1_700_000_000_000;
const say = (s: string) => process.stdout.write(s + '\n');

/** One generated record's fields, as SQL expressions of i (shared by both dialects). */
const F = {
  chain: `'c' || (i % 64)`,
  seq: `(i / 64) + 1`,
  at: `${T0} + i * 500`,
  event: `CASE WHEN i % 50 = 0 THEN 'refusal' WHEN i % 1000 = 7 THEN 'key.create' ELSE 'release' END`,
  key: `'team' || (i % 97) || '/k' || (i % 5)`,
  node: `'spiffe://bench/zone/z' || (i % 7) || '/node-' || (i % 2003)`,
  software: `'sw' || (i % 41)`,
  code: `CASE WHEN i % 150 = 0 THEN 'software_not_approved' ELSE 'key_not_granted' END`,
};
const body = `'{"event":"' || ${F.event} || '","requested":[{"name":"' || ${F.key} || '"}],"node":{"sanUris":["' || ${F.node} || '"]},"software":["' || ${F.software} || '"]' ||
  CASE WHEN i % 50 = 0 THEN ',"code":"' || ${F.code} || '"' ELSE '' END || ',"key":"' || ${F.key} || '","actor":"cli:ops","pad":"' || ${'\'' + 'x'.repeat(300) + '\''} || '"}'`;

/** The generated rows as SQL: `g(i)` for 1..N in either dialect. */
const gen = (d: 'sqlite' | 'postgres', select: string, where = '') =>
  d === 'sqlite'
    ? `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${N}) ${select} FROM g ${where}`
    : `${select} FROM generate_series(1::bigint, ${N}) AS g(i) ${where}`;

async function build(store: StateStore): Promise<number> {
  const d = store.read.dialect.name;
  const t = performance.now();
  const terms = (t: string, value: string, where = '') => gen(d, `INSERT INTO audit_terms (term, at, chain_id, seq) SELECT '${t}:' || ${value}, ${F.at}, ${F.chain}, ${F.seq}`, where);
  await store.transaction(async (tx) => {
    if (d === 'sqlite') await tx.run('PRAGMA defer_foreign_keys = ON');
    await tx.run(gen(d, `INSERT INTO audit (chain_id, seq, at, event, prev, hash, body) SELECT ${F.chain}, ${F.seq}, ${F.at}, ${F.event}, '${'0'.repeat(64)}', '${'0'.repeat(64)}', ${body}`));
    // The terms the indexer writes: no event term for releases; keys as requested and as named.
    await tx.run(terms('k', F.key));
    await tx.run(terms('n', F.node));
    await tx.run(terms('s', F.software));
    await tx.run(terms('a', `'cli:ops'`));
    await tx.run(terms('e', F.event, 'WHERE i % 50 = 0 OR i % 1000 = 7'));
    await tx.run(terms('c', F.code, 'WHERE i % 50 = 0'));
  });
  // The indexer's cursor at the last record: everything is indexed.
  const [last] = await store.read.all('SELECT pos, chain_id, seq FROM audit ORDER BY pos DESC, chain_id DESC, seq DESC LIMIT 1');
  await store.transaction((tx) => tx.run("INSERT INTO meta (name, value) VALUES ('audit_indexed', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value", [`${String(last!.pos)}.${String(last!.chain_id)}.${String(last!.seq)}`]));
  if (d === 'postgres') await store.transaction(async (tx) => {
    await tx.run('ANALYZE audit');
    await tx.run('ANALYZE audit_terms');
  });
  return (performance.now() - t) / 1000;
}

/** The records span N × 0.5 s: 29 days for 5 million. Time ranges are fractions of it. */
const SPAN = N * 500;
const at = (f: number) => T0 + Math.floor(SPAN * f);
const QUERIES: Array<[string, SearchFilter]> = [
  ['a key, over 1/29 of the span (a day of 5 million)', { key: 'team7/k2', since: at(0.4), until: at(0.4 + 1 / 29) }],
  ['a key, everything', { key: 'team7/k2' }],
  ['a node, over a quarter of the span', { node: 'spiffe://bench/zone/z3/node-1500', since: at(0.1), until: at(0.35) }],
  ['a software entry', { software: 'sw11' }],
  ['refusals with a code (rare)', { decision: 'refusal', code: 'software_not_approved' }],
  ['refusals of a key (two terms)', { key: 'team7/k2', decision: 'refusal' }],
  ['a key on a node (terms that rarely meet)', { key: 'team7/k2', node: 'spiffe://bench/zone/z3/node-1500' }],
  ['key creations (a rare event)', { decision: 'key.create' }],
  ['releases in an hour (the event column)', { decision: 'release', since: at(0.7), until: at(0.7) + 3_600_000 }],
  ['everything in 10 minutes (time alone)', { since: at(0.2), until: at(0.2) + 600_000 }],
];

/** The plan of the search's first statement: the driving term's range, or the time index. */
async function plan(store: StateStore, filter: SearchFilter): Promise<string> {
  const q = toQuery(filter, 100);
  const { text, params } = q.terms[0] === undefined ? timeSql(q) : candidatesSql(q.terms[0], q, { at: -1, chain: '', seq: 0 }, 500);
  if (store.read.dialect.name === 'sqlite') return (await store.read.all(`EXPLAIN QUERY PLAN ${text}`, params)).map((r) => String(r.detail)).join('; ');
  const rows = await store.read.all(`EXPLAIN ${text}`, params);
  return rows.map((r) => String(r['QUERY PLAN']).trim()).filter((l) => /Scan|Join|Nested|Sort/.test(l)).slice(0, 2).join('; ');
}

async function measure(label: string, store: StateStore): Promise<void> {
  const built = await build(store);
  say(`${label}: ${N.toLocaleString('en')} records and their search terms built by SQL in ${fmt(built, 0)} s`);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  let worst = 0;
  for (const [what, filter] of QUERIES) {
    const ms: number[] = [];
    let rows = 0;
    let next;
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const page = await searchAudit(store.read, toQuery(filter, 100));
      ms.push(performance.now() - t);
      rows = page.rows.length;
      next = page.next;
    }
    const t = performance.now();
    const page2 = next ? await searchAudit(store.read, toQuery(filter, 100, next)) : undefined;
    const second = performance.now() - t;
    worst = Math.max(worst, ...ms, second);
    say(`  ${what}: ${rows} records, ${fmt(median(ms), 1)} ms median, ${fmt(Math.max(...ms), 1)} ms slowest of 5; next page ${page2 ? `${page2.rows.length} in ${fmt(second, 1)} ms` : 'none'} — plan: ${await plan(store, filter)}`);
  }
  const ms: number[] = [];
  // SQLite: positions 1…N; PostgreSQL: one transaction built them all (one position), cursors by chain and record.
  const txPos = Number((await store.read.all('SELECT MIN(pos) AS pos FROM audit'))[0]!.pos);
  for (const i of [N / 4, N / 2, (3 * N) / 4]) {
    const t = performance.now();
    const rows = await tailPage(store.read, store.read.dialect.name === 'sqlite' ? { pos: i, chain: '', seq: 0 } : { pos: txPos, chain: 'c3', seq: Math.floor(i / 64) }, 1000);
    ms.push(performance.now() - t);
    if (rows.length !== 1000) throw new Error(`tail page of ${rows.length}`);
  }
  say(`  tail: a page of 1000 records from a cursor in the middle in ${fmt(median(ms), 1)} ms (median of 3)`);
  global.gc?.();
  say(`  slowest search page ${fmt(worst, 1)} ms (target < 1000 ms); this process's RSS ${fmt(rss0 / 2 ** 20, 0)} MiB before the searches, ${fmt(process.memoryUsage().rss / 2 ** 20, 0)} MiB after: ${worst < 1000 ? 'met' : 'NOT MET'}`);
  // The indexer's own pace: the terms of the newest 100,000 records again.
  const lastPos = N - 100_000;
  await store.transaction(async (tx) => {
    await tx.run('DELETE FROM audit_terms WHERE at > $1', [T0 + lastPos * 500]);
    await tx.run("UPDATE meta SET value = $1 WHERE name = 'audit_indexed'", [store.read.dialect.name === 'sqlite' ? `${lastPos}.x.0` : '-1..0']);
  });
  if (store.read.dialect.name === 'sqlite') {
    const c0 = process.cpuUsage();
    const t = performance.now();
    const n = await indexAudit(store.read, (fn) => store.transaction(fn));
    const c = process.cpuUsage(c0);
    say(`  indexer: ${n.toLocaleString('en')} records in ${fmt((performance.now() - t) / 1000, 1)} s, ${fmt((c.user + c.system) / n, 1)} µs of CPU per record`);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-audit-search-'));
const pg = await startPostgres({ fsync: false });
try {
  say(`# keyanchor audit search bench ${new Date().toISOString()}${quick ? ' (quick)' : ''}`);
  if (only !== 'postgres') {
    const sqlite: StoreConfig = { kind: 'sqlite', file: path.join(dir, 'keyanchor.db'), synchronous: 'normal', busyTimeoutMs: 5000, changePollMs: 500 };
    const s = await openStore(sqlite, { clock: systemClock, create: true });
    try {
      await measure('SQLite', s);
    } finally {
      await s.close();
    }
  }
  if (only !== 'sqlite') {
    const db = await pg.createDatabase();
    const p = await openStore({ kind: 'postgres', url: pg.url(db), password: new Secret(pg.password), pool: { max: 4, acquireTimeoutMs: 5000 }, statementTimeoutMs: 600_000, changePollMs: 500 }, { clock: systemClock, migrate: true });
    try {
      await measure('PostgreSQL', p);
    } finally {
      await p.close();
    }
  }
} finally {
  pg.cleanup();
  rmSync(dir, { recursive: true, force: true });
}
