/**
 * Crash injection for end-to-end tests: run a real CLI process and SIGKILL it at a chosen moment,
 * either after a delay (to spread kills over the process lifetime) or as soon as the N-th change
 * shows up in a directory it writes to (to land kills inside its few milliseconds of file work:
 * lock taken, temp file written, renamed, audit appended…). inotify tells us about a change a
 * little after it happens, so an event-triggered kill lands at or shortly after that step.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, watch } from 'node:fs';
import { BROKER_CLI, ROOT } from './processes.js';

/** `onEvent: n` kills at the (n+1)-th change in `dir`, counting only changes to `file` when given. */
export type KillAt = { afterMs: number } | { onEvent: number; dir: string; file?: string };

export interface KillRun {
  /** True when our SIGKILL ended the process (false: it finished first). */
  killed: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** `<eventType> <file>` for each change seen in the watched directory, in order. */
  events: string[];
}

/** Runs `keyanchor ARGS` and SIGKILLs it at `at`. */
export function runKeyanchorKilledAt(args: string[], at: KillAt, env?: NodeJS.ProcessEnv): Promise<KillRun> {
  return new Promise((resolve, reject) => {
    const events: string[] = [];
    const started = performance.now();
    let killed = false;
    let seen = 0;
    const child = spawn(process.execPath, [BROKER_CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) killed = child.kill('SIGKILL');
    };
    let timer: NodeJS.Timeout | undefined;
    const watcher = 'onEvent' in at
      ? watch(at.dir, (type, file) => {
          events.push(`${type} ${file ?? '?'}`);
          if (at.file === undefined || file === at.file) seen++;
          if (seen > at.onEvent) kill();
        })
      : undefined;
    if ('afterMs' in at) timer = setTimeout(kill, at.afterMs);
    // A process that hangs is a failure of its own; never let one hold up the suite.
    const guard = setTimeout(kill, 30_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      watcher?.close();
      resolve({ killed: killed && signal === 'SIGKILL', code, stdout, stderr, ms: performance.now() - started, events });
    });
  });
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A short, stable fingerprint of key bytes, safe to print: the key itself never is. */
export const fingerprint = (key: Uint8Array): string => 'sha256:' + createHash('sha256').update(key).digest('hex').slice(0, 16);

/** What a killed writer can leave in a state directory: lock files and temp files. */
export function leftovers(stateDir: string): { locks: string[]; temps: string[] } {
  const names = readdirSync(stateDir);
  return { locks: names.filter((n) => n.endsWith('.lock')).sort(), temps: names.filter((n) => n.endsWith('.tmp')).sort() };
}
