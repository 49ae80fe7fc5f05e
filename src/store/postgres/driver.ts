/**
 * The PostgreSQL backend, for several brokers on one database: a bounded pool of connections
 * (node-postgres, loaded only here), one transaction per pooled connection at a time, prepared
 * statements, and the database's clock for nonce expiry. Each connection that writes audit records
 * has its own chain (see audit.ts). Pool waits, statements and idle transactions have time limits,
 * so no request waits forever on a database that is gone; the pool reconnects by itself.
 *
 * A LISTEN connection wakes the change feed when another broker commits a change; it reconnects
 * with a backoff, and the feed polls as well, so a lost notification only costs one poll interval.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import { newChain } from '../audit.js';
import type { Driver } from '../driver.js';
import type { ChainHead, ChangeTopic, CommittedHead, Dialect, Row, Sql, TxSql } from '../sql.js';

export interface PostgresOptions {
  url: string;
  password?: string;
  ssl?: PoolConfig['ssl'];
  poolMax: number;
  /** Longest wait for a pooled connection (or a new one). */
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  onError: (e: unknown) => void;
}

const DIALECT: Dialect = {
  name: 'postgres',
  forUpdate: ' FOR UPDATE',
  tableExists: 'SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1',
  nowMs: '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT',
};
const CHANNEL = 'keyanchor_changes';
/** pg_advisory_xact_lock key for schema migrations ("keyanchor" in ASCII, truncated). */
const MIGRATION_LOCK = 0x6b6579616e63;

const statementName = (text: string) => 'ka_' + createHash('sha1').update(text).digest('hex').slice(0, 20);

class ClientSql implements Sql {
  readonly dialect = DIALECT;
  constructor(
    protected readonly client: Pick<PoolClient, 'query'> | Pool,
    private readonly prepared: boolean,
  ) {}
  async all<R extends Row>(text: string, params: readonly unknown[] = []): Promise<R[]> {
    const q = this.prepared ? { name: statementName(text), text, values: params as unknown[] } : { text, values: params as unknown[] };
    return (await this.client.query(q)).rows as R[];
  }
  async run(text: string, params: readonly unknown[] = []): Promise<number> {
    const q = this.prepared ? { name: statementName(text), text, values: params as unknown[] } : { text, values: params as unknown[] };
    return (await this.client.query(q)).rowCount ?? 0;
  }
}

export async function openPostgresDriver(o: PostgresOptions): Promise<Driver> {
  const { default: pg } = await import('pg');
  const int8 = (v: string) => Number(v);
  const types = { getTypeParser: (oid: number, format?: string) => (oid === pg.types.builtins.INT8 ? int8 : pg.types.getTypeParser(oid, format as 'text')) };
  // Host, port, user and database from the URL; the password separately (pg would let the URL's
  // absent password override it).
  const u = new URL(o.url);
  const config: PoolConfig = {
    host: decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')) || 'localhost',
    port: u.port ? Number(u.port) : 5432,
    ...(u.username ? { user: decodeURIComponent(u.username) } : {}),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.ssl !== undefined ? { ssl: o.ssl } : {}),
    max: o.poolMax,
    connectionTimeoutMillis: o.connectTimeoutMs,
    statement_timeout: o.statementTimeoutMs,
    lock_timeout: o.statementTimeoutMs,
    idle_in_transaction_session_timeout: Math.max(o.statementTimeoutMs * 4, 1000),
    query_timeout: o.statementTimeoutMs + 1000,
    application_name: 'keyanchor',
    keepAlive: true,
    types: types as PoolConfig['types'],
  };
  const pool = new pg.Pool(config);
  pool.on('error', o.onError); // an idle connection that died: the pool replaces it
  return new PostgresDriver(pool, () => new pg.Client({ ...config }), o.onError);
}

class PostgresDriver implements Driver {
  readonly dialect = DIALECT;
  readonly reader: Sql;
  readonly #chains: ChainHead[] = [];
  /** Every chain's last committed head; `live` while the chain is in #chains or in use. */
  readonly #committed = new Map<string, { seq: number; hash: string; live: boolean }>();

