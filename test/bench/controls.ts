/**
 * The crypto-anchor controls in `npm run bench` (`--controls` runs only these):
 *
 * - **Overhead**: two brokers side by side, one with the plain policy and one with 20 limits and
 *   10 alarms in force (the bench's release is charged to 5 of the limits, 9 windows, and counted
 *   by 3 of the alarms; the rest cover other services and nodes). Measured in interleaved rounds
 *   (plain, controls, controls, plain, …) at concurrency 8 (broker CPU per release) and 1 (p50),
 *   medians of the rounds, so that the machine's drift falls on both alike.
 * - **Suspension check**: the in-memory set the release path consults against the store query it
 *   replaces, with 100 suspensions active.
 * - **Flood**: a second service (a program pinned by digest, its own key) at concurrency 2,
 *   unloaded, then while the first floods at concurrency 8 until its alarm suspends it: once with
 *   clients that stop when suspended (as attest-agent does: exit 51, no retry) and once with
 *   clients that keep hammering after the cut-off.
 */
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runKeyanchor } from '../helpers/processes.js';
import { APP_KEY, IMG_KEY, MISSING_KEY, sha256hex, type World } from '../helpers/world.js';
import type { BenchFiles } from './benchFiles.js';
import { startBenchBroker, type BenchBroker } from './brokerProcess.js';
import { startLoadGenerator, warmUp, type LoadGenerator, type PhaseFigures } from './loadDriver.js';
import { attributionLine, suspensionCheckLine } from './controlsShare.js';
import { load } from './report.js';
import { fmt, median } from './stats.js';

export const STEADY_KEY = 'team/steady-key';
/** The flood's alarm: more than this many releases of the flooding service in a 10-second period. */
const FLOOD_THRESHOLD = 100;

export interface ControlsBench {
  w: World;
  files: BenchFiles;
  /** The load generator of the bench's own service (the program signed by the publisher, APP_KEY). */
  loadgen: LoadGenerator;
  msPerTick: number;
  quick: boolean;
  measureMs: number;
  warmupMs: number;
  say: (line: string) => void;
}

/** Runs every controls phase; returns the target lines. */
export async function benchControls(o: ControlsBench): Promise<string[]> {
  const dirs = policyDirs(o.w);
  const steadyLg = await startLoadGenerator({ ca: o.files.ca, nodeCert: o.files.nodeCert, nodeKey: o.files.nodeKey, program: dirs.steady, key: STEADY_KEY, msPerTick: o.msPerTick });
  try {
    const overhead = await benchOverhead(o, dirs);
    o.say(await attributionLine(o.quick, twentyLimitsTenAlarms()));
    o.say(await suspensionCheckLine());
    const flood = await benchFlood(o, dirs, steadyLg);
    const verdict = (met: boolean) => (met ? 'met' : 'NOT MET');
    return [
      `target the controls add ≤ 5 % broker CPU per release (20 limits, 10 alarms): ${signed(overhead.cpuPct, 1)} %: ${verdict(overhead.cpuPct <= 5)}`,
      `target the controls add ≤ 0.2 ms to the release p50: ${signed(overhead.p50Ms, 2)} ms: ${verdict(overhead.p50Ms <= 0.2)}`,
      `target during a flood that is cut off, another service's rate and p99 within 20 % of unloaded: rate ${signed(flood.ratePct, 1)} %, p99 ${signed(flood.p99Pct, 1)} %: ${verdict(flood.ratePct >= -20 && flood.p99Pct <= 20)}`,
    ];
  } finally {
    steadyLg.stop();
  }
}

const signed = (n: number, d: number) => `${n >= 0 ? '+' : ''}${fmt(n, d)}`;

interface PolicyDirs {
  plain: string;
  controls: string;
  flood: string;
  steady: { path: string; sha256: string };
}

/** The world's policy, plus a second service approved by its pinned digest; with 20 limits and 10 alarms; with a flood alarm. */
function policyDirs(w: World): PolicyDirs {
  const script = '#!/bin/sh\n# the steady service of the bench\nexit 0\n';
  const steady = { path: path.join(w.dir, 'steady'), sha256: sha256hex(script) };
  writeFileSync(steady.path, script, { mode: 0o755 });
  const steadyEntry = `software:\n  - name: steady\n    binary: { digests: ["${steady.sha256}"] }\n    grants:\n      - keys: [${STEADY_KEY}]\n        zones: [z1]\n`;
  const dir = (name: string, extra: Record<string, string>) => {
    const d = path.join(w.dir, `policies-${name}`);
    mkdirSync(d);
    for (const f of readdirSync(w.policyDir)) copyFileSync(path.join(w.policyDir, f), path.join(d, f));
    writeFileSync(path.join(d, 'steady.yaml'), steadyEntry);
    for (const [f, text] of Object.entries(extra)) writeFileSync(path.join(d, f), text);
    return d;
  };
  return {
    steady,
    plain: dir('plain', {}),
    controls: dir('controls', { 'controls.yaml': twentyLimitsTenAlarms() }),
    flood: dir('flood', { 'flood.yaml': `alarms:\n  - name: app-flood\n    measure: releases\n    software: app\n    period: 10s\n    threshold: ${FLOOD_THRESHOLD}\n    action: suspend\n` }),
  };
}

