/**
 * `run.js --profile DIR`: where the broker's CPU goes per release. A software-custody broker over
 * TLS takes a sustained load three times: once to warm it (and give the unprofiled CPU per release),
 * once with V8's CPU profiler on its main thread (the profile is written to DIR and summarised
 * by category, profile.ts), and the same load against a plain-HTTP broker prices TLS, which the
 * profiler cannot see (record decryption runs in native code before any JS frame).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBenchBroker } from './brokerProcess.js';
import type { BenchFiles } from './benchFiles.js';
import type { LoadGenerator, PhaseFigures } from './loadDriver.js';
import { formatSummary, summarise, type CpuProfile } from './profile.js';
import { fmt } from './stats.js';

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
const SAMPLING_US = 500;

const brief = (what: string, p: PhaseFigures) =>
  `${what}: ${fmt(p.rate, 0)} releases/s, ${fmt(p.perBrokerCpuSecond, 0)} per broker CPU-second (${fmt(p.brokerUsPerRelease, 0)} µs each, main thread ${fmt(p.brokerUsPerRelease * p.mainShare, 0)} µs), broker ${fmt(p.brokerCores)} cores, load generator ${fmt(p.loadgenCores)} cores, p50 ${fmt(p.p50)} ms, errors ${Object.values(p.errors).reduce((s, n) => s + n, 0)} [load ${fmt(p.load, 1)}]`;

export async function profileBroker(o: ProfileOptions): Promise<void> {
  mkdirSync(o.outDir, { recursive: true });
  const common = { dir: o.dir, policyDir: o.policyDir, keys: o.keys, custody: { kind: 'software' } };
  const phase = { concurrency: CONCURRENCY, warmupMs: o.warmupMs, measureMs: o.measureMs, fresh: false, checkEvery: 50 };
  const file = path.join(o.outDir, `broker-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);

  const tls = await startBenchBroker({ ...common, name: 'profile-tls', tls: o.files.tls });
  let base: PhaseFigures;
  let profiled: PhaseFigures;
  try {
    base = await o.loadgen.run(tls, phase);
    o.say(brief(`TLS, concurrency ${CONCURRENCY}, unprofiled`, base));
    await tls.probe({ probe: 'profile-start', intervalUs: SAMPLING_US });
    profiled = await o.loadgen.run(tls, phase);
    await tls.probe({ probe: 'profile-stop', file });
    o.say(brief(`TLS, concurrency ${CONCURRENCY}, profiled (${SAMPLING_US} µs sampling)`, profiled));
  } finally {
    await tls.stop();
  }
  const plain = await startBenchBroker({ ...common, name: 'profile-http' });
  let http: PhaseFigures;
  try {
    http = await o.loadgen.run(plain, phase);
    o.say(brief(`plain HTTP, concurrency ${CONCURRENCY}, unprofiled`, http));
  } finally {
    await plain.stop();
  }

  const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const mainUs = base.brokerUsPerRelease * base.mainShare;
  const lines = [
    `profile: ${file}`,
    `broker CPU per release (unprofiled, TLS): ${fmt(base.brokerUsPerRelease, 0)} µs = main thread ${fmt(mainUs, 0)} µs (${fmt(base.mainShare * 100, 0)} %) + other threads ${fmt(base.brokerUsPerRelease - mainUs, 0)} µs (V8's GC and compiler helpers, libuv's pool)`,
    `TLS on kept-alive connections (TLS minus plain HTTP, whole process): ${fmt(base.brokerUsPerRelease - http.brokerUsPerRelease, 0)} µs per release (${fmt(((base.brokerUsPerRelease - http.brokerUsPerRelease) / base.brokerUsPerRelease) * 100, 1)} %)`,
    `main thread while profiled: ${fmt(s.busyMs / 1000, 2)} s busy, ${fmt(s.idleMs / 1000, 2)} s idle; by category (µs scaled to the unprofiled main-thread ${fmt(mainUs, 0)} µs per release):`,
    ...formatSummary(s, mainUs),
  ];
  for (const line of lines) o.say(line);
  writeFileSync(file.replace(/\.cpuprofile$/, '.summary.txt'), lines.join('\n') + '\n');
}
