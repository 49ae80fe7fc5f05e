/**
 * Failover with two real PostgreSQL instances: a primary with a synchronous streaming standby. A
 * broker on the primary consumes two nonces (one release, one refusal); the primary is killed
 * (immediate shutdown, no checkpoint) and the standby promoted with `pg_ctl promote`; a broker on
 * the promoted standby refuses both nonces as replayed, and its trail holds their records.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable, startPostgres, type PgCluster, type PgServer } from '../helpers/postgres.js';
import { postJson, setUpReplicas } from '../helpers/replicas.js';
import { APP_KEY, UNGRANTED_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

const available = postgresAvailable();
let cluster: PgCluster;
let standby: PgServer;
let w: World;

beforeAll(async () => {
  if (!available) return;
  cluster = await startPostgres({ extraConf: ["synchronous_standby_names = '*'", 'synchronous_commit = on'] });
  standby = await cluster.addStandby();
  w = await makeWorld();
}, 120_000);
afterAll(() => {
  cluster?.cleanup();
  w?.cleanup();
});

describe.skipIf(!available)('failover to a synchronous standby', () => {
  it('a nonce consumed before the primary dies is still consumed after the standby is promoted', { timeout: 120_000 }, async () => {
    const db = await cluster.createDatabase();
    const onPrimary = await setUpReplicas(w, cluster, db, { keys: [APP_KEY, UNGRANTED_KEY] });
    const a = await onPrimary.start();
    const nonce = async (url: string) => (await postJson(`${url}/v1/challenge`, {})).body.nonce as string;
    const released = await makeEvidence(w, { nonce: await nonce(a.url) });
    const refused = await makeEvidence(w, { nonce: await nonce(a.url), keys: [{ name: UNGRANTED_KEY }] });
    const first = await postJson(`${a.url}/v1/attest`, { evidence: released.compact });
    expect(first.status).toBe(200);
    expect(await postJson(`${a.url}/v1/attest`, { evidence: refused.compact })).toMatchObject({ status: 403, code: 'key_not_granted' });

    cluster.primary.stop('immediate');
    standby.promote();
    // The promoted server inherited synchronous_standby_names and has no standby of its own: as an
    // operator would, stop it waiting for one (else every commit waits, and brokers answer 503).
    const admin = new pg.Client({ host: '127.0.0.1', port: standby.port, user: 'postgres', password: cluster.password, database: 'postgres' });
    await admin.connect();
    await admin.query("ALTER SYSTEM SET synchronous_standby_names = ''");
    await admin.query('SELECT pg_reload_conf()');
    await admin.end();
    await onPrimary.stopAll();

    const onStandby = await setUpReplicas(w, cluster, db, { server: standby, migrate: false });
    const b = await onStandby.start();
    expect(await postJson(`${b.url}/v1/attest`, { evidence: released.compact })).toMatchObject({ status: 401, code: 'nonce_replayed' });
    expect(await postJson(`${b.url}/v1/attest`, { evidence: refused.compact })).toMatchObject({ status: 401, code: 'nonce_replayed' });
    // The promoted standby serves new releases, and its trail holds the records written on the primary.
    const fresh = await makeEvidence(w, { nonce: await nonce(b.url) });
    expect((await postJson(`${b.url}/v1/attest`, { evidence: fresh.compact })).status).toBe(200);
    await onStandby.stopAll();
    const verify = await onStandby.keyanchor('audit', 'verify');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/release 2\b/);
    expect(verify.stdout).toMatch(/refusal 3\b/);
  });
});
