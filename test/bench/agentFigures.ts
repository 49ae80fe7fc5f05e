/**
 * The agent's own figures: how fast it hashes a program, and what `attest-agent exec` of a tiny
 * program costs end to end (a fresh Node process, a new TLS connection, one attestation, the
 * program started) next to Node's own start.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { measureFile } from '../../attest-agent/src/index.js';
import { AGENT_CLI } from '../helpers/processes.js';
import { median } from './stats.js';

export interface Hashing {
  mbps: number;
  sha256sumMbps: number;
  sizeMiB: number;
}

/** Streamed sha256 of a `sizeMiB` file by the agent (median of 5, page cache warm), and sha256sum's. */
export async function benchHashing(sizeMiB: number): Promise<Hashing> {
  const file = path.join(os.tmpdir(), `keyanchor-bench-${process.pid}.bin`);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
  try {
    await measureFile(file); // warm the page cache
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await measureFile(file);
      runs.push(performance.now() - t);
    }
    const sums: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      execFileSync('sha256sum', [file], { stdio: 'ignore' });
      sums.push(performance.now() - t);
    }
    return { mbps: (sizeMiB * 1.048576) / (median(runs) / 1000), sha256sumMbps: (sizeMiB * 1.048576) / (median(sums) / 1000), sizeMiB };
  } finally {
    rmSync(file, { force: true });
  }
}

export interface ExecOverhead {
  execMs: number;
  nodeMs: number;
  hashMs: number;
}

export interface ExecTarget {
  url: string;
  ca: string;
  nodeCert: string;
  nodeKey: string;
  key: string;
  program: string;
}

const wallMs = (cmd: string, args: string[]): Promise<number> =>
  new Promise((resolve, reject) => {
    const t = performance.now();
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('exit', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`${path.basename(cmd)} ${args[0]} exited ${code}`))));
  });

/** Median wall time of `attest-agent exec` against a running broker, and of `node -e 0`, over `runs`. */
export async function benchAgentExec(t: ExecTarget, runs: number): Promise<ExecOverhead> {
  const args = ['exec', '--allow-shared-uid', '--broker', t.url, '--ca', t.ca, '--node-cert', t.nodeCert, '--node-key', t.nodeKey, '--key', `${t.key}=APP_KEY`, '--', t.program];
  const execRuns: number[] = [];
  const nodeRuns: number[] = [];
  for (let i = 0; i < runs; i++) {
    execRuns.push(await wallMs(process.execPath, [AGENT_CLI, ...args]));
    nodeRuns.push(await wallMs(process.execPath, ['-e', '0']));
  }
  const h = performance.now();
  await measureFile(t.program);
  return { execMs: median(execRuns), nodeMs: median(nodeRuns), hashMs: performance.now() - h };
}
