/**
 * `npm run bench:agent`: how long `attest-agent exec` of a tiny program takes against Node's own
 * start, with an EC recipient (software custody) and with an RSA recipient (PKCS#11 custody on
 * SoftHSM2), and where the time goes (agentPhases.ts). Real processes, brokers over HTTPS on
 * loopback in this process; medians of interleaved runs. Wall time is what a workload waits; the
 * CPU time each process used (user + system, all its threads, read by a preloaded exit hook) is
 * also printed, since on a shared machine it varies far less. `--quick` runs a few of each.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openKeys, startBroker, type Broker } from '../../src/broker.js';
import { systemClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { AGENT_CLI, ROOT } from '../helpers/processes.js';
import { writeSignedProgram, writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';
import { pkcs11Setup } from './pkcs11Setup.js';
import { fmt, median } from './stats.js';

const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : Number(process.env.BENCH_RUNS ?? 21);

async function brokerWith(w: World, files: TlsWorldFiles, name: string, custody: Record<string, unknown>): Promise<Broker> {
  const config = parseConfig(JSON.stringify({
    stateDir: path.join(w.dir, `state-${name}`), policyDir: w.policyDir, tls: { cert: files.tlsCert, key: files.tlsKey },
    listen: { host: '127.0.0.1', port: 0 }, log: { level: 'warn' }, custody,
  }), { file: path.join(w.dir, `${name}.json`), env: process.env });
  const keys = await openKeys(config, systemClock, 'init');
  await keys.keys.create(APP_KEY, 'bench');
  await keys.close();
  return startBroker(config, { log: createLogger('warn', createWriteStream('/dev/null')) });
}

interface Cost { wall: number; cpu: number }

/** Writes the process's own CPU time (ms, every thread) to fd 3 as it exits. */
const CPU_HOOK = `process.on('exit', () => { const u = process.resourceUsage(); require('node:fs').writeSync(3, String((u.userCPUTime + u.systemCPUTime) / 1000)); });\n`;

/** Wall and CPU time of `node ...args` (asynchronous: the brokers in this process must keep answering). */
const cost = (hook: string, args: string[]): Promise<Cost> => new Promise((resolve, reject) => {
  const t = performance.now();
  const child = spawn(process.execPath, ['-r', hook, ...args], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  let cpu = '';
  child.stdio[3]!.on('data', (d: Buffer) => (cpu += d));
  child.on('close', (code) => (code === 0 ? resolve({ wall: performance.now() - t, cpu: Number(cpu) }) : reject(new Error(`${args.join(' ')} exited ${code}`))));
});
const output = (args: string[]): Promise<string> => new Promise((resolve, reject) => {
  execFile(process.execPath, args, { encoding: 'utf8' }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
});

const w = await makeWorld();
const files = await writeTlsWorld(w);
const program = path.join(w.dir, 'tiny');
const hook = path.join(w.dir, 'cpu-hook.cjs');
writeFileSync(hook, CPU_HOOK);
writeSignedProgram(w, program, '#!/bin/sh\nexit 0\n');
const hsm = await pkcs11Setup(w);
Object.assign(process.env, hsm?.env ?? {});
/** Each case: a broker, and extra agent flags. Phases are timed for the first case of each broker. */
const cases: Array<{ name: string; broker: Broker; extra: string[]; phases: boolean }> = [];
const software = await brokerWith(w, files, 'software', { kind: 'software' });
cases.push({ name: 'EC recipient (software custody)', broker: software, extra: [], phases: true });
if (hsm) {
  const pkcs11 = await brokerWith(w, files, 'pkcs11', hsm.custody);
  cases.push({ name: 'RSA recipient (pkcs11, SoftHSM2), key made when the broker names the type', broker: pkcs11, extra: [], phases: true });
  cases.push({ name: 'RSA recipient (pkcs11, SoftHSM2), --recipient-type RSA: key made at start', broker: pkcs11, extra: ['--recipient-type', 'RSA'], phases: false });
} else process.stdout.write('pkcs11: skipped (SoftHSM2 not installed)\n');

try {
  const exec = (b: Broker, extra: string[]) => ['exec', '--allow-shared-uid', ...extra, '--broker', b.url, '--ca', files.tlsCa, '--node-cert', files.nodeCert, '--node-key', files.nodeKey, '--retries', '0', '--key', `${APP_KEY}=K`, '--', program];
  const phasesArgs = (b: Broker) => [path.join(ROOT, 'dist/test/bench/agentPhases.js'), JSON.stringify({ broker: b.url, ca: files.tlsCa, nodeCert: files.nodeCert, nodeKey: files.nodeKey, program, key: APP_KEY })];
  const runs = { node: [] as Cost[], version: [] as Cost[], exec: cases.map(() => [] as Cost[]), phases: cases.map(() => [] as Record<string, number>[]) };
  for (let i = 0; i < RUNS; i++) {
    runs.node.push(await cost(hook, ['-e', '0']));
    runs.version.push(await cost(hook, [AGENT_CLI, '--version']));
    for (const [j, c] of cases.entries()) {
      runs.exec[j]!.push(await cost(hook, [AGENT_CLI, ...exec(c.broker, c.extra)]));
      if (c.phases) runs.phases[j]!.push(JSON.parse(await output(phasesArgs(c.broker))) as Record<string, number>);
    }
  }
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const m = (xs: Cost[]) => ({ wall: median(xs.map((x) => x.wall)), cpu: median(xs.map((x) => x.cpu)) });
  const show = (c: Cost, base?: Cost) => `${fmt(c.wall, 0)} ms wall${base ? ` (+${fmt(c.wall - base.wall, 0)})` : ''}, ${fmt(c.cpu, 0)} ms CPU${base ? ` (+${fmt(c.cpu - base.cpu, 0)})` : ''}`;
  const node = m(runs.node);
  say(`# attest-agent start-up, ${new Date().toISOString()}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? 'cpu'}, load ${os.loadavg()[0]!.toFixed(1)}, node ${process.version}, medians of ${RUNS}${quick ? ' (quick)' : ''}`);
  say(`node -e 0: ${show(node)}; attest-agent --version (start + loading the bundle): ${show(m(runs.version), node)}`);
  for (const [j, c] of cases.entries()) {
    say(`exec of a tiny program, ${c.name}: ${show(m(runs.exec[j]!), node)} over Node's own start`);
    if (!c.phases) continue;
    const keys = Object.keys(runs.phases[j]![0]!).filter((k) => k !== 'sinceProcessStart');
    say(`  steps one after another, in a fresh process: ${keys.map((k) => `${k} ${fmt(median(runs.phases[j]!.map((p) => p[k]!)), 1)}`).join(', ')} ms`);
  }
} finally {
  for (const b of new Set(cases.map((c) => c.broker))) await b.close();
  hsm?.cleanup();
  w.cleanup();
}
