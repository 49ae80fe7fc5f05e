/**
 * `attest-agent exec`: measure the program into a private copy, attest, deliver the keys, run the
 * copy, clean up, and exit with the program's status.
 */
import type { StdioOptions } from 'node:child_process';
import { constants } from 'node:os';
import { attest } from '../attest.js';
import { checkDestinations, deliverKeys, type Delivery } from '../deliver.js';
import { FORWARDED_SIGNALS, runProgram } from '../exec.js';
import { parseKeySpecs } from '../keySpecs.js';
import { defaultWorkDir, prepareProgram, type PreparedProgram } from '../privateCopy.js';
import { resolveProgram } from '../workload.js';
import { keyRequests, readAttestationInputs, workloadFromFlags, type AttestationFlags } from './options.js';

export interface ExecFlags extends AttestationFlags { workDir?: string }

/** Seams for tests: a step between measuring and starting, and where the program's output goes. */
export interface ExecHooks {
  afterMeasure?: (prepared: PreparedProgram) => Promise<void> | void;
  stdio?: StdioOptions;
  env?: NodeJS.ProcessEnv;
}

export async function runExec(program: string, args: readonly string[], flags: ExecFlags, hooks: ExecHooks = {}): Promise<number> {
  const specs = parseKeySpecs(flags.key, true);
  checkDestinations(specs); // refuse non-tmpfs key files before anything is released
  const inputs = await readAttestationInputs(flags);
  const path = resolveProgram(program, hooks.env ?? process.env);
  const prepared = await prepareProgram(path, flags.workDir ?? defaultWorkDir(hooks.env));
  let delivery: Delivery | undefined;
  const cleanup = () => {
    delivery?.cleanup();
    prepared.cleanupSync();
  };
  const releaseGuard = guardSignals(cleanup);
  try {
    await hooks.afterMeasure?.(prepared);
    const workload = await workloadFromFlags({ path, sha256: prepared.sha256 }, flags);
    const result = await attest({ ...inputs, workload, keys: keyRequests(specs) });
    delivery = deliverKeys(specs, result.keys, hooks.env ?? process.env);
    releaseGuard();
    const running = await runProgram({ file: prepared.copyPath, argv0: program, args, env: delivery.env, stdio: hooks.stdio ?? 'inherit', cleanup });
    return await running.exited;
  } catch (err) {
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
