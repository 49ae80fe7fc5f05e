/**
 * `keyanchor serve --workers N` (N > 1): N broker processes behind one listening socket, with the
 * guarantees of one broker.
 *
 * The primary (runPrimary) does no request work. It prepares the state once — files, the store and
 * its KEK, the demo key in dev — so that workers find it made, then forks N workers with
 * node:cluster. Each worker is a whole broker (startBroker: TLS, parsing, verification, policy,
 * custody, JWE) listening on the primary's socket: the primary accepts each connection and hands it
 * to the next worker in turn (node:cluster's round-robin), so a kept-alive connection stays with
 * one worker.
 *
 * The store: with SQLite the primary owns the writer (store/remote/host.ts) and group-commits every
 * worker's transactions, so nonces are single-use across workers, limits and suspensions are one
 * set of rows, and one audit chain holds every record in commit order; a worker reads the file
 * through its own connection. With PostgreSQL each worker opens its own pool, as replicas do.
 *
 * Supervision: a worker that dies is replaced (a procedure it had called commits or fails on its
 * own; its answer is lost as a dead single broker's is). Workers that keep dying before they listen
 * stop the broker. Signals: SIGHUP reloads every worker (policy, TLS, admin JWKS); SIGTERM or SIGINT
 * drains every worker (drain.ts) and, once all have exited, closes the store; a second one stops
 * at once. Workers are told over IPC, so a signal sent to the whole process group (Ctrl-C) does
 * not reach a worker twice.
 */
import cluster, { type Worker } from 'node:cluster';
import { ensureDemoKey, openKeys, prepareFiles, purgeEvery } from '../broker.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import '../release.js'; // defines the release path's transaction procedures, which workers call here
import { StoreHost } from '../store/remote/host.js';
import type { Channel } from '../store/remote/protocol.js';

/** Messages between the primary and its workers, beside the store's (store/remote/protocol.ts). */
export type ToWorker = { keyanchorWorker: 'reload' } | { keyanchorWorker: 'shutdown' };
export type FromWorker = { keyanchorWorker: 'listening'; url: string; tlsCa?: string };

const isFromWorker = (m: unknown): m is FromWorker => typeof m === 'object' && m !== null && (m as FromWorker).keyanchorWorker === 'listening';
export const isToWorker = (m: unknown): m is ToWorker => typeof m === 'object' && m !== null && typeof (m as ToWorker).keyanchorWorker === 'string';

/** `auto`: one worker per core with a production config (TLS, not dev), else one. */
export function workerCount(config: Config, cores: number): number {
  const w = config.server.workers;
  if (w !== 'auto') return w;
  return config.dev.enabled || config.insecureHttp ? 1 : Math.max(1, cores);
}

/** A worker's channel to the primary: its own process's IPC. */
export function primaryChannel(): Channel {
  return {
    send: (m) => process.send!(m),
    onMessage: (fn) => {
      process.on('message', fn);
      return () => process.off('message', fn);
    },
    onClose: (fn) => process.once('disconnect', fn),
  };
}

function workerChannel(w: Worker): Channel {
  return {
    send: (m) => w.send(m as never),
    onMessage: (fn) => {
      const l = (m: unknown) => fn(m);
      w.on('message', l);
      return () => w.off('message', l);
    },
    onClose: (fn) => w.once('disconnect', fn),
  };
}

export interface Primary {
  /** Resolves with the URL once every worker listens; rejects with the exit code of a worker that could not start. */
  listening: Promise<{ url: string; tlsCa?: string }>;
  /** Resolves with the exit code once every worker has exited and the store is closed. */
  exited: Promise<number>;
  reload(): void;
  /** Drains every worker (first call), or stops them at once (second call). */
  stop(): void;
}

/** Replacements that die before they listen, one after another, before the broker gives up. */
const MAX_FAILED_STARTS = 5;
/** A worker not gone this long after the end of the drain's grace period is killed. */
const EXIT_MARGIN_MS = 10_000;

