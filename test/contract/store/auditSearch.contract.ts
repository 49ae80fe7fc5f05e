/** Search terms: filled behind the records by the indexer, from its cursor, idempotently; searched through an index. */
import { afterEach, describe, expect, it } from 'vitest';
import { appendAudit } from '../../../src/store/audit.js';
import { indexAudit, indexCursor } from '../../../src/store/auditIndex.js';
import { candidatesSql, probeSql, searchAudit, timeSql, type AuditQuery } from '../../../src/store/auditSearch.js';
import { auditTerms, term } from '../../../src/store/auditTerms.js';
import type { Sql } from '../../../src/store/sql.js';
import type { StateStore } from '../../../src/store/stateStore.js';
import type { MakeStore } from './harness.js';
import { Opened } from './harness.js';

const T0 = 1_900_000_000_000;

/** One record of each shape the broker writes, at T0 + i seconds. */
const SAMPLES: Array<Record<string, unknown> & { event: string }> = [
  { event: 'release', requested: [{ name: 'pay/db' }, { name: 'pay/card', version: 2 }], node: { sanUris: ['spiffe://x/zone/z1/n1'], subject: 'CN=n1' }, software: ['app', 'worker'], released: ['pay/db@1', 'pay/card@2'] },
  { event: 'refusal', code: 'software_not_approved', requested: [{ name: 'pay/db' }], node: { sanUris: [], subject: 'CN=n2' }, software: [] },
  { event: 'refusal.unauthenticated', source: '10.0.0.1', codes: { nonce_unknown: 3, evidence_malformed: 1 }, count: 4 },
  { event: 'key.create', key: 'pay/db', version: 1, actor: 'cli:alice' },
  { event: 'admin.forbidden', actor: 'jwt:sub:mallory', code: 'forbidden', path: '/v1/admin/keys/hr/x' },
  { event: 'policy.load', trigger: 'start', version: 7, manifestSha256: 'ab'.repeat(32) },
];

async function writeSamples(store: StateStore): Promise<void> {
  for (const [i, e] of SAMPLES.entries()) await store.transaction((tx) => appendAudit(tx, e, T0 + i * 1000));
  await indexAudit(store.read, (fn) => store.transaction(fn));
}

async function termsOf(sql: Sql): Promise<string[]> {
  const rows = await sql.all('SELECT term, at, seq FROM audit_terms WHERE at >= $1 ORDER BY term, at', [T0]);
  return rows.map((r) => `${String(r.term)} @${Number(r.at) - T0}`);
}

const events = async (sql: Sql, q: Partial<AuditQuery>) => (await searchAudit(sql, { terms: [], limit: 100, since: T0, ...q })).rows.map((r) => r.event);

