import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { Command, Option } from 'commander';
import { DEMO_KEY, startBroker, type Broker, type BrokerOptions } from '../broker.js';
import type { Config } from '../config.js';
import { BrokerError } from '../errors.js';
import { createLogger } from '../log.js';
import { PolicyRefusal } from '../policy/bundle/refusals.js';
import { formatProblem } from '../policy/problems.js';
import { PolicyStartError } from '../policy/runtime.js';
import { StoreHost } from '../store/remote/host.js';
import { MetricsGatherer, workerMetrics } from '../server/workerMetrics.js';
import { isToWorker, primaryChannel, WORKER_FLAG, WorkerPool, workerCount, type FromWorker } from '../server/workers.js';
import { configFrom, EXIT, fail, reportConfigError } from './context.js';

export const devBanner = (stateDir: string) =>
  `keyanchor: DEV MODE (--dev or dev.enabled): a dev TLS CA, demo node and publisher credentials and the demo key ${DEMO_KEY} ` +
  `live in ${stateDir}; anyone with that directory can attest as the demo node. Never run a broker in dev mode in production.\n`;

interface ServeFlags {
  host?: string;
  port?: number;
  insecureHttp?: boolean;
  dev?: boolean;
  requireSignedPolicy?: boolean;
  workers?: number;
  /** Set by the primary of `serve --workers` on the workers it starts. */
  worker?: number;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the broker (HTTPS; TLS from the config, or a dev CA with --dev)')
    .option('--host <host>', 'listen address (default 127.0.0.1)')
    .option('--port <port>', 'listen port (default 8443; 0 picks a free one, printed on start)', (v) => Number.parseInt(v, 10))
    .option('--insecure-http', 'plain HTTP, only on a loopback address, for tests')
    .option('--dev', 'dev mode: dev TLS CA, demo credentials and the demo key in the state dir (never in production)')
    .option('--require-signed-policy', 'refuse to run without a pinned policy trust root (policy.root)')
    .option('--workers <n>', 'broker processes behind one listening socket (default server.workers: one per core with TLS outside dev mode, else 1)', (v) => Number.parseInt(v, 10))
    .addOption(new Option(`${WORKER_FLAG} <id>`, 'set by the primary on the workers it starts').argParser((v) => Number.parseInt(v, 10)).hideHelp())
    .action(async (o: ServeFlags, cmd: Command) => {
      let config;
      try {
        // A worker reads the same config; the primary has said where it came from.
        config = configFrom(cmd, { host: o.host, port: o.port, insecureHttp: o.insecureHttp, dev: o.dev, requireSignedPolicy: o.requireSignedPolicy, workers: o.workers }, { announce: o.worker === undefined });
      } catch (e) {
        reportConfigError(e);
      }
      if (o.worker !== undefined) return serveAsWorker(config, o.worker);
      if (config.dev.enabled) process.stderr.write(devBanner(config.stateDir));
      const workers = workerCount(config, availableParallelism());
      if (workers > 1) return serveWithWorkers(config, workers);
      const broker = await start(config);
      untilSignalled(broker);
      // Only now say so: a supervisor may signal the moment it reads this line, and a signal that
      // arrived before the handlers above would kill the process without the drain.
      announce(broker);
    });
}

/** Starts one broker, or exits with the reason it cannot start. */
async function start(config: Config, opts: BrokerOptions = {}): Promise<Broker> {
  try {
    return await startBroker(config, opts);
  } catch (e) {
    refuseToStart(e);
  }
}

function refuseToStart(e: unknown): never {
  if (e instanceof PolicyRefusal) fail(`refusing to start: policy refused (${e.code})\n  ${e.problems.map(formatProblem).join('\n  ')}`, EXIT.invalid);
  if (e instanceof PolicyStartError) fail(`refusing to start: ${e.message}`, EXIT.invalid);
  // The reason (which file, which CKR_*) is what the operator needs; it never holds a secret.
  const code = (e as { code?: unknown }).code;
  fail(`refusing to start: ${e instanceof BrokerError ? `${e.code}: ${e.reason}` : `${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message}`}`);
}

function announce(b: { url: string; tlsCa?: string }): void {
  process.stdout.write(`keyanchor listening on ${b.url}\n`);
  if (b.tlsCa) process.stdout.write(`dev TLS CA (give it to agents with --ca): ${b.tlsCa}\n`);
}

