/**
 * The bench's side of the load generator: starts loadgen.ts as a child process and runs phases
 * against a broker, resetting the broker's event-loop delay window when the measured window opens
 * and reading it when it closes. Turns a phase's raw counts into the figures the bench prints.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers/processes.js';
import type { BenchBroker } from './brokerProcess.js';
import type { LoadgenInit, PhaseCommand, PhaseResult } from './loadgen.js';

export interface PhaseFigures extends PhaseResult {
  concurrency: number;
  /** Releases per wall-clock second. */
  rate: number;
  /** Releases per second of the broker's CPU (all its threads). */
  perBrokerCpuSecond: number;
  /** µs of broker CPU per release, and the share of it on the main thread. */
  brokerUsPerRelease: number;
  mainShare: number;
  /** Cores in use on average during the window. */
  brokerCores: number;
  loadgenCores: number;
  loadgenUsPerRelease: number;
  /** The broker's event-loop delay over the window, ms. */
  eld: { p50: number; p99: number; max: number };
  /** 1-minute load average when the window closed. */
  load: number;
}

type FromLoadgen = { type: 'ready' | 'window-start' | 'window-end' } | ({ type: 'result' } & PhaseResult) | { type: 'failed'; message: string };

export interface LoadGenerator {
  pid: number;
  run(broker: BenchBroker, phase: Omit<PhaseCommand, 'url' | 'brokerPid'>): Promise<PhaseFigures>;
  stop(): void;
}

export interface WarmUp {
  releases: number;
  seconds: number;
  /** Broker µs of CPU per release in the first and the last second that released anything. */
  firstUs: number;
  lastUs: number;
  /** Whether it settled before the time cap. */
  settled: boolean;
  errors: Record<string, number>;
}

/**
 * A fresh broker costs about twice its steady CPU per release until V8 has optimised the release
 * path (a few thousand releases). Loads it at concurrency 8 in one-second windows until at least
 * `minReleases` are done and the last window's CPU per release is within 7 % of the one before,
 * or `maxSeconds` have passed.
 */
export async function warmUp(lg: LoadGenerator, broker: BenchBroker, o: { minReleases: number; maxSeconds: number }): Promise<WarmUp> {
  const us: number[] = [];
  const errors: Record<string, number> = {};
  let releases = 0;
  let seconds = 0;
  let settled = false;
  while (seconds < o.maxSeconds && !settled) {
    const p = await lg.run(broker, { concurrency: 8, warmupMs: 0, measureMs: 1000, fresh: false, checkEvery: 50 });
    for (const [code, n] of Object.entries(p.errors)) errors[code] = (errors[code] ?? 0) + n;
    releases += p.releases;
    seconds += p.seconds;
    if (p.releases > 0) us.push(p.brokerUsPerRelease); // none while the first recipient keys are made
    settled = releases >= o.minReleases && us.length >= 2 && us.at(-1)! >= 0.93 * us.at(-2)!;
  }
  return { releases, seconds, firstUs: us[0]!, lastUs: us.at(-1)!, settled, errors };
}

export async function startLoadGenerator(init: LoadgenInit): Promise<LoadGenerator> {
  const child: ChildProcess = fork(path.join(ROOT, 'dist', 'test', 'bench', 'loadgen.js'), [JSON.stringify(init)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the load generator exited ${code} before it was ready`)));
  });
  return {
    pid: child.pid!,
    run: (broker, phase) =>
      new Promise<PhaseFigures>((resolve, reject) => {
        let eld: PhaseFigures['eld'] | undefined;
        const pending: Array<Promise<unknown>> = [];
        const onMessage = (m: FromLoadgen) => {
          if (m.type === 'window-start') pending.push(broker.probe({ probe: 'eld-reset' }));
          else if (m.type === 'window-end') {
            pending.push(broker.probe({ probe: 'eld-read' }).then((a) => {
              if (a.probe === 'eld') eld = { p50: a.p50, p99: a.p99, max: a.max };
            }));
          } else if (m.type === 'failed') {
            child.off('message', onMessage);
            reject(new Error(`load generator: ${m.message}`));
          } else if (m.type === 'result') {
            child.off('message', onMessage);
            const load = loadavg()[0]!;
            const { type: _, ...result } = m;
            Promise.all(pending).then(() => resolve(figures(phase.concurrency, result, eld!, load)), reject);
          }
        };
        child.on('message', onMessage);
        child.send({ type: 'phase', url: broker.url, brokerPid: broker.pid, ...phase });
      }),
    stop: () => {
      child.disconnect();
    },
  };
}

function figures(concurrency: number, r: PhaseResult, eld: PhaseFigures['eld'], load: number): PhaseFigures {
  return {
    ...r,
    concurrency,
    rate: r.releases / r.seconds,
    perBrokerCpuSecond: r.releases / (r.brokerCpuMs / 1000),
    brokerUsPerRelease: (r.brokerCpuMs * 1000) / r.releases,
    mainShare: r.brokerMainMs / r.brokerCpuMs,
    brokerCores: r.brokerCpuMs / 1000 / r.seconds,
    loadgenCores: r.loadgenCpuMs / 1000 / r.seconds,
    loadgenUsPerRelease: (r.loadgenCpuMs * 1000) / r.releases,
    eld,
    load,
  };
}
