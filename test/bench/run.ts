/**
 * `npm run bench` (`node dist/test/bench/run.js [--quick] [--profile DIR]` after `npm run build`):
 * the figures in docs/benchmarks.md, measured from outside with real parts on this machine.
 *
 * - The broker is a separate `keyanchor serve` process (TLS with a bench CA, keep-alive, log
 *   level info); its CPU is read from /proc/<pid>/stat before and after each measured window, so
 *   every thread counts. Its event-loop delay comes from a preloaded probe (brokerProbe.ts).
 * - The load generator is another process (loadgen.ts) that keeps N connections alive, signs
 *   every evidence, and opens a sample of the released keys; its CPU is reported too.
 * - The crypto floor of one release is timed in the same run (floor.ts); each phase is also
 *   given as a share of it.
 * - `--profile DIR`: instead of the figures, a CPU profile of the broker during a sustained phase,
 *   summarised by category (profile.ts), and the same phase on plain HTTP to price TLS.
 * - The crypto-anchor controls (controls.ts): their cost with 20 limits and 10 alarms against
 *   none, and a flood cut off by its alarm next to a steady service; `--controls` runs only these.
 *
 * The machine is shared and noisy: quote the medians and ratios of one run, with its load average.
 */
import path from 'node:path';
import { makeWorld, APP_KEY } from '../helpers/world.js';
import { benchAgentExec, benchHashing } from './agentFigures.js';
import { benchAuditCost } from './auditCost.js';
import { writeBenchFiles } from './benchFiles.js';
import { startBenchBroker } from './brokerProcess.js';
import { cryptoFloor } from './floor.js';
import { startLoadGenerator, warmUp, type PhaseFigures } from './loadDriver.js';
import { pkcs11Setup } from './pkcs11Setup.js';
import { clockTickMs } from './procStat.js';
import { profileBroker } from './profileRun.js';
import { execLine, floorLine, header, load, phaseLine, targetLines, totalErrors, warmUpLine } from './report.js';
import { fmt } from './stats.js';
import { benchPolicyScale } from './policyScale.js';
import { benchControls } from './controls.js';
import { compareWorkers } from './workersRun.js';

const quick = process.argv.includes('--quick');
const controlsOnly = process.argv.includes('--controls');
const profileDir = process.argv.includes('--profile') ? path.resolve(process.argv[process.argv.indexOf('--profile') + 1] ?? '.') : undefined;
const MEASURE_MS = quick ? 2000 : 10_000;
const WARMUP_MS = quick ? 500 : 1500;
/** Sustained phases open and check one released key in this many. */
const CHECK_EVERY = 50;

const w = await makeWorld();
const files = await writeBenchFiles(w);
const loadgen = await startLoadGenerator({ ca: files.ca, nodeCert: files.nodeCert, nodeKey: files.nodeKey, program: { path: w.app.path, sha256: w.app.sha256 }, sig: files.sig, key: APP_KEY, msPerTick: clockTickMs() });
const say = (s: string) => process.stdout.write(s + '\n');
const phases: PhaseFigures[] = [];
const phase = async (broker: Parameters<typeof loadgen.run>[0], concurrency: number, opts: { fresh?: boolean; checkEvery?: number } = {}) => {
  const p = await loadgen.run(broker, { concurrency, warmupMs: WARMUP_MS, measureMs: MEASURE_MS, fresh: opts.fresh ?? false, checkEvery: opts.checkEvery ?? CHECK_EVERY });
  phases.push(p);
  return p;
};
const common = { dir: w.dir, policyDir: w.policyDir, keys: [APP_KEY] };
const execTarget = { ca: files.ca, nodeCert: files.nodeCert, nodeKey: files.nodeKey, key: APP_KEY, program: w.app.path };
const EXEC_RUNS = quick ? 3 : 15;
let failures = 0;
/** Loads a fresh broker until V8 has optimised its release path (see warmUp), and says how it went. */
const warm = async (label: string, broker: Parameters<typeof warmUp>[1], maxSeconds: number, minReleases = 4000) => {
  const wu = await warmUp(loadgen, broker, { minReleases, maxSeconds });
  failures += Object.keys(wu.errors).length;
  say(warmUpLine(label, wu));
};

