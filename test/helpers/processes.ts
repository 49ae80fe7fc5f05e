/** Real child processes: the broker CLI, the agent CLI, and the keyanchor CLI. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { packageRoot } from '../../src/paths.js';

/** The checkout, whether this runs from test/ (vitest) or dist/test/ (the benchmark). */
export const ROOT = packageRoot();
export const BROKER_CLI = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const AGENT_CLI = path.join(ROOT, 'attest-agent', 'bin', 'attest-agent.js');

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export const runAgent = (args: string[], env?: NodeJS.ProcessEnv) => run(process.execPath, [AGENT_CLI, ...args], { env });
export const runKeyanchor = (args: string[], env?: NodeJS.ProcessEnv) => run(process.execPath, [BROKER_CLI, ...args], { env });

export interface BrokerProcess {
  url: string;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `keyanchor serve` and waits for the line that gives its URL. */
export function startBrokerProcess(args: string[], env?: NodeJS.ProcessEnv): Promise<BrokerProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BROKER_CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`broker did not start:\n${out}`));
    }, 20_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = /keyanchor listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1]!,
          proc,
          output: () => out,
          stop: () =>
            new Promise<void>((r) => {
              if (proc.exitCode !== null || proc.signalCode !== null) return r();
              proc.once('exit', () => r());
              proc.kill('SIGTERM');
            }),
        });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => (out += d));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code}:\n${out}`));
    });
  });
}