/** 20 limits and 10 alarms; the bench's release (app, node-1, zone z1, APP_KEY) is covered by 5 limits (9 windows) and 3 release alarms. */
export function twentyLimitsTenAlarms(): string {
  const BIG = '1000000/s';
  const limit = (name: string, subject: string, windows: string[]) => `  - name: ${name}\n    ${subject}\n    windows: [${windows.map((x) => `"${x}"`).join(', ')}]\n`;
  const alarm = (name: string, measure: string, subject: string) => `  - name: ${name}\n    measure: ${measure}\n    ${subject}\n    period: 1m\n    threshold: 1000000000\n    action: suspend\n`;
  const others = Array.from({ length: 10 }, (_, i) => `node: { sanUri: "spiffe://test/zone/z1/other-${i}" }`);
  const limits = [
    limit('app', 'software: app', [BIG, '100000000/day']),
    limit('zone', 'zone: z1', [BIG, '100000000/h']),
    limit('key', `key: ${APP_KEY}`, [BIG, '100000000/day']),
    limit('each-node', 'global: true\n    perNode: true', [BIG, '100000000/day']),
    limit('all', 'global: true', [BIG]),
    limit('pinned', 'software: pinned-in-image', [BIG, '100000000/day']),
    limit('img-key', `key: ${IMG_KEY}`, [BIG]),
    limit('missing-key', `key: ${MISSING_KEY}`, [BIG]),
    limit('steady-key', `key: ${STEADY_KEY}`, [BIG]),
    limit('steady', 'software: steady', [BIG, '100000000/day']),
    ...others.map((s, i) => limit(`other-node-${i}`, s, ['1000/min'])),
  ];
  const alarms = [
    alarm('app-releases', 'releases', 'software: app'),
    alarm('zone-releases', 'releases', 'zone: z1'),
    alarm('node-releases', 'releases', 'global: true\n    perNode: true'),
    alarm('app-key-refusals', 'refusals', `key: ${APP_KEY}`),
    alarm('pinned-releases', 'releases', 'software: pinned-in-image'),
    alarm('steady-releases', 'releases', 'software: steady'),
    ...others.slice(0, 4).map((s, i) => alarm(`other-node-${i}`, 'releases', s)),
  ];
  return `limits:\n${limits.join('')}alarms:\n${alarms.join('')}`;
}

