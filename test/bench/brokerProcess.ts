/**
 * The benchmarked broker as a real, separate process: a config written here, the key created
 * with `keyanchor keys create`, then `keyanchor serve` from dist/ with brokerProbe.ts preloaded
 * (event-loop delay and the CPU profiler, over IPC). Its output goes to a file, so that the bench
 * process spends nothing reading it; the file is polled for the listening line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BROKER_CLI, ROOT, runKeyanchor } from '../helpers/processes.js';
import type { ProbeAnswer, ProbeRequest } from './brokerProbe.js';

const PROBE = path.join(ROOT, 'dist', 'test', 'bench', 'brokerProbe.js');

export interface BrokerSpec {
  /** A short name: the config, state directory and log file are named after it. */
  name: string;
  dir: string;
  policyDir: string;
  /** TLS certificate and key; absent means plain HTTP on loopback (`insecureHttp`). */
  tls?: { cert: string; key: string };
  custody: Record<string, unknown>;
  /** Environment for the broker and the CLI (the HSM PIN). */
  env?: NodeJS.ProcessEnv;
  /** Keys to create before the broker starts. */
  keys: string[];
  /** Config members merged over the bench's (e.g. `store`, audit checkpoint intervals). */
  config?: Record<string, unknown>;
  /** Extra arguments to `keyanchor serve` (e.g. `--workers 2`). */
  serveArgs?: string[];
  /** Extra arguments to node (e.g. `--cpu-prof`; workers inherit them). */
  nodeArgs?: string[];
}

export interface BenchBroker {
  url: string;
  pid: number;
  /** Its config file, for `keyanchor --config … ` commands against its store. */
  config: string;
  /** Sends a probe request and resolves with its answer. */
  probe(req: ProbeRequest): Promise<ProbeAnswer>;
  stop(): Promise<void>;
}

/**
 * The broker's configuration: what a production config would say (software or PKCS#11 custody,
 * TLS, log level info), with nothing that would throttle the offered load.
 */
function writeConfig(spec: BrokerSpec): string {
  const file = path.join(spec.dir, `bench-${spec.name}.json`);
  const config = {
    stateDir: path.join(spec.dir, `state-${spec.name}`),
    policyDir: spec.policyDir,
    ...(spec.tls ? { tls: spec.tls } : { insecureHttp: true }),
    listen: { host: '127.0.0.1', port: 0 },
    dev: { enabled: false },
    log: { level: 'info' },
    custody: spec.custody,
    // One load generator is one source address: lift the per-source challenge limit.
    nonce: { perSource: { ratePerSecond: 1_000_000, burst: 1_000_000 } },
    ...spec.config,
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

async function waitForUrl(proc: ChildProcess, logFile: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const m = /keyanchor listening on (\S+)/.exec(readFileSync(logFile, 'utf8'));
    if (m) return m[1]!;
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`the broker did not start:\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
}

export async function startBenchBroker(spec: BrokerSpec): Promise<BenchBroker> {
  const config = writeConfig(spec);
  const env = { ...process.env, ...spec.env };
  for (const [i, key] of spec.keys.entries()) {
    const r = await runKeyanchor(['--config', config, 'keys', 'create', ...(i === 0 ? ['--init'] : []), key], spec.env);
    if (r.code !== 0) throw new Error(`keyanchor keys create ${key} exited ${r.code}: ${r.stderr}`);
  }
  const logFile = path.join(spec.dir, `broker-${spec.name}.log`);
  const out = openSync(logFile, 'w');
  const proc = spawn(process.execPath, [...(spec.nodeArgs ?? []), '--import', PROBE, BROKER_CLI, '--config', config, 'serve', ...(spec.serveArgs ?? [])], { cwd: ROOT, env, stdio: ['ignore', out, out, 'ipc'] });
  closeSync(out);
  const url = await waitForUrl(proc, logFile);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    url,
    pid: proc.pid!,
    config,
    probe: (req) =>
      new Promise((resolve, reject) => {
        const onMessage = (a: ProbeAnswer) => {
          proc.off('message', onMessage);
          if (a.probe === 'error') reject(new Error(`broker probe: ${a.message}`));
          else resolve(a);
        };
        proc.on('message', onMessage);
        proc.send(req);
      }),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
