/**
 * `keyanchor serve --workers N` (N > 1): N broker processes behind one listening socket, with the
 * guarantees of one broker.
 *
 * The primary is a broker itself, and the only process that listens: it accepts every connection
 * and, before reading a byte of it, serves it itself or hands it over IPC to one of its N − 1
 * worker processes, in turn (listen.ts `handOff`), so a kept-alive connection stays with one
 * process. Each worker is a whole broker too (TLS, parsing, verification, policy, custody, JWE)
 * serving the connections it is handed. The primary prepared the state before they start (files,
 * the store and its KEK, the demo key in dev), so they find it made.
 *
 * The store: with SQLite the primary owns the writer and runs every worker's transactions in its
 * own group commits (store/remote/), so nonces are single-use across processes, limits and
 * suspensions are one set of rows, and one audit chain holds every record in commit order; a
 * worker reads the file through its own connection. With PostgreSQL each worker opens its own
 * pool, as replicas do. Why the primary serves too rather than only accept and write: a release
 * it serves needs no message at all, and no process sits idle waking up for every message; on
 * two cores that kept the CPU per release within reach of one process's (docs/benchmarks.md).
 *
 * Handing over: Node passes one socket at a time to a process (it queues the next until the
 * receiver acknowledges the last), drops that queue when the receiver dies, and then never closes
 * its own copy of the socket it was passing: either way a connection would hang unserved. So a
 * worker is handed a connection only once it has taken the one before ('accepted'; until then its
 * turn goes to the primary), and the primary keeps its copy of the socket it is passing
 * (`keepOpen`) and closes it itself when the worker has taken it, or has died: a connection is lost
 * with its worker only while that worker was receiving it, as if it had died just after.
 *
 * Supervision: a worker that dies is replaced (a transaction it had sent commits or fails in the
 * primary on its own; its answer is lost as a dead single broker's is). Workers that keep dying
 * before they are ready stop the broker. Signals go to the primary (serve.ts), which tells the
 * workers over IPC, so a signal sent to the whole process group (Ctrl-C) is not seen twice.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Channel } from '../store/remote/protocol.js';
import type { StoreHost } from '../store/remote/host.js';

/** Messages between the primary and its workers, beside the store's (store/remote/protocol.ts). */
export type ToWorker = { keyanchorWorker: 'reload' } | { keyanchorWorker: 'shutdown' } | { keyanchorWorker: 'connection' };
export type FromWorker = { keyanchorWorker: 'ready' } | { keyanchorWorker: 'accepted' };

export const isToWorker = (m: unknown): m is ToWorker => typeof m === 'object' && m !== null && typeof (m as ToWorker).keyanchorWorker === 'string';
const isFromWorker = (m: unknown): m is FromWorker => typeof m === 'object' && m !== null && typeof (m as FromWorker).keyanchorWorker === 'string';

/** The hidden `serve` option a worker is started with: its id. */
export const WORKER_FLAG = '--worker';

/** `auto`: one process per core with a production config (TLS, not dev), else one. */
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

function childChannel(c: ChildProcess): Channel {
  return {
    send: (m) => c.send(m as never),
    onMessage: (fn) => {
      const l = (m: unknown) => fn(m);
      c.on('message', l);
      return () => c.off('message', l);
    },
    onClose: (fn) => c.once('disconnect', fn),
  };
}

/** Replacements that die before they are ready, one after another, before the broker gives up. */
const MAX_FAILED_STARTS = 5;
/** A worker not gone this long after the end of the drain's grace period is killed. */
const EXIT_MARGIN_MS = 10_000;

interface Worker {
  id: number;
  child: ChildProcess;
  ready: boolean;
  /** The primary's copy of the connection it is passing to this worker, until the worker says 'accepted'. */
  receiving: Socket | undefined;
}

/** The primary's N − 1 workers: started, handed connections, replaced, told to reload and stop. */
export class WorkerPool {
  readonly #live = new Set<Worker>();
  #ready: Worker[] = [];
  #turn = 0;
  #nextId = 1;
  #failedStarts = 0;
  #everyoneReady = false;
  #stopping = 0;
  #exitCode = 0;
  #startCode: number | undefined;
  #settle!: { resolve: () => void; reject: (code: number) => void };
  #allGone!: () => void;
  /** Resolves once every worker is ready; rejects with the exit code of one that could not start. */
  readonly ready: Promise<void>;
  /** Resolves with the broker's exit code once every worker has exited (after `shutdown`). */
  readonly exited: Promise<number>;

