/**
 * A throwaway PostgreSQL cluster for one test file: `initdb` into a temp directory, started with
 * `pg_ctl` on a free loopback port (as the `postgres` user through `runuser` when the tests run as
 * root, since PostgreSQL refuses to run as root), password authentication over TCP, and a database
 * per suite. Everything is stopped and removed afterwards, also when the process exits early.
 * Optionally a streaming-replication standby (synchronous) for the failover test.
 *
 * Missing PostgreSQL: with KEYANCHOR_REQUIRE_DEPS=1 `postgresAvailable()` throws (CI must not skip
 * silently); otherwise it warns loudly and the caller skips its suite.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync, chmodSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

const ROOTS = ['/usr/lib/postgresql', '/usr/local/opt/postgresql/bin', '/opt/homebrew/opt/postgresql/bin'];

/** The newest /usr/lib/postgresql/<ver>/bin holding initdb and pg_ctl, or KEYANCHOR_PG_BIN. */
export function postgresBin(): string | undefined {
  if (process.env.KEYANCHOR_PG_BIN) return process.env.KEYANCHOR_PG_BIN;
  const root = ROOTS[0]!;
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'initdb'))) return path.join(root, v, 'bin');
  return undefined;
}

export function postgresAvailable(): boolean {
  if (postgresBin()) return true;
  const msg = 'PostgreSQL (initdb, pg_ctl in /usr/lib/postgresql/<ver>/bin) is not installed: the PostgreSQL suites cannot run';
  if (process.env.KEYANCHOR_REQUIRE_DEPS === '1') throw new Error(`${msg} (KEYANCHOR_REQUIRE_DEPS=1)`);
  console.warn(`\n*** SKIPPING: ${msg}. Install the Debian package postgresql (see .ci/run). ***\n`);
  return false;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL program as the postgres user (or as ourselves when not root). */
function pgRun(bin: string, prog: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const cmd = path.join(bin, prog);
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, cwd: '/' });
}

export interface PgServer {
  port: number;
  dataDir: string;
  start(): void;
  /** `fast` (clean) or `immediate` (like a crash: no checkpoint). */
  stop(mode?: 'fast' | 'immediate'): void;
  promote(): void;
  running(): boolean;
}

export interface PgCluster {
  primary: PgServer;
  password: string;
  dir: string;
  /** A new, empty database; returns its name. */
  createDatabase(name?: string): Promise<string>;
  /** postgres://postgres@127.0.0.1:PORT/DB (the password goes separately, as in keyanchor's config). */
  url(db: string, server?: PgServer): string;
  /** A synchronous streaming-replication standby of the primary. */
  addStandby(): Promise<PgServer>;
  cleanup(): void;
}

const clusters = new Set<PgCluster>();
process.once('exit', () => {
  for (const c of clusters) c.cleanup();
});

function server(bin: string, dataDir: string, port: number, logFile: string): PgServer {
  return {
    port,
    dataDir,
    start: () => void pgRun(bin, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start']),
    stop: (mode = 'fast') => {
      try {
        pgRun(bin, 'pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
      } catch {
        /* not running */
      }
    },
    promote: () => void pgRun(bin, 'pg_ctl', ['-D', dataDir, '-w', 'promote']),
    running: () => {
      try {
        pgRun(bin, 'pg_ctl', ['-D', dataDir, 'status']);
        return true;
      } catch {
        return false;
      }
    },
  };
}

const conf = (port: number, dir: string, extra: string[]) =>
  [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    'max_connections = 300',
    'shared_buffers = 32MB',
    'log_min_messages = warning',
    ...extra,
  ].join('\n') + '\n';

/** Starts a cluster. `fsync: false` (the default for tests) trades power-loss safety for speed. */
export async function startPostgres(opts: { fsync?: boolean; extraConf?: string[] } = {}): Promise<PgCluster> {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed');
  const dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-pg-'));
  chmodSync(dir, 0o755);
  const password = randomBytes(12).toString('hex');
  writeFileSync(path.join(dir, 'pw'), password + '\n');
  if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const dataDir = path.join(dir, 'primary');
  const servers: PgServer[] = [];
  const cluster: PgCluster = {
    primary: undefined as unknown as PgServer,
    password,
    dir,
    createDatabase: async (name = `ka_${randomBytes(6).toString('hex')}`) => {
      const c = new pg.Client({ host: '127.0.0.1', port: cluster.primary.port, user: 'postgres', password, database: 'postgres' });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return name;
    },
    url: (db, s = cluster.primary) => `postgres://postgres@127.0.0.1:${s.port}/${db}`,
    addStandby: async () => {
      const port = await freePort();
      const sdir = path.join(dir, `standby${servers.length}`);
      pgRun(bin, 'pg_basebackup', ['-h', '127.0.0.1', '-p', String(cluster.primary.port), '-U', 'postgres', '-D', sdir, '-R', '-X', 'stream', '--no-sync'], { PGPASSWORD: password });
      // `-R` wrote primary_conninfo (and standby.signal); only the port and socket directory change.
      appendFileSync(path.join(sdir, 'postgresql.conf'), conf(port, dir, []));
      if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', sdir]);
      const s = server(bin, sdir, port, path.join(dir, `standby${servers.length}.log`));
      s.start();
      servers.push(s);
      // Wait until the primary sees it as a synchronous standby.
      const c = new pg.Client({ host: '127.0.0.1', port: cluster.primary.port, user: 'postgres', password, database: 'postgres' });
      await c.connect();
      try {
        for (let i = 0; i < 200; i++) {
          const r = await c.query('SELECT sync_state FROM pg_stat_replication');
          if (r.rows[0]?.sync_state === 'sync') return s;
          await new Promise((res) => setTimeout(res, 50));
        }
      } finally {
        await c.end();
      }
      throw new Error('the standby did not become synchronous');
    },
    cleanup: () => {
      clusters.delete(cluster);
      for (const s of servers) s.stop('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  clusters.add(cluster);
  try {
    pgRun(bin, 'initdb', ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${path.join(dir, 'pw')}`, '-E', 'UTF8', '--no-sync']);
    const port = await freePort();
    appendFileSync(path.join(dataDir, 'postgresql.conf'), conf(port, dir, [
      `fsync = ${opts.fsync ? 'on' : 'off'}`,
      ...(opts.fsync ? [] : ['synchronous_commit = on', 'full_page_writes = off']),
      ...(opts.extraConf ?? []),
    ]));
    cluster.primary = server(bin, dataDir, port, path.join(dir, 'primary.log'));
    cluster.primary.start();
    servers.push(cluster.primary);
  } catch (e) {
    cluster.cleanup();
    throw e;
  }
  return cluster;
}
