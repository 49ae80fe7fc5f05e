/**
 * Signed policy across replicas on one real PostgreSQL database (issue 11's rollback "on a second
 * replica"): two `keyanchor serve` processes, each with its own copy of the policy directory as two
 * hosts would have, share the policy high-water mark through the store. Once replica A accepts
 * bundle version 21, replica B refuses version 20 on reload and at a restart, and a bundle with
 * the same version but other content is refused as a conflict.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { testKey } from '../helpers/policyBundles.js';
import { runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { setUpReplicas, type Replicas } from '../helpers/replicas.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';

const available = postgresAvailable();
let cluster: PgCluster;
let w: World;
let r: Replicas;
const running: BrokerProcess[] = [];

/** A config for one "host": the shared database, its own policy directory, the pinned root. */
function hostConfig(name: string, policyDir: string): string {
  const file = path.join(w.dir, `${name}.json`);
  const base = JSON.parse(readFileSync(r.config, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...base, policyDir, log: { level: 'info' }, policy: { root: { keys: [path.join(w.dir, 'root.pub')], threshold: 1 }, requireSignedPolicy: true, watch: false } }));
  return file;
}

async function sign(dir: string, version: number): Promise<Buffer> {
  const s = await runKeyanchor(['policy', 'sign', '--key', path.join(w.dir, 'root.key'), '--version', String(version), '--expires', '30d', dir]);
  expect(s.code, s.stderr).toBe(0);
  return readFileSync(path.join(dir, 'policy.dsse'));
}

async function serve(config: string): Promise<BrokerProcess> {
  const b = await startBrokerProcess(['--config', config, 'serve'], r.env);
  running.push(b);
  return b;
}

/** SIGHUP, then the reload outcome the broker logged. */
async function sighup(b: BrokerProcess): Promise<Record<string, unknown>> {
  const from = b.output().length;
  b.proc.kill('SIGHUP');
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((res) => setTimeout(res, 25))) {
    const line = b.output().slice(from).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => /^policy (loaded|reloaded: unchanged|reload refused)/.test(String(l.msg)));
    if (line) return line;
  }
  throw new Error(`no reload outcome:\n${b.output().slice(from)}`);
}

beforeAll(async () => {
  if (!available) return;
  cluster = await startPostgres();
  const db = await cluster.createDatabase();
  w = await makeWorld();
  const root = testKey('p256');
  writeFileSync(path.join(w.dir, 'root.key'), root.privatePem, { mode: 0o600 });
  writeFileSync(path.join(w.dir, 'root.pub'), root.publicPem);
  r = await setUpReplicas(w, cluster, db, { keys: [APP_KEY] });
}, 120_000);

afterAll(async () => {
  await Promise.all(running.map((b) => b.stop()));
  cluster?.cleanup();
  w?.cleanup();
});

describe.skipIf(!available)('signed policy on two replicas sharing one PostgreSQL store', () => {
  it('a version accepted by one replica is a floor for the other: older is a rollback, same version with other content a conflict', { timeout: 120_000 }, async () => {
    const dirA = path.join(w.dir, 'host-a-policy');
    const dirB = path.join(w.dir, 'host-b-policy');
    cpSync(w.policyDir, dirA, { recursive: true });
    const v20 = await sign(dirA, 20);
    cpSync(dirA, dirB, { recursive: true });
    const a = await serve(hostConfig('host-a', dirA));
    const b = await serve(hostConfig('host-b', dirB));

    await sign(dirA, 21);
    expect(await sighup(a)).toMatchObject({ msg: 'policy loaded', version: 21 });

    // B never saw 21, yet a reload of 20 on B is a rollback now: the mark is in the shared store.
    writeFileSync(path.join(dirB, 'README.txt'), 'changed on host B\n');
    await sign(dirB, 20);
    expect(await sighup(b)).toMatchObject({ msg: 'policy reload refused; the policy in force stays', code: 'policy_rollback' });

    // Version 21 with other content than the one A accepted: a conflict, refused.
    await sign(dirB, 21);
    expect(await sighup(b)).toMatchObject({ code: 'policy_version_conflict' });

    // A restart of B with the old bundle does not start at all (exit 3, policy_rollback).
    await b.stop();
    rmSync(path.join(dirB, 'README.txt'));
    writeFileSync(path.join(dirB, 'policy.dsse'), v20); // exactly what B ran before: valid, signed, older
    const restarted = await runKeyanchor(['--config', hostConfig('host-b', dirB), 'serve'], r.env);
    expect(restarted.code).toBe(3);
    expect(restarted.stderr).toContain('policy_rollback');
  });
});