export function auditSearchContract(make: MakeStore): void {
  describe('audit search', () => {
    const opened = new Opened();
    afterEach(() => opened.closeAll());

    it('finds records by event, code, key, node, software and actor, within a time range, oldest first', async () => {
      const store = opened.add((await make()).store);
      await writeSamples(store);
      const sql = store.read;
      expect(await events(sql, { terms: [term('k', 'pay/db')] })).toEqual(['release', 'refusal', 'key.create']);
      expect(await events(sql, { terms: [term('k', 'pay/card')] })).toEqual(['release']);
      expect(await events(sql, { terms: [term('n', 'spiffe://x/zone/z1/n1')] })).toEqual(['release']);
      expect(await events(sql, { terms: [term('n', 'CN=n2')] })).toEqual(['refusal']);
      expect(await events(sql, { terms: [term('s', 'worker')] })).toEqual(['release']);
      expect(await events(sql, { terms: [term('c', 'nonce_unknown')] })).toEqual(['refusal.unauthenticated']);
      expect(await events(sql, { terms: [term('c', 'software_not_approved'), term('k', 'pay/db')] })).toEqual(['refusal']);
      expect(await events(sql, { terms: [term('c', 'software_not_approved'), term('k', 'pay/card')] })).toEqual([]);
      expect(await events(sql, { terms: [term('a', 'jwt:sub:mallory')] })).toEqual(['admin.forbidden']);
      expect(await events(sql, { terms: [term('e', 'policy.load')] })).toEqual(['policy.load']);
      // Releases, the bulk of the trail, have no event term: the event column along the time index.
      expect(await events(sql, { terms: [term('e', 'release')] })).toEqual([]);
      expect(await events(sql, { event: 'release' })).toEqual(['release']);
      expect(await events(sql, { terms: [term('k', 'pay/db')], event: 'release' })).toEqual(['release']);
      expect(await events(sql, { terms: [term('k', 'pay/db')], since: T0 + 1000, until: T0 + 3000 })).toEqual(['refusal']);
      expect(await events(sql, { since: T0 + 4000 })).toEqual(['admin.forbidden', 'policy.load']);
    });

    it('pages through results with a cursor, each record once', async () => {
      const store = opened.add((await make()).store);
      await writeSamples(store);
      for (const terms of [[], [term('k', 'pay/db')]]) {
        const seen: string[] = [];
        let after;
        for (let page = 0; page < 10; page++) {
          const r = await searchAudit(store.read, { terms, since: T0, limit: 2, ...(after ? { after } : {}) });
          seen.push(...r.rows.map((x) => x.event));
          if (!r.next) break;
          after = r.next;
        }
        expect(seen).toEqual(await events(store.read, { terms }));
      }
    });

    it('the indexer gives each record the terms of auditTerms, resumes from its cursor, and indexers running at once lose nothing', async () => {
      const t = await make();
      const store = opened.add(t.store);
      const other = opened.add(await t.another());
      await writeSamples(store);
      const expected = SAMPLES.flatMap((e, i) => auditTerms(e.event, e).map((x) => `${x} @${i * 1000}`)).sort();
      expect(await termsOf(store.read)).toEqual(expected);
      expect(await indexAudit(store.read, (fn) => store.transaction(fn))).toBe(0);
      const before = await indexCursor(store.read);
      for (let i = 0; i < 40; i++) await (i % 2 ? store : other).transaction((tx) => appendAudit(tx, { event: 'refusal', code: `c${i}` }, T0 + 10_000 + i));
      const index = (s: StateStore) => indexAudit(s.read, (fn) => s.transaction(fn), { batch: 7 });
      const [a, b] = await Promise.all([index(store), index(other)]);
      expect(a + b).toBeGreaterThanOrEqual(40);
      expect((await indexCursor(store.read)).pos).toBeGreaterThan(before.pos);
      const codes = (await store.read.all("SELECT term FROM audit_terms WHERE term LIKE 'c:c%' ORDER BY at")).map((r) => String(r.term));
      expect(codes).toEqual(Array.from({ length: 40 }, (_, i) => `c:c${i}`));
    });

    it('a search by a term and time range is answered from an index, not by scanning a table', async () => {
      const store = opened.add((await make()).store);
      await store.transaction(async (tx) => {
        for (let i = 0; i < 3000; i++) await appendAudit(tx, { event: i % 3 ? 'release' : 'refusal', code: i % 3 ? undefined : 'key_not_granted', requested: [{ name: `team${i % 50}/k` }] }, T0 + i);
      });
      await indexAudit(store.read, (fn) => store.transaction(fn));
      const q: AuditQuery = { terms: [term('k', 'team7/k'), term('c', 'key_not_granted')], since: T0 + 100, until: T0 + 2000, limit: 50 };
      const candidates = candidatesSql(q.terms[0]!, q, { at: -1, chain: '', seq: 0 }, 500);
      const probe = probeSql(q.terms[1]!, [{ at: T0 + 7, chain: 'x', seq: 1 }, { at: T0 + 157, chain: 'x', seq: 2 }]);
      const time = timeSql({ terms: [], event: 'release', since: T0 + 100, until: T0 + 200, limit: 50 });
      const [c, p, tm] = [await explain(store, candidates.text, candidates.params), await explain(store, probe.text, probe.params), await explain(store, time.text, time.params)];
      if (store.read.dialect.name === 'sqlite') {
        expect(c).toMatch(/^SEARCH audit_terms USING PRIMARY KEY \(term=\? AND at>\? AND at<\?\)$/);
        expect(p).toMatch(/SEARCH audit_terms USING PRIMARY KEY \(term=\? AND at=\? AND chain_id=\? AND seq=\?\)/);
        expect(tm).toMatch(/^SEARCH audit USING INDEX audit_at \(at>\? AND at<\?\)$/);
        for (const plan of [c, p, tm]) expect(plan).not.toMatch(/SCAN audit|TEMP B-TREE/);
      } else {
        // The driving term's range is an index condition, read in order (no sort).
        expect(c).toMatch(/Index Only Scan using audit_terms_pkey on audit_terms[^\n]*\n\s+Index Cond: \(\(term = 'k:team7\/k'::text\) AND \(at >= /);
        expect(p).toMatch(/Index (Only )?Scan using audit_terms_pkey on audit_terms/);
        expect(tm).toMatch(/Index Scan using audit_at on audit/);
        for (const plan of [c, tm]) expect(plan).not.toMatch(/Seq Scan|Sort/);
        expect(p).not.toMatch(/Seq Scan/); // (it sorts the few keys it was given, to probe each once)
      }
      expect((await searchAudit(store.read, { terms: [term('k', 'team7/k'), term('c', 'key_not_granted')], since: T0 + 100, until: T0 + 2000, limit: 50 })).rows.length).toBeGreaterThan(5);
    });
  });
}

/**
 * The query plan. PostgreSQL plans by statistics: after ANALYZE, with sequential scans priced out,
 * a plan that still scans a table would mean no index can answer the query.
 */
async function explain(store: StateStore, text: string, params: unknown[]): Promise<string> {
  if (store.read.dialect.name === 'sqlite') {
    const rows = await store.read.all(`EXPLAIN QUERY PLAN ${text}`, params);
    return rows.map((r) => String(r.detail)).join('\n');
  }
  await store.transaction((tx) => tx.run('ANALYZE audit_terms').then(() => tx.run('ANALYZE audit')));
  return store.transaction(async (tx) => {
    await tx.run('SET LOCAL enable_seqscan = off');
    const rows = await tx.all(`EXPLAIN ${text}`, params);
    return rows.map((r) => String(r['QUERY PLAN'])).join('\n');
  });
}