export async function runPrimary(config: Config, workers: number, clock: Clock, log: Logger): Promise<Primary> {
  await prepareFiles(config, log);
  const onStoreError = (e: unknown) => log.warn({ err: String(e) }, 'store connection error');
  const opened = await openKeys(config, clock, 'serve', { onError: onStoreError });
  await ensureDemoKey(config, opened.keys, log);
  // Workers open custody themselves; the primary only needed it to check the KEK against the store.
  await opened.custodian?.close();
  const sqlite = config.store.kind === 'sqlite';
  const host = sqlite ? new StoreHost(opened.store, { interactiveTimeoutMs: config.store.busyTimeoutMs }) : undefined;
  const stopPurge = sqlite ? purgeEvery(opened.store, clock, onStoreError) : undefined;
  if (!sqlite) await opened.store.close();

  cluster.setupPrimary({ serialization: 'advanced' });
  const live = new Set<Worker>();
  const ready = new Set<Worker>();
  let everyoneListened = false;
  let stopping = 0;
  let failedStarts = 0;
  let exitCode = 0;
  /** The exit code of the first worker that could not start: the broker's own. */
  let startCode: number | undefined;
  let announce!: (v: { url: string; tlsCa?: string }) => void;
  let failStart!: (code: number) => void;
  const listening = new Promise<{ url: string; tlsCa?: string }>((resolve, reject) => {
    announce = resolve;
    failStart = reject;
  });
  let allExited!: () => void;
  const gone = new Promise<void>((r) => (allExited = r));

  const tell = (m: ToWorker) => {
    for (const w of live) if (w.isConnected()) w.send(m);
  };
  const fork = () => {
    const w = cluster.fork();
    live.add(w);
    const detach = host?.attach(workerChannel(w));
    w.on('message', (m: unknown) => {
      if (!isFromWorker(m)) return;
      ready.add(w);
      failedStarts = 0;
      log.info({ worker: w.id, pid: w.process.pid }, 'worker listening');
      if (!everyoneListened && ready.size === workers) {
        everyoneListened = true;
        announce({ url: m.url, ...(m.tlsCa ? { tlsCa: m.tlsCa } : {}) });
      }
    });
    w.on('exit', (code, signal) => {
      detach?.();
      live.delete(w);
      const started = ready.delete(w);
      if (stopping) {
        if (code !== 0) exitCode = 1;
        if (live.size === 0) allExited();
        return;
      }
      if (!everyoneListened) {
        // A worker that cannot start says why on stderr; the broker exits as it would have.
        log.error({ worker: w.id, code, signal }, 'a worker exited before listening: stopping');
        startCode = typeof code === 'number' && code !== 0 ? code : 1;
        stop();
        failStart(startCode);
        return;
      }
      if (!started && ++failedStarts >= MAX_FAILED_STARTS) {
        log.error({ worker: w.id, code, signal, failedStarts }, 'replacement workers keep dying before they listen: stopping');
        exitCode = 1;
        stop();
        return;
      }
      log.error({ worker: w.id, pid: w.process.pid, code, signal }, 'worker died: starting a replacement');
      setTimeout(fork, started ? 0 : Math.min(30_000, 500 * 2 ** failedStarts));
    });
  };

  const stop = () => {
    stopping++;
    if (stopping === 1) {
      log.info({ workers: live.size }, 'shutdown: draining every worker');
      tell({ keyanchorWorker: 'shutdown' });
      // One still starting may not listen for that yet: a signal stops it either way.
      for (const w of live) if (!ready.has(w)) w.process.kill('SIGTERM');
      setTimeout(() => {
        for (const w of live) w.process.kill('SIGKILL');
      }, config.server.shutdownGraceSeconds * 1000 + EXIT_MARGIN_MS).unref();
    } else {
      log.warn('shutdown: stopping every worker now');
      exitCode = 1;
      for (const w of live) w.process.kill('SIGKILL');
    }
    if (live.size === 0) allExited();
  };

  for (let i = 0; i < workers; i++) fork();
  const exited = gone.then(async () => {
    stopPurge?.();
    if (sqlite) await opened.store.close();
    log.info('shutdown: complete');
    return startCode ?? exitCode;
  });
  return { listening, exited, reload: () => tell({ keyanchorWorker: 'reload' }), stop };
}
