/**
 * The load generator, a separate process that the bench drives over IPC (see loadDriver.ts):
 *
 *   node dist/test/bench/loadgen.js '<LoadgenInit JSON>'
 *   → { type: 'phase', ...PhaseCommand }   run `concurrency` clients (loadClient.ts) against `url`:
 *                                          warm up, then measure a window, then drain
 *   ← { type: 'window-start' } / { type: 'window-end' }   as the window opens and closes
 *   ← { type: 'result', ...PhaseResult } / { type: 'failed', message }
 *
 * The window is read inside continuous load: releases completed and latencies between its two
 * ends, the broker's CPU from /proc/<pid>/stat at both ends (whole process and main thread), and
 * this process's own CPU (process.cpuUsage) over the same span.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeWorkload, readNodeIdentity } from '../../attest-agent/src/index.js';
import { LoadClient, RecipientPool, ReleaseFailed, type Identity } from './loadClient.js';
import { readProcCpu } from './procStat.js';
import { median, quantile } from './stats.js';

export interface LoadgenInit {
  ca: string;
  nodeCert: string;
  nodeKey: string;
  program: { path: string; sha256: string };
  /** The publisher signature over the program; none for software approved by its pinned digest. */
  sig?: string;
  key: string;
  msPerTick: number;
}

export interface PhaseCommand {
  url: string;
  brokerPid: number;
  concurrency: number;
  warmupMs: number;
  measureMs: number;
  /** A fresh recipient key for every release (the agent's way) instead of the pool. */
  fresh: boolean;
  /** Open and check one released key in this many. */
  checkEvery: number;
  /** A client answered with this problem code stops, as attest-agent exits on `suspended` (default: none stops). */
  stopOn?: string;
}

export interface PhaseResult {
  releases: number;
  seconds: number;
  p50: number;
  p99: number;
  brokerCpuMs: number;
  brokerMainMs: number;
  /** Processes in the broker's tree when the window closed (workers, once there are any). */
  brokerProcesses: number;
  loadgenCpuMs: number;
  checked: number;
  /** Failures over the whole phase (warm-up included), by code. */
  errors: Record<string, number>;
}

const RECIPIENT_POOL = 4;

async function runPhase(cmd: PhaseCommand, id: Identity, pool: RecipientPool, msPerTick: number): Promise<PhaseResult> {
  const clients = Array.from({ length: cmd.concurrency }, (_, i) => new LoadClient(cmd.url, id, i, pool));
  const lat: number[] = [];
  const errors: Record<string, number> = {};
  let measuring = false;
  let stopping = false;
  let seq = 0;
  let checked = 0;
  const loop = async (c: LoadClient) => {
    while (!stopping) {
      const check = ++seq % cmd.checkEvery === 0;
      const t = performance.now();
      try {
        await c.release({ fresh: cmd.fresh, check });
        if (measuring) {
          lat.push(performance.now() - t);
          if (check) checked++;
        }
      } catch (e) {
        const code = e instanceof ReleaseFailed ? e.code : String(e);
        errors[code] = (errors[code] ?? 0) + 1;
        if (code === cmd.stopOn) return;
      }
    }
  };
  const running = Promise.all(clients.map(loop));
  try {
    await sleep(cmd.warmupMs);
    const broker0 = readProcCpu(cmd.brokerPid, msPerTick);
    const self0 = process.cpuUsage();
    const t0 = performance.now();
    measuring = true;
    process.send!({ type: 'window-start' });
    await sleep(cmd.measureMs);
    measuring = false;
    const t1 = performance.now();
    const self = process.cpuUsage(self0);
    const broker1 = readProcCpu(cmd.brokerPid, msPerTick);
    process.send!({ type: 'window-end' });
    return {
      releases: lat.length,
      seconds: (t1 - t0) / 1000,
      p50: median(lat),
      p99: quantile(lat, 0.99),
      brokerCpuMs: broker1.processMs - broker0.processMs,
      brokerMainMs: broker1.mainMs - broker0.mainMs,
      brokerProcesses: broker1.processes,
      loadgenCpuMs: (self.user + self.system) / 1000,
      checked,
      errors,
    };
  } finally {
    stopping = true;
    await running;
    for (const c of clients) c.close();
  }
}

const init = JSON.parse(process.argv[2]!) as LoadgenInit;
const id: Identity = {
  node: await readNodeIdentity(init.nodeCert, init.nodeKey),
  workload: await describeWorkload(init.program, { sigFiles: init.sig ? [init.sig] : [], imageSigs: [] }, {}),
  key: init.key,
  ca: readFileSync(init.ca),
};
const pool = new RecipientPool(RECIPIENT_POOL);
process.on('message', (m: { type: 'phase' } & PhaseCommand) => {
  runPhase(m, id, pool, init.msPerTick).then(
    (r) => process.send!({ type: 'result', ...r }),
    (e: unknown) => process.send!({ type: 'failed', message: String(e) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
