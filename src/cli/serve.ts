import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { Command } from 'commander';
import { DEMO_KEY, startBroker, type Broker } from '../broker.js';
import { systemClock } from '../clock.js';
import type { Config } from '../config.js';
import { BrokerError } from '../errors.js';
import { createLogger } from '../log.js';
import { PolicyRefusal } from '../policy/bundle/refusals.js';
import { formatProblem } from '../policy/problems.js';
import { PolicyStartError } from '../policy/runtime.js';
import { isToWorker, primaryChannel, runPrimary, workerCount, type FromWorker } from '../server/cluster.js';
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
    .action(async (o: ServeFlags, cmd: Command) => {
      let config;
      try {
        // A worker reads the same config; the primary has said where it came from.
        config = configFrom(cmd, { host: o.host, port: o.port, insecureHttp: o.insecureHttp, dev: o.dev, requireSignedPolicy: o.requireSignedPolicy, workers: o.workers }, { announce: !cluster.isWorker });
      } catch (e) {
        reportConfigError(e);
      }
      if (cluster.isWorker) return serveAsWorker(config);
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
async function start(config: Config, log = createLogger(config.log.level), writer?: ReturnType<typeof primaryChannel>): Promise<Broker> {
  try {
    return await startBroker(config, { log, ...(cluster.isWorker ? { worker: writer ? { writer } : {} } : {}) });
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

/** SIGHUP reloads; SIGTERM or SIGINT drains and exits; a second one exits at once. */
function untilSignalled(broker: Broker, more: { onStop?: (stop: () => void) => void; onReload?: (reload: () => void) => void } = {}): void {
  let stopping = false;
  const reload = () => void broker.reload();
  const stop = (why: string) => {
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
  process.on('SIGHUP', reload);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  more.onStop?.(() => {
    if (!stopping) stop('shutdown');
  });
  more.onReload?.(reload);
}

/** One worker of `serve --workers`: a broker on the primary's socket, told by the primary when to reload and stop. */
async function serveAsWorker(config: Config): Promise<void> {
  const log = createLogger(config.log.level).child({ worker: cluster.worker!.id });
  const broker = await start(config, log, config.store.kind === 'sqlite' ? primaryChannel() : undefined);
  untilSignalled(broker, {
    onStop: (stop) => process.on('message', (m: unknown) => isToWorker(m) && m.keyanchorWorker === 'shutdown' && stop()),
    onReload: (reload) => process.on('message', (m: unknown) => isToWorker(m) && m.keyanchorWorker === 'reload' && reload()),
  });
  const ready: FromWorker = { keyanchorWorker: 'listening', url: broker.url, ...(broker.tlsCa ? { tlsCa: broker.tlsCa } : {}) };
  process.send!(ready);
}

async function serveWithWorkers(config: Config, workers: number): Promise<void> {
  const log = createLogger(config.log.level).child({ role: 'primary' });
  let primary;
  try {
    primary = await runPrimary(config, workers, systemClock, log);
  } catch (e) {
    refuseToStart(e);
  }
  process.on('SIGHUP', () => primary.reload());
  process.on('SIGTERM', () => primary.stop());
  process.on('SIGINT', () => primary.stop());
  void primary.exited.then((code) => process.exit(code));
  try {
    const at = await primary.listening;
    log.info({ url: at.url, workers }, 'keyanchor broker listening');
    announce(at);
  } catch (code) {
    await primary.exited;
    process.exit(code as number);
  }
}
