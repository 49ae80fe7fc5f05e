/**
 * One worker against `serve --workers 2` on the same machine at the same time: the 2-worker broker
 * is started and warmed (each process has its own V8 to warm: twice the releases), then the two
 * brokers take the same load (concurrency 64, more than one process can take) in interleaved
 * rounds, so that what the other tenants of a shared machine do falls on both alike. The medians
 * of the rounds are compared: releases per broker CPU-second (every process of each broker) and
 * the cores each used.
 */
import { startBenchBroker, type BenchBroker, type BrokerSpec } from './brokerProcess.js';
import type { PhaseFigures } from './loadDriver.js';
import { load } from './report.js';
import { fmt, median } from './stats.js';

export interface WorkersComparison {
  one: PhaseFigures[];
  two: PhaseFigures[];
  /** Medians over the rounds. */
  perCpuSecond: { one: number; two: number };
  cores: { one: number; two: number };
  rate: { one: number; two: number };
}

export interface CompareOptions {
  /** The one-worker broker, already warm. */
  one: BenchBroker;
  /** How to start the other (a spec without `serveArgs`). */
  spec: BrokerSpec;
  rounds: number;
  warm(b: BenchBroker): Promise<void>;
  phase(b: BenchBroker): Promise<PhaseFigures>;
  line(label: string, p: PhaseFigures): string;
  say(line: string): void;
}

export async function compareWorkers(o: CompareOptions): Promise<WorkersComparison> {
  const two = await startBenchBroker({ ...o.spec, serveArgs: ['--workers', '2'] });
  const out: Pick<WorkersComparison, 'one' | 'two'> = { one: [], two: [] };
  try {
    await o.warm(two);
    for (let r = 1; r <= o.rounds; r++) {
      out.one.push(await o.phase(o.one));
      o.say(o.line(`software custody, 1 worker, round ${r}`, out.one.at(-1)!));
      out.two.push(await o.phase(two));
      o.say(o.line(`software custody, 2 workers, round ${r}`, out.two.at(-1)!));
    }
  } finally {
    await two.stop();
  }
  const m = (ps: PhaseFigures[], f: (p: PhaseFigures) => number) => median(ps.map(f));
  const c: WorkersComparison = {
    ...out,
    perCpuSecond: { one: m(out.one, (p) => p.perBrokerCpuSecond), two: m(out.two, (p) => p.perBrokerCpuSecond) },
    cores: { one: m(out.one, (p) => p.brokerCores), two: m(out.two, (p) => p.brokerCores) },
    rate: { one: m(out.one, (p) => p.rate), two: m(out.two, (p) => p.rate) },
  };
  o.say(
    `workers (median of ${o.rounds} interleaved round${o.rounds === 1 ? '' : 's'} at concurrency 64): 1 worker ${fmt(c.perCpuSecond.one, 0)} releases per broker CPU-second, ${fmt(c.cores.one)} cores, ${fmt(c.rate.one, 0)} releases/s; ` +
      `2 workers ${fmt(c.perCpuSecond.two, 0)}, ${fmt(c.cores.two)} cores, ${fmt(c.rate.two, 0)} releases/s; ratio ${fmt(c.perCpuSecond.two / c.perCpuSecond.one, 2)} ${load()}`,
  );
  return c;
}
