/**
 * Loads a policy in a worker thread, so that reading, verifying and parsing a large or hostile
 * policy never holds the event loop that answers requests (a generated 10,000-entry policy takes
 * ≈ 0.5 s to parse; a 16 MiB one several seconds). The worker is bounded in memory and time: one
 * that runs out of either is a refused load, and the broker goes on with the policy in force.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../paths.js';
import type { LoadRequest, LoadResult } from './loadPolicy.js';

export const LOAD_LIMITS = { timeoutMs: 60_000, maxOldGenerationSizeMb: 768 };

/**
 * The worker script. Under vitest this module is TypeScript, which a worker cannot run; the
 * worker then runs the compiled copy that test/globalSetup.ts builds before any suite.
 */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const sibling = path.join(path.dirname(here), 'loadWorker.js');
  return here.endsWith('.ts') || !existsSync(sibling) ? path.join(packageRoot(), 'dist', 'src', 'policy', 'loadWorker.js') : sibling;
}

export function loadOffThread(req: LoadRequest, limits = LOAD_LIMITS): Promise<LoadResult> {
  return new Promise((resolve) => {
    const refuse = (message: string) =>
      resolve({ ok: false, code: 'policy_invalid', problems: [{ file: req.dir, line: 0, col: 0, path: '(load)', message }] });
    let settled = false;
    const worker = new Worker(workerScript(), { workerData: req, resourceLimits: { maxOldGenerationSizeMb: limits.maxOldGenerationSizeMb }, stdout: true, stderr: true });
    const timer = setTimeout(() => {
      settle(() => refuse(`loading the policy took longer than ${limits.timeoutMs / 1000} s`));
      void worker.terminate();
    }, limits.timeoutMs);
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    worker.once('message', (r: LoadResult) => settle(() => resolve(r)));
    worker.once('error', (e: Error & { code?: string }) =>
      settle(() => refuse(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `loading the policy needed more than ${limits.maxOldGenerationSizeMb} MB` : `the policy could not be loaded: ${e.message}`)),
    );
    worker.once('exit', (code) => settle(() => refuse(`the policy loader stopped (exit ${code}) without an answer`)));
  });
}
