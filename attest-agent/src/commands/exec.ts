/**
 * `attest-agent exec`: check the workload's user cannot read the node key, measure the program
 * into a private copy (while the challenge is on its way), attest, deliver the keys, run the copy
 * under that user, clean up, and exit with the program's status.
 */
import type { StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import { attest } from '../attest.js';
import { checkDestinations, deliverKeys, type Delivery } from '../deliver.js';
import { AgentError } from '../errors.js';
import { FORWARDED_SIGNALS, runProgram } from '../exec.js';
import { canSwitchUser, checkIsolation, resolveRunAs, type RunAs } from '../isolation.js';
import { parseKeySpecs } from '../keySpecs.js';
import { defaultWorkDir, prepareProgram, type PreparedProgram } from '../privateCopy.js';
import { resolveProgram } from '../workload.js';
import { keyRequests, startAttestation, workloadFromFlags, type AttestationFlags } from './options.js';

export interface ExecFlags extends AttestationFlags {
  workDir?: string;
  /** Run the program as this user (name or uid) … */
  user?: string;
  /** … and group (default: the user's primary group). */
  group?: string;
  /** Start the program even when its uid could read the node key (development only). */
  allowSharedUid?: boolean;
}

/** Seams for tests: a step between measuring and starting, and where the program's output goes. */
export interface ExecHooks {
  afterMeasure?: (prepared: PreparedProgram) => Promise<void> | void;
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
}

function runAsFromFlags(flags: ExecFlags): RunAs | undefined {
  if (flags.user === undefined) {
    if (flags.group !== undefined) throw new AgentError('usage', '--group needs --user');
    return undefined;
  }
  const runAs = resolveRunAs(flags.user, flags.group);
  if (!canSwitchUser()) throw new AgentError('config', `--user ${flags.user}: the agent must run as root or with CAP_SETUID and CAP_SETGID to start a program as another user`);
  return runAs;
}

/** The program's environment: the agent's, with USER, LOGNAME and HOME of the user it runs as. */
function programEnv(env: NodeJS.ProcessEnv, runAs: RunAs | undefined): NodeJS.ProcessEnv {
  if (!runAs?.name) return env;
  return { ...env, USER: runAs.name, LOGNAME: runAs.name, ...(runAs.home ? { HOME: runAs.home } : {}) };
}

export async function runExec(program: string, args: readonly string[], flags: ExecFlags, hooks: ExecHooks = {}): Promise<number> {
  const env = hooks.env ?? process.env;
  const specs = parseKeySpecs(flags.key, true);
  checkDestinations(specs); // refuse non-tmpfs key files before anything is released
  const runAs = runAsFromFlags(flags);
  checkIsolation(flags.nodeKey, runAs, { allowSharedUid: Boolean(flags.allowSharedUid) });
  const path = resolveProgram(program, env);
  const { inputs, opening, measured: prepared } = await startAttestation(
    flags,
    () => prepareProgram(path, flags.workDir ?? defaultWorkDir(env), runAs?.gid),
    (p) => p.cleanupSync(),
  );
  let delivery: Delivery | undefined;
  const cleanup = () => {
    delivery?.cleanup();
    prepared.cleanupSync();
  };
  const releaseGuard = guardSignals(cleanup);
  try {
    await hooks.afterMeasure?.(prepared);
    const workload = await workloadFromFlags({ path, sha256: prepared.sha256 }, flags);
    const result = await attest({ ...inputs, workload, keys: keyRequests(specs) }, opening);
    delivery = deliverKeys(specs, result.keys, programEnv(env, runAs), runAs);
    releaseGuard();
    const running = await runProgram({
      file: prepared.copyPath, argv0: program, args, env: delivery.env, stdio: hooks.stdio ?? 'inherit', cleanup,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    return await running.exited;
  } catch (err) {
    opening.close();
    releaseGuard();
    cleanup();
    throw err;
  }
}

/**
 * Until the program runs, a SIGINT/SIGTERM/SIGHUP to the agent must still remove the private copy
 * and any key file already written, then exit as the default action would have (128+N).
 */
function guardSignals(cleanup: () => void): () => void {
  const handlers = FORWARDED_SIGNALS.map((s) => [s, () => {
    cleanup();
    process.exit(128 + constants.signals[s]);
  }] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return () => { for (const [s, h] of handlers) process.off(s, h); };
}