  constructor(
    private readonly pool: Pool,
    private readonly newClient: () => import('pg').Client,
    private readonly onError: (e: unknown) => void,
  ) {
    this.reader = new ClientSql(pool, false);
  }

  async transaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A connection that dies while checked out (between two statements) emits 'error' on the
    // client: keep it, so the transaction fails on its next statement instead of the process.
    let lost: unknown;
    const onLost = (e: unknown) => {
      lost = e;
      this.onError(e);
    };
    client.on('error', onLost);
    let chain: ChainHead | undefined;
    let before: Pick<ChainHead, 'seq' | 'hash'> | undefined;
    let certain = true;
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const sql = new ClientSql(client, true);
      const tx: TxSql = {
        dialect: DIALECT,
        all: (t, p) => sql.all(t, p),
        run: (t, p) => sql.run(t, p),
        now: async () => Number((await sql.all<{ now: number }>(`SELECT ${DIALECT.nowMs!} AS now`))[0]!.now),
        chain: () => {
          if (!chain) {
            chain = this.#chains.pop() ?? newChain();
            before = { seq: chain.seq, hash: chain.hash };
          }
          return chain;
        },
        notify: async (topic: ChangeTopic) => {
          await sql.run('SELECT pg_notify($1, $2)', [CHANNEL, topic]);
        },
      };
      let out: T;
      try {
        out = await fn(tx);
      } catch (e) {
        await client.query('ROLLBACK').catch((re: unknown) => (broken = re));
        if (chain && before) Object.assign(chain, before); // rolled back: the chain is where it was
        throw e;
      }
      certain = false;
      await client.query('COMMIT');
      certain = true;
      if (chain && chain.seq > 0) this.#committed.set(chain.chainId, { seq: chain.seq, hash: chain.hash, live: true });
      return out;
    } catch (e) {
      broken ??= certain ? undefined : e;
      throw e;
    } finally {
      // A chain whose last transaction may or may not have committed is not used again.
      if (chain && certain && broken === undefined && lost === undefined) this.#chains.push(chain);
      else if (chain) this.#abandon(chain.chainId);
      client.off('error', onLost);
      const bad = broken ?? lost;
      client.release(bad === undefined ? undefined : bad instanceof Error ? bad : new Error(String(bad)));
    }
  }

  async migrationTransaction<T>(fn: (tx: TxSql) => Promise<T>): Promise<T> {
    return this.transaction(async (tx) => {
      await tx.all('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      return fn(tx);
    });
  }

  listen(onChange: () => void): () => void {
    let stopped = false;
    let client: import('pg').Client | undefined;
    let delay = 200;
    const connect = async () => {
      if (stopped) return;
      const c = this.newClient();
      let retried = false;
      // Whichever comes first (a failed connect, an error, the end of the connection) retries once.
      const retry = () => {
        if (retried || stopped) return;
        retried = true;
        client = undefined;
        setTimeout(() => void connect(), delay).unref();
        delay = Math.min(delay * 2, 5000);
      };
      c.on('error', retry);
      c.on('end', retry);
      try {
        await c.connect();
        await c.query(`LISTEN ${CHANNEL}`);
        c.on('notification', () => onChange());
        client = c;
        delay = 200;
        onChange(); // catch up on what was missed while disconnected
      } catch (e) {
        this.onError(e);
        retry();
        await c.end().catch(() => undefined);
      }
    };
    void connect();
    return () => {
      stopped = true;
      void client?.end().catch(() => undefined);
    };
  }

  committedHeads(): CommittedHead[] {
    return [...this.#committed].map(([chainId, h]) => ({ chainId, ...h }));
  }

  #abandon(chainId: string): void {
    const h = this.#committed.get(chainId);
    if (h) h.live = false;
  }

  async ping(): Promise<void> {
    await this.reader.all('SELECT 1 AS one');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
