/**
 * Three real `keyanchor serve` processes on one real PostgreSQL database (started for this file):
 * a nonce is good for exactly one release across all replicas, a rotation through one replica's
 * admin API is released at the new version by another, a rate limit holds across the replicas, a
 * suspension set or cleared through one replica is enforced by the others within 1 s, stopping PostgreSQL under load gives only
 * `503 store_unavailable` and the brokers recover by themselves, and a replica SIGKILLed under
 * load takes nothing committed with it: every answered release has its audit record.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { postJson, setUpReplicas, type Answer, type Replicas } from '../helpers/replicas.js';
import { APP_KEY, IMG_KEY, makeEvidence, makeWorld, openReleased, type World } from '../helpers/world.js';

const available = postgresAvailable();
const ISSUER = 'https://idp.replicas.test';
const AUDIENCE = 'keyanchor-admin';
const ROUNDS = 20;
const SUBMISSIONS = 200;
/** The limit on IMG_KEY, per minute, and the attempts made against it at once. */
const LIMIT = 10;
const ATTEMPTS = 30;

let cluster: PgCluster;
let w: World;
let db: string;
let r: Replicas;
let idpKey: CryptoKey;

beforeAll(async () => {
  if (!available) return;
  cluster = await startPostgres();
  db = await cluster.createDatabase();
  w = await makeWorld();
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  idpKey = privateKey;
  writeFileSync(path.join(w.dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'idp', use: 'sig' }] }));
  writeFileSync(path.join(w.policyDir, 'teams.yaml'), 'teams:\n  - name: team\n    keyPrefixes: ["team/"]\n    members: ["jwt:sub:owner@example.com"]\n  - name: secops\n    role: security\n    members: ["jwt:group:secops"]\n');
  writeFileSync(path.join(w.policyDir, 'limits.yaml'), `limits:\n  - name: img-key\n    key: ${IMG_KEY}\n    windows: ["${LIMIT}/min"]\n`);
  r = await setUpReplicas(w, cluster, db, {
    keys: [APP_KEY, IMG_KEY],
    extra: { admin: { enabled: true, jwt: { issuer: ISSUER, audience: AUDIENCE, jwksFile: path.join(w.dir, 'jwks.json'), algorithms: ['ES256'] } } },
  });
  for (let i = 0; i < 3; i++) await r.start();
}, 120_000);

afterAll(async () => {
  await r?.stopAll();
  cluster?.cleanup();
  w?.cleanup();
});

const challenge = async (url: string) => {
  const a = await postJson(`${url}/v1/challenge`, {});
  expect(a.status).toBe(200);
  return a.body.nonce as string;
};
const attest = (url: string, evidence: string) => postJson(`${url}/v1/attest`, { evidence });
const summary = (as: Answer[]) => {
  const m = new Map<string, number>();
  for (const a of as) m.set(`${a.status} ${a.code ?? ''}`.trim(), (m.get(`${a.status} ${a.code ?? ''}`.trim()) ?? 0) + 1);
  return Object.fromEntries([...m].sort());
};

async function query<T extends pg.QueryResultRow>(text: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port: cluster.primary.port, user: 'postgres', password: cluster.password, database: db });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

