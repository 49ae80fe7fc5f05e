/**
 * `run.js --profile DIR`: where the broker's CPU goes per release. Two software-custody brokers,
 * one over TLS and one on plain HTTP, are warmed up (warmUp), then take the same sustained load in
 * turn, three rounds each, unprofiled: the medians give the CPU per release and, by difference,
 * the price of TLS on kept-alive connections, which a V8 profile cannot show (records are decrypted
 * in native code before any JS frame runs). Then one more TLS round with V8's CPU profiler on the
 * broker's main thread (what `node --cpu-prof` records): the profile is written to DIR and
 * summarised by category (profile.ts), scaled to the unprofiled main-thread CPU per release.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBenchBroker } from './brokerProcess.js';
import type { BenchFiles } from './benchFiles.js';
import { warmUp, type LoadGenerator, type PhaseFigures } from './loadDriver.js';
import { formatSummary, summarise, type CpuProfile } from './profile.js';
import { warmUpLine } from './report.js';
import { fmt, median } from './stats.js';

export interface ProfileOptions {
  dir: string;
  policyDir: string;
  keys: string[];
  files: BenchFiles;
  loadgen: LoadGenerator;
  warmupMs: number;
  measureMs: number;
  outDir: string;
  say(line: string): void;
}

const CONCURRENCY = 8;
const ROUNDS = 3;
const SAMPLING_US = 500;

const brief = (what: string, p: PhaseFigures) =>
  `${what}: ${fmt(p.rate, 0)} releases/s, ${fmt(p.perBrokerCpuSecond, 0)} per broker CPU-second (${fmt(p.brokerUsPerRelease, 0)} µs each, main thread ${fmt(p.brokerUsPerRelease * p.mainShare, 0)} µs), broker ${fmt(p.brokerCores)} cores, load generator ${fmt(p.loadgenCores)} cores, p50 ${fmt(p.p50)} ms, errors ${Object.values(p.errors).reduce((s, n) => s + n, 0)} [load ${fmt(p.load, 1)}]`;

export async function profileBroker(o: ProfileOptions): Promise<void> {
  mkdirSync(o.outDir, { recursive: true });
  const common = { dir: o.dir, policyDir: o.policyDir, keys: o.keys, custody: { kind: 'software' } };
  const phase = { concurrency: CONCURRENCY, warmupMs: o.warmupMs, measureMs: o.measureMs, fresh: false, checkEvery: 50 };
  const file = path.join(o.outDir, `broker-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  const tls = await startBenchBroker({ ...common, name: 'profile-tls', tls: o.files.tls, serveArgs: ['--workers', '1'] });
  const http = await startBenchBroker({ ...common, name: 'profile-http', serveArgs: ['--workers', '1'] });
  const rounds: { tls: PhaseFigures[]; http: PhaseFigures[] } = { tls: [], http: [] };
  let profiled: PhaseFigures;
  try {
    for (const [name, b] of [['TLS', tls], ['plain HTTP', http]] as const) o.say(warmUpLine(`${name} broker`, await warmUp(o.loadgen, b, { minReleases: 4000, maxSeconds: 30 })));
    for (let i = 0; i < ROUNDS; i++) {
      rounds.tls.push(await o.loadgen.run(tls, phase));
      o.say(brief(`TLS, concurrency ${CONCURRENCY}, round ${i + 1}`, rounds.tls.at(-1)!));
      rounds.http.push(await o.loadgen.run(http, phase));
      o.say(brief(`plain HTTP, concurrency ${CONCURRENCY}, round ${i + 1}`, rounds.http.at(-1)!));
    }
    await tls.probe({ probe: 'profile-start', intervalUs: SAMPLING_US });
    profiled = await o.loadgen.run(tls, phase);
    await tls.probe({ probe: 'profile-stop', file });
    o.say(brief(`TLS, concurrency ${CONCURRENCY}, profiled (${SAMPLING_US} µs sampling)`, profiled));
  } finally {
    await tls.stop();
    await http.stop();
  }

  const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const us = (ps: PhaseFigures[]) => median(ps.map((p) => p.brokerUsPerRelease));
  const tlsUs = us(rounds.tls);
  const mainUs = median(rounds.tls.map((p) => p.brokerUsPerRelease * p.mainShare));
  const tlsCost = tlsUs - us(rounds.http);
  const lines = [
    `profile: ${file}`,
    `broker CPU per release over TLS (median of ${ROUNDS} unprofiled rounds): ${fmt(tlsUs, 0)} µs = main thread ${fmt(mainUs, 0)} µs (${fmt((mainUs / tlsUs) * 100, 0)} %) + other threads ${fmt(tlsUs - mainUs, 0)} µs (V8's GC and compiler helpers, libuv's pool); ${fmt(1e6 / tlsUs, 0)} releases per broker CPU-second`,
    `TLS on kept-alive connections (TLS minus plain HTTP, medians, whole process): ${fmt(tlsCost, 0)} µs per release (${fmt((tlsCost / tlsUs) * 100, 1)} %)`,
    `main thread while profiled: ${fmt(s.busyMs / 1000, 2)} s busy, ${fmt(s.idleMs / 1000, 2)} s idle; by category (µs scaled to the unprofiled main-thread ${fmt(mainUs, 0)} µs per release):`,
    ...formatSummary(s, mainUs),
  ];
  for (const line of lines) o.say(line);
  writeFileSync(file.replace(/\.cpuprofile$/, '.summary.txt'), lines.join('\n') + '\n');
}