try {
  say(header(quick));
  const controls = () => benchControls({ w, files, loadgen, msPerTick: clockTickMs(), quick, measureMs: MEASURE_MS, warmupMs: WARMUP_MS, say });
  if (profileDir) {
    await profileBroker({ ...common, files, loadgen, measureMs: MEASURE_MS, warmupMs: WARMUP_MS, outDir: profileDir, say });
  } else if (controlsOnly) {
    for (const line of await controls()) say(line);
  } else {
    const floor = await cryptoFloor(quick ? { batches: 9, perBatch: 100 } : { batches: 21, perBatch: 200 });
    say(floorLine(floor));

    const swSpec = { ...common, name: 'software', tls: files.tls, custody: { kind: 'software' } };
    const sw = await startBenchBroker({ ...swSpec, serveArgs: ['--workers', '1'] });
    let c1, c8, c64, exec, workers;
    try {
      await warm('software custody', sw, quick ? 6 : 30);
      // Concurrency 1 is the agent's own round trip: a fresh recipient key, every key opened.
      c1 = await phase(sw, 1, { fresh: true, checkEvery: 1 });
      say(phaseLine('software custody', c1, floor));
      c8 = await phase(sw, 8);
      say(phaseLine('software custody', c8, floor));
      c64 = await phase(sw, 64);
      say(phaseLine('software custody', c64, floor));
      exec = await benchAgentExec({ ...execTarget, url: sw.url }, EXEC_RUNS);
      say(execLine('software custody, EC recipient', exec));
      // The same load on `serve --workers 2`, in rounds interleaved with this broker's.
      workers = await compareWorkers({
        one: sw,
        spec: { ...swSpec, name: 'software-workers' },
        rounds: quick ? 1 : 3,
        warm: (b) => warm('software custody, 2 workers', b, quick ? 8 : 40, 8000),
        phase: (b) => phase(b, 64),
        line: (label, p) => phaseLine(label, p, floor),
        say,
      });
    } finally {
      await sw.stop();
    }

    const hsm = await pkcs11Setup(w);
    if (hsm) {
      const hb = await startBenchBroker({ ...common, name: 'pkcs11', tls: files.tls, custody: hsm.custody, env: hsm.env, serveArgs: ['--workers', '1'] });
      try {
        await warm('pkcs11 custody (SoftHSM2)', hb, quick ? 3 : 15);
        // PKCS#11 custody releases to RSA recipients: the load generator uses a pool of RSA-2048 keys.
        say(phaseLine('pkcs11 custody (SoftHSM2)', await phase(hb, 1, { checkEvery: 1 }), floor));
        say(phaseLine('pkcs11 custody (SoftHSM2)', await phase(hb, 8), floor));
        say(execLine('pkcs11 custody (SoftHSM2), RSA recipient', await benchAgentExec({ ...execTarget, url: hb.url }, EXEC_RUNS)));
      } finally {
        await hb.stop();
        hsm.cleanup();
      }
    } else say('pkcs11 custody (SoftHSM2): skipped, SoftHSM2 is not installed');

    const h = await benchHashing(quick ? 128 : 512);
    say(`agent hashing: ${fmt(h.mbps, 0)} MB/s streamed sha256 over a ${h.sizeMiB} MiB file (median of 5, page cache warm); sha256sum: ${fmt(h.sha256sumMbps, 0)} MB/s ${load()}`);
    for (const line of await benchPolicyScale(quick)) say(line);
    const controlTargets = await controls();
    for (const line of await benchAuditCost({ common: { ...common, tls: files.tls }, loadgen, quick, warm, phases })) say(line);
    for (const line of [...targetLines(c1, [c8, c64], c64, workers, floor, exec), ...controlTargets]) say(line);
  }
} finally {
  loadgen.stop();
  w.cleanup();
}
const failed = failures + phases.filter((p) => totalErrors(p) > 0).length;
if (failed > 0) {
  process.stderr.write(`bench: ${failed} phase(s) had failed releases (see "errors" above)\n`);
  process.exitCode = 1;
}
