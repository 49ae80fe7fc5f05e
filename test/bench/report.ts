/** The bench's printed lines: one per figure, each starting with a label the smoke test looks for. */
import os from 'node:os';
import type { ExecOverhead } from './agentFigures.js';
import type { CryptoFloor } from './floor.js';
import type { PhaseFigures, WarmUp } from './loadDriver.js';
import { fmt } from './stats.js';
import type { WorkersComparison } from './workersRun.js';

export const load = () => `[load ${fmt(os.loadavg()[0]!, 1)}]`;

export const header = (quick: boolean) =>
  `# keyanchor bench ${new Date().toISOString()} — ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, OpenSSL ${process.versions.openssl}${quick ? ' (quick)' : ''}`;

export const floorLine = (f: CryptoFloor) =>
  `crypto floor (one single-key release, synchronous node:crypto): ${fmt(f.together, 1)} µs of CPU, ${fmt(f.perCpuSecond, 0)} releases per CPU-second (${f.parts.map(([what, us]) => `${what} ${fmt(us, 1)} µs`).join(', ')}; sum of the parts ${fmt(f.sum, 1)} µs) ${load()}`;

const errorText = (errors: Record<string, number>) => {
  const total = Object.values(errors).reduce((s, n) => s + n, 0);
  return total === 0 ? 'errors 0' : `errors ${total} (${Object.entries(errors).map(([code, n]) => `${code} ×${n}`).join(', ')})`;
};

export const warmUpLine = (label: string, wu: WarmUp) =>
  `${label}, warm-up at concurrency 8: ${wu.releases} releases in ${fmt(wu.seconds, 1)} s; broker CPU per release ${fmt(wu.firstUs, 0)} µs in the first second, ${fmt(wu.lastUs, 0)} µs in the last (${wu.settled ? 'settled' : 'not settled yet: the time cap came first'}); ${errorText(wu.errors)} ${load()}`;

export const execLine = (label: string, o: ExecOverhead) =>
  `agent exec of a small program (${label}): ${fmt(o.execMs, 0)} ms median for the whole command, Node's own start ${fmt(o.nodeMs, 0)} ms, hashing ${fmt(o.hashMs, 1)} ms; beyond Node's start ${fmt(o.execMs - o.nodeMs, 0)} ms ${load()}`;

export const totalErrors = (p: PhaseFigures) => Object.values(p.errors).reduce((s, n) => s + n, 0);

export function phaseLine(label: string, p: PhaseFigures, floor: CryptoFloor): string {
  return [
    `${label}, concurrency ${p.concurrency}: ${fmt(p.rate, 0)} releases/s over ${fmt(p.seconds, 1)} s`,
    `${fmt(p.perBrokerCpuSecond, 0)} releases per broker CPU-second (${fmt(p.brokerUsPerRelease, 0)} µs each, ${fmt(p.mainShare * 100, 0)} % on main threads; ${fmt(p.perBrokerCpuSecond / floor.perCpuSecond, 3)} of the floor)`,
    `broker ${fmt(p.brokerCores)} cores in ${p.brokerProcesses} process${p.brokerProcesses === 1 ? '' : 'es'}, load generator ${fmt(p.loadgenCores)} cores (${fmt(p.loadgenUsPerRelease, 0)} µs per release)`,
    `latency p50 ${fmt(p.p50)} ms, p99 ${fmt(p.p99)} ms (p99/p50 ${fmt(p.p99 / p.p50, 1)})`,
    `${p.brokerProcesses === 1 ? 'broker' : "the primary's"} event-loop delay p50 ${fmt(p.eld.p50, 1)} ms, p99 ${fmt(p.eld.p99, 1)} ms, max ${fmt(p.eld.max, 1)} ms`,
    `${p.checked} keys opened and checked; ${errorText(p.errors)} [load ${fmt(p.load, 1)}]`,
  ].join('; ');
}

const verdict = (met: boolean) => (met ? 'met' : 'NOT MET');

/** The issue's targets, judged on this run's figures; `workers` compares 1 and 2 workers (workersRun.ts). */
export function targetLines(c1: PhaseFigures, sustained: PhaseFigures[], c64: PhaseFigures, workers: WorkersComparison, floor: CryptoFloor, exec: ExecOverhead): string[] {
  const best = sustained.reduce((a, b) => (b.perBrokerCpuSecond > a.perBrokerCpuSecond ? b : a));
  const share = best.perBrokerCpuSecond / floor.perCpuSecond;
  const ratio = workers.perCpuSecond.two / workers.perCpuSecond.one;
  return [
    `target ≥ 1000 releases per broker CPU-second (software custody, EC recipient, TLS keep-alive): ${fmt(best.perBrokerCpuSecond, 0)} at concurrency ${best.concurrency}: ${verdict(best.perBrokerCpuSecond >= 1000)}`,
    `target ≥ 35 % of the floor: ${fmt(share * 100, 1)} % (${fmt(best.perBrokerCpuSecond, 0)} of ${fmt(floor.perCpuSecond, 0)} per CPU-second): ${verdict(share >= 0.35)}`,
    `target 2 workers within 10 % of 1 worker's releases per broker CPU-second (concurrency 64, medians of interleaved rounds): ${fmt(workers.perCpuSecond.two, 0)} against ${fmt(workers.perCpuSecond.one, 0)}, ratio ${fmt(ratio, 2)}: ${verdict(ratio >= 0.9)}`,
    `target 2 workers use more than one core under more load than one takes (concurrency 64): ${fmt(workers.cores.two)} cores (1 worker: ${fmt(workers.cores.one)}), ${fmt(workers.rate.two, 0)} releases/s (1 worker: ${fmt(workers.rate.one, 0)}): ${verdict(workers.cores.two > 1)}`,
    `target round trip at concurrency 1 p50 ≤ 3 ms, p99 ≤ 8 ms: p50 ${fmt(c1.p50)} ms, p99 ${fmt(c1.p99)} ms: ${verdict(c1.p50 <= 3 && c1.p99 <= 8)}`,
    `target p99 ≤ 10 × p50 at concurrency 64: p99/p50 ${fmt(c64.p99 / c64.p50, 1)}: ${verdict(c64.p99 <= 10 * c64.p50)}`,
    `target agent exec adds ≤ 100 ms to Node's own start (EC recipient): ${fmt(exec.execMs - exec.nodeMs, 0)} ms: ${verdict(exec.execMs - exec.nodeMs <= 100)}`,
  ];
}
