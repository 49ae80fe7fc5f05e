/**
 * Several `keyanchor serve` processes on one PostgreSQL database, as replicas behind a load
 * balancer would run: one config file (one state directory for the software KEK they share), the
 * schema migrated once with `keyanchor store migrate`, plain HTTP on loopback. Pool waits are
 * generous (10 s): the suites offer far more concurrency than a pool of 8 on two shared cores
 * serves within the default 2 s, and they test exactly-once, not the pool bound.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { runKeyanchor, startBrokerProcess, type BrokerProcess } from './processes.js';
import type { PgCluster, PgServer } from './postgres.js';
import type { World } from './world.js';

export const DB_PASSWORD_ENV = 'KEYANCHOR_TEST_DB_PASSWORD';

export interface Replicas {
  config: string;
  env: NodeJS.ProcessEnv;
  brokers: BrokerProcess[];
  keyanchor(...args: string[]): ReturnType<typeof runKeyanchor>;
  start(): Promise<BrokerProcess>;
  stopAll(): Promise<void>;
}

/** Writes the config, migrates the database and creates `keys` (the first with --init). */
export async function setUpReplicas(w: World, pg: PgCluster, db: string, opts: { server?: PgServer; extra?: Record<string, unknown>; keys?: string[]; migrate?: boolean } = {}): Promise<Replicas> {
  const config = path.join(w.dir, `replicas-${db}-${opts.server?.port ?? pg.primary.port}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, dev: { enabled: false }, log: { level: 'warn' },
      store: { kind: 'postgres', url: pg.url(db, opts.server), password: { env: DB_PASSWORD_ENV }, pool: { max: 8, acquireTimeoutMs: 10_000 }, statementTimeoutMs: 5000, changePollMs: 200 },
      ...opts.extra,
    }),
  );
  const env = { [DB_PASSWORD_ENV]: pg.password };
  const keyanchor = (...args: string[]) => runKeyanchor(['--config', config, ...args], env);
  const r: Replicas = {
    config,
    env,
    brokers: [],
    keyanchor,
    start: async () => {
      const b = await startBrokerProcess(['--config', config, 'serve'], env);
      r.brokers.push(b);
      return b;
    },
    stopAll: async () => {
      await Promise.all(r.brokers.map((b) => b.stop()));
    },
  };
  if (opts.migrate ?? true) {
    const migrated = await keyanchor('store', 'migrate');
    expect(migrated.code, migrated.stderr).toBe(0);
  }
  for (const [i, k] of (opts.keys ?? []).entries()) {
    const c = await keyanchor('keys', 'create', ...(i === 0 ? ['--init'] : []), k);
    expect(c.code, c.stderr).toBe(0);
  }
  return r;
}

export interface Answer {
  status: number;
  code?: string;
  requestId?: string;
  body: Record<string, unknown>;
}

export async function postJson(url: string, body: unknown): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  return { status: res.status, body: parsed, ...(typeof parsed.code === 'string' ? { code: parsed.code } : {}), ...(typeof parsed.requestId === 'string' ? { requestId: parsed.requestId } : {}) };
}
