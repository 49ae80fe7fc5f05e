/** The worker thread's body: one load of a policy directory (loadPolicy.ts), answered as one message. */
import { parentPort, workerData } from 'node:worker_threads';
import { loadPolicy, type LoadRequest, type LoadResult } from './loadPolicy.js';

let result: LoadResult;
try {
  result = loadPolicy(workerData as LoadRequest);
} catch (e) {
  const req = workerData as LoadRequest;
  result = { ok: false, code: 'policy_invalid', problems: [{ file: req.dir, line: 0, col: 0, path: '(load)', message: `the policy could not be loaded: ${e instanceof Error ? e.message : String(e)}` }] };
}
parentPort!.postMessage(result);
