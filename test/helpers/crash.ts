/**
 * Crash injection for end-to-end tests: run a real CLI process and SIGKILL it at a chosen moment,
 * either after a delay (to spread kills over the process lifetime) or as soon as the N-th change
 * shows up in a directory it writes to (to land kills inside its few milliseconds of file work:
 * the store's WAL appended, its shared memory touched…). inotify tells us about a change a little
 * after it happens, so an event-triggered kill lands at or shortly after that step.
 * Also: processes that race to rotate one key at the same instant.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, watch } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BROKER_CLI, ROOT } from './processes.js';

/**
 * `onEvent: n` kills at the (n+1)-th change in `dir`, counting only changes to `file` when given,
 * and only events of `type` when given (`change`: the file was written; `rename`: made or removed).
 */
export type KillAt = { afterMs: number } | { onEvent: number; dir: string; file?: string; type?: 'change' | 'rename' };

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
  return runNodeKilledAt([BROKER_CLI, ...args], at, env);
}

/** Runs `node NODEARGS` (a script of the test's, say) and SIGKILLs it at `at`. */
export function runNodeKilledAt(nodeArgs: string[], at: KillAt, env?: NodeJS.ProcessEnv): Promise<KillRun> {
  return new Promise((resolve, reject) => {
    const events: string[] = [];
    const started = performance.now();
    let killed = false;
    let seen = 0;
    const child = spawn(process.execPath, nodeArgs, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) killed = child.kill('SIGKILL');
    };
    let timer: NodeJS.Timeout | undefined;
    const watcher = 'onEvent' in at
      ? watch(at.dir, (type, file) => {
          events.push(`${type} ${file ?? '?'}`);
          if ((at.file === undefined || file === at.file) && (at.type === undefined || type === at.type)) seen++;
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

/** What a killed writer could leave in a state directory: temp files (KEK creation) or a rollback journal. */
export function leftovers(stateDir: string): { temps: string[]; journals: string[] } {
  const names = readdirSync(stateDir);
  return { temps: names.filter((n) => n.endsWith('.tmp')).sort(), journals: names.filter((n) => n.endsWith('-journal')).sort() };
}

/**
 * Starts `n` processes that rotate key `name` with the real KeyService on the state store (from
 * dist/, as the CLI runs them, software custody), lets them all load, then releases them at the
 * same instant. Each reports the version it made (or fails).
 */
export async function raceRotations(configFile: string, name: string, n: number): Promise<Array<{ code: number | null; version: number | undefined; stderr: string }>> {
  const mod = (p: string) => JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'src', p)).href);
  const script = `
    import { openKeys } from ${mod('keys/openKeys.js')};
    import { loadConfig } from ${mod('config.js')};
    import { systemClock } from ${mod('clock.js')};
    const [configFile, name] = process.argv.slice(1);
    const { keys, close } = await openKeys(loadConfig(configFile, {}), systemClock, 'use');
    process.stdout.write('ready\\n');
    process.stdin.once('data', async (at) => {
      while (Date.now() < Number(at)); // all spin up to the same instant, as busy processes would
      const info = await keys.rotate(name, 'race');
      process.stdout.write(JSON.stringify(info.versions.at(-1)) + '\\n');
      await close();
      process.exit(0);
    });`;
  const children = Array.from({ length: n }, () =>
    spawn(process.execPath, ['--input-type=module', '-e', script, configFile, name], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] }),
  );
  const results = children.map(
    (child) =>
      new Promise<{ code: number | null; version: number | undefined; stdout: string; stderr: string }>((resolve) => {
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d));
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('close', (code) => {
          const last = stdout.trim().split('\n').at(-1) ?? '';
          resolve({ code, version: last.startsWith('{') ? (JSON.parse(last) as { version: number }).version : undefined, stdout, stderr });
        });
      }),
  );
  const ready = (child: (typeof children)[number]) =>
    new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        if (out.startsWith('ready\n')) resolve();
      });
      child.once('close', () => reject(new Error('a racer exited before it was ready')));
    });
  try {
    await Promise.all(children.map(ready));
  } catch (e) {
    for (const child of children) child.kill('SIGKILL');
    throw e;
  }
  const at = String(Date.now() + 100);
  for (const child of children) child.stdin.end(at);
  return Promise.all(results);
}
