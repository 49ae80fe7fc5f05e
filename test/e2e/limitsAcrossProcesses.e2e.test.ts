/**
 * The rate-limit primitive across processes (the policy-level limits come later): three real
 * processes charge one GCRA window (50 per hour) on one store at the same instant, 60 attempts
 * each; together they are allowed exactly 50, on a SQLite file and on a PostgreSQL database.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../src/config.js';
import { postgresAvailable, startPostgres, type PgCluster } from '../helpers/postgres.js';
import { ROOT } from '../helpers/processes.js';

const PROCESSES = 3;
const ATTEMPTS = 60;
const LIMIT = 50;

const mod = (p: string) => JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'src', p)).href);
const script = `
  import { openStore } from ${mod('store/index.js')};
  import { chargeLimits } from ${mod('store/limits.js')};
  import { Secret } from ${mod('secret.js')};
  const config = JSON.parse(process.argv[1]);
  if (config.password) config.password = new Secret(config.password);
  const store = await openStore(config, { clock: { now: () => Date.now() } });
  process.stdout.write('ready\\n');
  process.stdin.once('data', async (at) => {
    while (Date.now() < Number(at));
    const now = Number(at);
    const results = await Promise.all(Array.from({ length: ${ATTEMPTS} }, () =>
      store.transaction((tx) => chargeLimits(tx, [{ key: 'global:${LIMIT}/h', limit: ${LIMIT}, periodMs: 3600000 }], now))));
    process.stdout.write(JSON.stringify(results.filter((r) => r.allowed).length) + '\\n');
    await store.close();
  });`;

async function race(config: Record<string, unknown>): Promise<number[]> {
  const children = Array.from({ length: PROCESSES }, () => spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(config)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
  const outputs = children.map((c) => {
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d));
    return { ready: new Promise<void>((r) => c.stdout.on('data', () => out.startsWith('ready\n') && r())), done: new Promise<string>((r) => c.on('close', () => r(out))) };
  });
  await Promise.all(outputs.map((o) => o.ready));
  const at = String(Date.now() + 200);
  for (const c of children) c.stdin.end(at);
  return (await Promise.all(outputs.map((o) => o.done))).map((out) => Number(out.trim().split('\n').at(-1)));
}

describe('one GCRA window charged by three processes at once', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-limits-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('on one SQLite file: exactly the limit is allowed', { timeout: 60_000 }, async () => {
    const config: StoreConfig = { kind: 'sqlite', file: path.join(dir, 'limits.db'), synchronous: 'normal', busyTimeoutMs: 10_000, changePollMs: 500 };
    const { openStore } = await import('../../src/store/index.js');
    await (await openStore(config, { clock: { now: () => Date.now() }, create: true })).close();
    const allowed = await race(config as unknown as Record<string, unknown>);
    expect(allowed).toHaveLength(PROCESSES);
    expect(allowed.reduce((a, b) => a + b, 0)).toBe(LIMIT);
  });

  describe.skipIf(!postgresAvailable())('on PostgreSQL', () => {
    let pg: PgCluster;
    beforeAll(async () => {
      pg = await startPostgres();
    });
    afterAll(() => pg?.cleanup());

    it('on one PostgreSQL database: exactly the limit is allowed', { timeout: 60_000 }, async () => {
      const db = await pg.createDatabase();
      const config = { kind: 'postgres', url: pg.url(db), password: pg.password, pool: { max: 10, acquireTimeoutMs: 10_000 }, statementTimeoutMs: 10_000, changePollMs: 500 };
      const { openStore } = await import('../../src/store/index.js');
      const { Secret } = await import('../../src/secret.js');
      await (await openStore({ ...config, password: new Secret(pg.password) } as StoreConfig, { clock: { now: () => Date.now() }, migrate: true })).close();
      const allowed = await race(config);
      expect(allowed).toHaveLength(PROCESSES);
      expect(allowed.reduce((a, b) => a + b, 0)).toBe(LIMIT);
    });
  });
});