/**
 * SIGHUP reloads; SIGTERM or SIGINT drains and exits; a second one exits at once. A worker of
 * `serve --workers` (`worker`) is told to reload and stop by its primary, which also decides when
 * to stop at once (it kills it): a signal sent to every process (Ctrl-C to the process group,
 * systemd's stop) only starts its drain, once, and SIGHUP is left to the primary.
 */
function untilSignalled(broker: Broker, more: { worker?: boolean; onStop?: (stop: () => void) => void; onReload?: (reload: () => void) => void } = {}): void {
  let stopping = false;
  const reload = () => void broker.reload();
  const stop = (why: string) => {
    if (stopping && more.worker) return;
    if (stopping) {
      process.stderr.write(`keyanchor: ${why} again: stopping now, without waiting for requests in flight\n`);
      process.exit(EXIT.failure);
    }
    stopping = true;
    broker.close().then(
      () => process.exit(EXIT.ok),
      (e: unknown) => fail(`shutdown failed: ${e instanceof BrokerError ? `${e.code}: ${e.reason}` : String(e)}`),
    );
  };
  process.on('SIGHUP', more.worker ? () => undefined : reload);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  more.onStop?.(() => stop('shutdown'));
  more.onReload?.(reload);
}

/** One worker of `serve --workers`: a broker serving the connections the primary hands it, told by the primary when to reload and stop. */
async function serveAsWorker(config: Config, id: number): Promise<void> {
  const log = createLogger(config.log.level).child({ worker: id });
  const broker = await start(config, { log, worker: config.store.kind === 'sqlite' ? { writer: primaryChannel() } : {} });
  broker.metrics.gather = workerMetrics(() => broker.metrics.snapshot(), log);
  process.on('message', (m: unknown, handle: unknown) => {
    if (!isToWorker(m) || m.keyanchorWorker !== 'connection') return;
    if (handle) broker.accept(handle as Socket);
    process.send!({ keyanchorWorker: 'accepted' } satisfies FromWorker); // ready for the next one (workers.ts)
  });
  untilSignalled(broker, {
    worker: true,
    onStop: (stop) => {
      process.on('message', (m: unknown) => isToWorker(m) && m.keyanchorWorker === 'shutdown' && stop());
      process.once('disconnect', stop); // the primary is gone: no more connections will come
    },
    onReload: (reload) => process.on('message', (m: unknown) => isToWorker(m) && m.keyanchorWorker === 'reload' && reload()),
  });
  process.send!({ keyanchorWorker: 'ready' } satisfies FromWorker);
}

/** The primary of `serve --workers`: a broker that listens, hands connections to its workers, and owns the SQLite writer. */
async function serveWithWorkers(config: Config, workers: number): Promise<void> {
  const log = createLogger(config.log.level).child({ role: 'primary' });
  let pool: WorkerPool | undefined;
  const broker = await start(config, { log, primary: { handOff: (socket) => pool?.handOff(socket) ?? false, workersGone: async () => void (await pool?.exited) } });
  const host = config.store.kind === 'sqlite' ? new StoreHost(broker.store, { interactiveTimeoutMs: config.store.busyTimeoutMs }) : undefined;
  const gatherer = new MetricsGatherer(() => broker.metrics.snapshot(), () => pool?.readyChildren() ?? [], log);
  broker.metrics.gather = () => gatherer.gather();
  pool = new WorkerPool(config, workers - 1, log, host, (child) => gatherer.attach(child));
  pool.start();
  let stopping = 0;
  const stop = (why: string) => {
    pool!.shutdown();
    if (++stopping > 1) {
      process.stderr.write(`keyanchor: ${why} again: stopping now, without waiting for requests in flight\n`);
      return void pool!.exited.then(() => process.exit(EXIT.failure));
    }
    broker.close().then(
      async () => process.exit(await pool!.exited),
      (e: unknown) => fail(`shutdown failed: ${e instanceof BrokerError ? `${e.code}: ${e.reason}` : String(e)}`),
    );
  };
  process.on('SIGHUP', () => {
    void broker.reload();
    pool!.tell({ keyanchorWorker: 'reload' });
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await pool.ready;
  } catch (code) {
    await broker.close(0);
    process.exit(code as number);
  }
  log.info({ url: broker.url, workers }, 'every worker is ready');
  announce(broker);
}
