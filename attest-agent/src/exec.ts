/**
 * Starts the measured program from its private copy (see privateCopy.ts) with argv[0] set to the
 * original path, forwards SIGINT/SIGTERM/SIGHUP to it, and resolves with the status the agent
 * should exit with: the program's own exit code, or 128+N when it was killed by signal N.
 * Cleanup (key files, the private copy) runs when the program exits, when the agent receives one
 * of those signals, and, as a last resort, when the agent process exits.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import { AgentError } from './errors.js';

export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface RunOptions {
  /** The file to execute (the private copy). */
  file: string;
  /** argv[0] the program sees (its original path). */
  argv0: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  stdio?: StdioOptions;
  /** Run as this uid and gid, with no supplementary groups (libuv calls setgroups(0, NULL) when switching). */
  uid?: number;
  gid?: number;
  /** Synchronous cleanup; called once, at the first of: program exit, forwarded signal, agent exit. */
  cleanup?: () => void;
}

export interface RunningProgram {
  child: ChildProcess;
  /** Resolves with the agent's exit status once the program has exited and cleanup has run. */
  exited: Promise<number>;
}

export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? constants.signals[signal] : undefined;
  return 128 + (n ?? 0);
}

export function runProgram(options: RunOptions): Promise<RunningProgram> {
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    options.cleanup?.();
  };
  process.once('exit', cleanup);

  const child = spawn(options.file, [...options.args], {
    argv0: options.argv0,
    env: options.env,
    stdio: options.stdio ?? 'inherit',
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
  const forward = (signal: NodeJS.Signals) => {
    cleanup();
    child.kill(signal);
  };
  const handlers = FORWARDED_SIGNALS.map((s) => [s, () => forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  const detach = () => {
    for (const [s, h] of handlers) process.off(s, h);
    process.off('exit', cleanup);
  };

  return new Promise<RunningProgram>((resolveStart, rejectStart) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      detach();
      cleanup();
      const hint = err.code === 'EACCES' ? ' (is the work dir mounted noexec? try --work-dir)'
        : err.code === 'EPERM' ? ' (switching to --user needs root or CAP_SETUID and CAP_SETGID)' : '';
      rejectStart(new AgentError('exec_failed', `cannot start ${options.argv0}: ${err.code ?? err.message}${hint}`, { cause: err }));
    });
    child.once('spawn', () => {
      const exited = new Promise<number>((resolveExit) => {
        child.once('exit', (code, signal) => {
          detach();
          cleanup();
          resolveExit(exitStatus(code, signal));
        });
      });
      resolveStart({ child, exited });
    });
  });
}