  constructor(
    private readonly config: Config,
    private readonly count: number,
    private readonly log: Logger,
    private readonly host: StoreHost | undefined,
    /** Told of each worker process as it is started (the metrics gatherer listens to it). */
    private readonly onFork: (child: ChildProcess) => void = () => undefined,
  ) {
    this.ready = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.ready.catch(() => undefined);
    const gone = new Promise<void>((r) => (this.#allGone = r));
    this.exited = gone.then(() => this.#startCode ?? this.#exitCode);
  }

  start(): void {
    for (let i = 0; i < this.count; i++) this.#fork();
  }

  /**
   * Round-robin over the primary itself and the ready workers, passing over a worker still
   * receiving the connection before: true when a worker took the connection.
   */
  handOff(socket: Socket): boolean {
    const n = this.#ready.length + 1;
    for (let i = 0; i < n; i++) {
      this.#turn = (this.#turn + 1) % n;
      if (this.#turn === 0) return false;
      const w = this.#ready[this.#turn - 1]!;
      if (w.receiving || !w.child.connected) continue;
      w.receiving = socket;
      w.child.send({ keyanchorWorker: 'connection' } satisfies ToWorker, socket, { keepOpen: true }, (e) => {
        if (!e) return;
        this.log.warn({ worker: w.id, err: String(e) }, 'a connection could not be handed to a worker: closed');
        this.#received(w);
      });
      return true;
    }
    return false;
  }

  /** The worker processes that are ready. */
  readyChildren(): ChildProcess[] {
    return this.#ready.map((w) => w.child);
  }

  tell(m: ToWorker): void {
    for (const w of this.#live) if (w.child.connected) w.child.send(m, (e) => e && this.log.warn({ worker: w.id, err: String(e) }, 'a message to a worker was lost'));
  }

  /** Drains every worker (first call: they finish what is in flight), or kills them (second call). */
  shutdown(): void {
    this.#stopping++;
    this.#ready = [];
    if (this.#stopping === 1) {
      this.log.info({ workers: this.#live.size }, 'shutdown: draining every worker');
      this.tell({ keyanchorWorker: 'shutdown' });
      // One still starting may not listen for that yet: a signal stops it either way.
      for (const w of this.#live) if (!w.ready) w.child.kill('SIGTERM');
      setTimeout(() => this.#killAll(), this.config.server.shutdownGraceSeconds * 1000 + EXIT_MARGIN_MS).unref();
    } else {
      this.log.warn('shutdown: stopping every worker now');
      this.#exitCode = 1;
      this.#killAll();
    }
    if (this.#live.size === 0) this.#allGone();
  }

  /** Closes the primary's copy of the connection `w` was receiving: the worker has its own, or is gone. */
  #received(w: Worker): void {
    w.receiving?.destroy();
    w.receiving = undefined;
  }

  #killAll(): void {
    for (const w of this.#live) w.child.kill('SIGKILL');
  }

  #fork(): void {
    const id = this.#nextId++;
    const child = fork(process.argv[1]!, [...process.argv.slice(2), WORKER_FLAG, String(id)], { serialization: 'advanced' });
    const w: Worker = { id, child, ready: false, receiving: undefined };
    this.#live.add(w);
    const detach = this.host?.attach(childChannel(child));
    this.onFork(child);
    // Only 'exit' decides what follows; an error here (a signal that could not be sent) is logged.
    child.on('error', (e) => this.log.warn({ worker: id, err: String(e) }, 'worker process error'));
    child.on('message', (m: unknown) => {
      if (!isFromWorker(m)) return;
      if (m.keyanchorWorker === 'accepted') return this.#received(w);
      if (this.#stopping) return;
      w.ready = true;
      this.#ready.push(w);
      this.#failedStarts = 0;
      this.log.info({ worker: id, pid: child.pid }, 'worker ready');
      if (!this.#everyoneReady && this.#ready.length === this.count) {
        this.#everyoneReady = true;
        this.#settle.resolve();
      }
    });
    child.on('exit', (code, signal) => {
      detach?.();
      this.#received(w);
      this.#live.delete(w);
      this.#ready = this.#ready.filter((x) => x !== w);
      this.#exited(w, code, signal);
    });
  }

  #exited(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#stopping) {
      if (code !== 0) this.#exitCode = 1;
      if (this.#live.size === 0) this.#allGone();
      return;
    }
    if (!this.#everyoneReady) {
      // A worker that cannot start says why on stderr; the broker exits as it would have.
      this.log.error({ worker: w.id, code, signal }, 'a worker exited before it was ready: stopping');
      this.#startCode = typeof code === 'number' && code !== 0 ? code : 1;
      this.#settle.reject(this.#startCode);
      this.shutdown();
      return;
    }
    if (!w.ready && ++this.#failedStarts >= MAX_FAILED_STARTS) {
      this.log.error({ worker: w.id, code, signal, failedStarts: this.#failedStarts }, 'replacement workers keep dying before they are ready: stopping');
      this.#exitCode = 1;
      this.shutdown();
      return;
    }
    this.log.error({ worker: w.id, pid: w.child.pid, code, signal }, 'worker died: starting a replacement');
    setTimeout(() => this.#fork(), w.ready ? 0 : Math.min(30_000, 500 * 2 ** this.#failedStarts));
  }
}