describe.skipIf(!available)('three brokers on one PostgreSQL database', () => {
  it(`${SUBMISSIONS} concurrent submissions of one nonce spread over the three: exactly one 200, ${ROUNDS} times`, { timeout: 240_000 }, async () => {
    const urls = r.brokers.map((b) => b.url);
    for (let round = 0; round < ROUNDS; round++) {
      const nonce = await challenge(urls[round % 3]!);
      const { compact } = await makeEvidence(w, { nonce });
      const answers = await Promise.all(Array.from({ length: SUBMISSIONS }, (_, i) => attest(urls[i % 3]!, compact)));
      expect(summary(answers), `round ${round}: ${JSON.stringify(summary(answers))}`).toEqual({ '200': 1, '401 nonce_replayed': SUBMISSIONS - 1 });
    }
  });

  it('a key rotated through one replica\'s admin API is released at the new version by another, at once', async () => {
    const [a, b, c] = r.brokers.map((x) => x.url);
    const token = await new SignJWT({ sub: 'owner@example.com', iss: ISSUER, aud: AUDIENCE }).setProtectedHeader({ alg: 'ES256', kid: 'idp' }).setIssuedAt().setExpirationTime('5m').sign(idpKey);
    const before = await makeEvidence(w, { nonce: await challenge(b!) });
    const v1 = await attest(b!, before.compact);
    expect(v1.status).toBe(200);
    const old = (v1.body.keys as Array<{ version: number; jwe: string }>)[0]!;
    const rotated = await fetch(`${a}/v1/admin/keys/${APP_KEY}/rotate`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(rotated.status).toBe(200);
    const newest = Math.max(...((await rotated.json()) as { versions: Array<{ version: number }> }).versions.map((v) => v.version));
    expect(newest).toBe(old.version + 1);
    for (const url of [b!, c!]) {
      const ev = await makeEvidence(w, { nonce: await challenge(url) });
      const got = await attest(url, ev.compact);
      expect(got.status).toBe(200);
      const k = (got.body.keys as Array<{ version: number; jwe: string }>)[0]!;
      expect(k.version).toBe(newest);
      const fresh = await openReleased(k.jwe, ev.recipient);
      const prior = await openReleased(old.jwe, before.recipient);
      expect(fresh.key.equals(prior.key)).toBe(false);
    }
  });

  it(`a limit of ${LIMIT} per minute holds across the replicas: of ${ATTEMPTS} attempts at once spread over the three, ${LIMIT} are allowed`, { timeout: 60_000 }, async () => {
    const urls = r.brokers.map((b) => b.url);
    // Evidence first (challenges spread over the replicas), so that the attempts themselves go out together.
    const ready = await Promise.all(Array.from({ length: ATTEMPTS }, async (_, i) => {
      const ev = await makeEvidence(w, { nonce: await challenge(urls[i % 3]!), binary: { sha256: w.pinnedSha256, sigs: [] }, image: { digest: w.imageDigest }, keys: [{ name: IMG_KEY }] });
      return { url: urls[(i + 1) % 3]!, evidence: ev.compact };
    }));
    const started = Date.now();
    const answers = await Promise.all(ready.map((x) => attest(x.url, x.evidence)));
    const elapsedMs = Date.now() - started;
    // GCRA: a burst of N from an idle window, then one every 60 s / N; the test takes seconds, so
    // at most what the window refilled meanwhile (nothing below 6 s) may pass beyond N.
    const refilled = Math.floor((elapsedMs * LIMIT) / 60_000);
    console.log(`limit across replicas: ${JSON.stringify(summary(answers))} in ${elapsedMs} ms (refilled meanwhile: ${refilled})`);
    const allowed = answers.filter((a) => a.status === 200).length;
    expect(allowed).toBeGreaterThanOrEqual(LIMIT);
    expect(allowed).toBeLessThanOrEqual(LIMIT + refilled);
    expect(Object.keys(summary(answers))).toEqual(['200', '429 rate_limited']);
    const [windows] = await query<{ n: string }>(`SELECT COUNT(*) AS n FROM limit_windows WHERE window_key = 'L:img-key:${LIMIT}/min'`);
    expect(Number(windows!.n)).toBe(1);
  });

  it('a suspension set through one replica is enforced by the others within 1 s; cleared, likewise', { timeout: 60_000 }, async () => {
    const [a, b, c] = r.brokers.map((x) => x.url);
    const token = await new SignJWT({ sub: 'sec@example.com', groups: ['secops'], iss: ISSUER, aud: AUDIENCE }).setProtectedHeader({ alg: 'ES256', kid: 'idp' }).setIssuedAt().setExpirationTime('5m').sign(idpKey);
    const admin = (method: string, p: string, body?: unknown) =>
      fetch(`${a}/v1/admin${p}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    // Evidence made beforehand, so that what is measured is the broker's answer only.
    const primed = async (url: string) => ({ url, evidence: (await makeEvidence(w, { nonce: await challenge(url) })).compact });
    const before = await Promise.all([b!, c!].map(primed));
    expect((await Promise.all(before.map((x) => attest(x.url, x.evidence)))).map((x) => x.status)).toEqual([200, 200]);

    const during = await Promise.all([b!, c!, b!, c!].map(primed));
    expect((await admin('POST', '/suspensions', { subject: 'software:app', reason: 'replica test' })).status).toBe(201);
    await sleep(1000);
    expect((await Promise.all(during.map((x) => attest(x.url, x.evidence)))).map((x) => `${x.status} ${x.code}`)).toEqual(Array(4).fill('403 suspended'));

    const after = await Promise.all([b!, c!].map(primed));
    expect((await admin('POST', `/suspensions/${encodeURIComponent('software:app')}/clear`)).status).toBe(200);
    await sleep(1000);
    expect((await Promise.all(after.map((x) => attest(x.url, x.evidence)))).map((x) => x.status)).toEqual([200, 200]);
  });

  it('PostgreSQL stopped under load: only 503 store_unavailable (and /readyz 503) while it is down; releases resume by themselves', { timeout: 120_000 }, async () => {
    const urls = r.brokers.map((b) => b.url);
    type Phase = 'before' | 'down' | 'after';
    let phase = 'before' as Phase;
    const seen: Record<Phase, Answer[]> = { before: [], down: [], after: [] };
    let stop = false;
    const worker = async (i: number) => {
      while (!stop) {
        const url = urls[i % 3]!;
        const at = phase;
        const ch = await postJson(`${url}/v1/challenge`, {});
        if (ch.status !== 200) {
          seen[at].push(ch);
          continue;
        }
        const { compact } = await makeEvidence(w, { nonce: ch.body.nonce as string });
        const a = await attest(url, compact);
        // Only answers to attempts begun and finished within one phase count for that phase.
        if (phase === at) seen[at].push(a);
      }
    };
    const workers = Array.from({ length: 6 }, (_, i) => worker(i));
    while (seen.before.filter((a) => a.status === 200).length < 10) await sleep(50);
    cluster.primary.stop('fast');
    phase = 'down';
    while (seen.down.length < 30) await sleep(50);
    const ready = await Promise.all(urls.map((u) => fetch(`${u}/readyz`).then(async (x) => ({ status: x.status, code: ((await x.json()) as { code?: string }).code }))));
    cluster.primary.start();
    phase = 'after';
    const deadline = Date.now() + 60_000;
    while (seen.after.filter((a) => a.status === 200).length < 6 && Date.now() < deadline) await sleep(100);
    // Each broker releases again, without a restart.
    const again = await Promise.all(urls.map(async (u) => {
      for (let t = 0; t < 100; t++) {
        const ev = await makeEvidence(w, { nonce: await challenge(u) });
        const a = await attest(u, ev.compact);
        if (a.status === 200) return a.status;
        await sleep(200);
      }
      return 0;
    }));
    stop = true;
    await Promise.all(workers);
    console.log(`PostgreSQL stopped under load: before ${JSON.stringify(summary(seen.before))}; while down ${JSON.stringify(summary(seen.down))}; after ${JSON.stringify(summary(seen.after))}`);
    expect(Object.keys(summary(seen.before))).toEqual(['200']);
    expect(Object.keys(summary(seen.down))).toEqual(['503 store_unavailable']);
    expect(ready).toEqual(urls.map(() => ({ status: 503, code: 'store_unavailable' })));
    expect(again).toEqual([200, 200, 200]);
    for (const u of urls) expect((await fetch(`${u}/readyz`)).status).toBe(200);
  });

  it('a statement past its timeout (a table locked by another session): 503 store_unavailable within the timeout; then releases resume', { timeout: 60_000 }, async () => {
    const url = r.brokers[0]!.url;
    const locker = new pg.Client({ host: '127.0.0.1', port: cluster.primary.port, user: 'postgres', password: cluster.password, database: db });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE consumed_nonces IN ACCESS EXCLUSIVE MODE');
    let answer: Answer;
    try {
      const { compact } = await makeEvidence(w, { nonce: await challenge(url) });
      answer = await attest(url, compact); // answered while the lock is still held: the wait is bounded
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    expect({ status: answer.status, code: answer.code }).toEqual({ status: 503, code: 'store_unavailable' });
    const { compact } = await makeEvidence(w, { nonce: await challenge(url) });
    expect((await attest(url, compact)).status).toBe(200);
  });

  it('a replica SIGKILLed under load: the others carry on, and every answered release has its audit record', { timeout: 120_000 }, async () => {
    const live = new Set([0, 1, 2]);
    const released: string[] = [];
    const failures: string[] = [];
    let stop = false;
    const worker = async (i: number) => {
      while (!stop) {
        const k = [...live][i % live.size]!;
        const url = r.brokers[k]!.url;
        try {
          const { compact } = await makeEvidence(w, { nonce: await challenge(url) });
          const a = await attest(url, compact);
          if (a.status === 200) released.push(a.requestId!);
          else failures.push(`${a.status} ${a.code}`);
        } catch (e) {
          if (live.has(k)) failures.push(String(e)); // a connection to the killed replica may fail
        }
      }
    };
    const workers = Array.from({ length: 6 }, (_, i) => worker(i));
    while (released.length < 20) await sleep(20);
    live.delete(2);
    r.brokers[2]!.proc.kill('SIGKILL');
    const atKill = released.length;
    while (released.length < atKill + 30) await sleep(20);
    stop = true;
    await Promise.all(workers);
    expect(failures.filter((f) => !f.includes('fetch failed') && !f.includes('ECONNRESET') && !f.includes('other side closed'))).toEqual([]);
    const rows = await query<{ body: string }>("SELECT body FROM audit WHERE event = 'release'");
    const recorded = new Set(rows.map((x) => (JSON.parse(x.body) as { requestId: string }).requestId));
    expect(released.filter((id) => !recorded.has(id))).toEqual([]);
    const [stats] = await query<{ n: string }>('SELECT SUM(count) AS n FROM release_stats'); // every release here is of one key
    expect(Number(stats!.n)).toBe(rows.length);
    const verify = await r.keyanchor('audit', 'verify');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/all intact/);
  });
});

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