async function benchOverhead(o: ControlsBench, dirs: PolicyDirs): Promise<{ cpuPct: number; p50Ms: number }> {
  const common = { dir: o.w.dir, tls: o.files.tls, custody: { kind: 'software' }, keys: [APP_KEY] };
  const brokers: Record<'plain' | 'controls', BenchBroker> = {
    plain: await startBenchBroker({ ...common, name: 'controls-off', policyDir: dirs.plain }),
    controls: await startBenchBroker({ ...common, name: 'controls-on', policyDir: dirs.controls }),
  };
  try {
    for (const b of Object.values(brokers)) await warmUp(o.loadgen, b, { minReleases: o.quick ? 500 : 4000, maxSeconds: o.quick ? 4 : 30 });
    const rounds = o.quick ? 1 : 5;
    const cpu = { plain: [] as number[], controls: [] as number[] };
    const cpu1 = { plain: [] as number[], controls: [] as number[] };
    const p50 = { plain: [] as number[], controls: [] as number[] };
    const phase = (b: BenchBroker, concurrency: number) => o.loadgen.run(b, { concurrency, warmupMs: o.warmupMs, measureMs: o.measureMs, fresh: false, checkEvery: 50 });
    const check = (label: string, p: PhaseFigures) => {
      const errors = Object.values(p.errors).reduce((a, b) => a + b, 0);
      if (errors) throw new Error(`controls overhead (${label}): ${errors} failed releases: ${JSON.stringify(p.errors)}`);
    };
    for (let r = 0; r < rounds; r++) {
      for (const which of (r % 2 === 0 ? ['plain', 'controls'] : ['controls', 'plain']) as Array<'plain' | 'controls'>) {
        const c8 = await phase(brokers[which], 8);
        const c1 = await phase(brokers[which], 1);
        check(which, c8);
        check(which, c1);
        cpu[which].push(c8.brokerUsPerRelease);
        cpu1[which].push(c1.brokerUsPerRelease);
        p50[which].push(c1.p50);
      }
    }
    const [cpuOff, cpuOn, p50Off, p50On] = [median(cpu.plain), median(cpu.controls), median(p50.plain), median(p50.controls)];
    const cpuPct = ((cpuOn - cpuOff) / cpuOff) * 100;
    const rounded = `median of ${rounds} interleaved round${rounds === 1 ? '' : 's'}`;
    o.say(`controls overhead, concurrency 8: broker CPU per release ${fmt(cpuOff, 0)} µs without controls, ${fmt(cpuOn, 0)} µs with 20 limits and 10 alarms (${signed(cpuPct, 1)} %), ${rounded} ${load()}`);
    const us1 = median(cpu1.controls) - median(cpu1.plain);
    o.say(`controls overhead, concurrency 1: latency p50 ${fmt(p50Off)} ms without controls, ${fmt(p50On)} ms with them (${signed(p50On - p50Off, 2)} ms); broker CPU per release ${fmt(median(cpu1.plain), 0)} µs and ${fmt(median(cpu1.controls), 0)} µs (${signed(us1 / 1000, 3)} ms on the request's path), ${rounded} ${load()}`);
    return { cpuPct, p50Ms: p50On - p50Off };
  } finally {
    await Promise.all(Object.values(brokers).map((b) => b.stop()));
  }
}

async function benchFlood(o: ControlsBench, dirs: PolicyDirs, steadyLg: LoadGenerator): Promise<{ ratePct: number; p99Pct: number }> {
  const b = await startBenchBroker({ dir: o.w.dir, tls: o.files.tls, custody: { kind: 'software' }, keys: [APP_KEY, STEADY_KEY], name: 'flood', policyDir: dirs.flood });
  try {
    await warmUp(steadyLg, b, { minReleases: o.quick ? 500 : 4000, maxSeconds: o.quick ? 4 : 20 });
    const steady = () => steadyLg.run(b, { concurrency: 2, warmupMs: o.warmupMs, measureMs: o.measureMs, fresh: false, checkEvery: 50 });
    const flood = (stopOn?: string) => o.loadgen.run(b, { concurrency: 8, warmupMs: 0, measureMs: o.warmupMs + o.measureMs, fresh: false, checkEvery: 1000, ...(stopOn ? { stopOn } : {}) });
    const unloaded = await steady();
    const line = (label: string, s: PhaseFigures, f: PhaseFigures) => {
      const refused = f.errors.suspended ?? 0;
      const other = Object.entries(f.errors).filter(([code]) => code !== 'suspended');
      if (Object.keys(s.errors).length || other.length) throw new Error(`flood (${label}): unexpected failures: steady ${JSON.stringify(s.errors)}, flood ${JSON.stringify(Object.fromEntries(other))}`);
      o.say(`flood, ${label}: the other service ${fmt(s.rate, 0)} releases/s (unloaded ${fmt(unloaded.rate, 0)}, ${signed(((s.rate - unloaded.rate) / unloaded.rate) * 100, 1)} %), p99 ${fmt(s.p99)} ms (unloaded ${fmt(unloaded.p99)} ms, ${signed(((s.p99 - unloaded.p99) / unloaded.p99) * 100, 1)} %); the flood: ${f.releases} released, then ${refused} refused (403 suspended) ${load()}`);
    };
    const [agentFlood, steadyA] = await Promise.all([flood('suspended'), steady()]);
    line('clients that stop when suspended, as attest-agent does', steadyA, agentFlood);
    const cleared = await runKeyanchor(['--config', b.config, 'suspend', 'clear', 'software:app']);
    if (cleared.code !== 0) throw new Error(`suspend clear: ${cleared.stderr}`);
    await sleep(10_000 - (Date.now() % 10_000) + 200); // a fresh alarm period
    const [hostile, steadyH] = await Promise.all([flood(), steady()]);
    line('clients that keep hammering after the cut-off', steadyH, hostile);
    return { ratePct: ((steadyA.rate - unloaded.rate) / unloaded.rate) * 100, p99Pct: ((steadyA.p99 - unloaded.p99) / unloaded.p99) * 100 };
  } finally {
    await b.stop();
  }
}
