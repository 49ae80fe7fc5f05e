/**
 * The demo policy's limits as a new user meets them (policies/demo/demo.yaml: the demo app at
 * 10/min and 100/h): `keyanchor serve --dev` (what `npm start` runs) on the repository's demo
 * policy, one `keyanchor demo` (what `npm run demo` runs) that the limit does not disturb, then a
 * burst of 30 `attest-agent fetch` of the demo key from real agent processes, which runs into
 * `rate_limited` (exit 50, with the broker's Retry-After) once the window is used up.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../attest-agent/src/exitCodes.js';
import { devPaths } from '../../src/dev/bootstrap.js';
import { ROOT, runAgent, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';

const BURST = 30;
const AT_ONCE = 6;

let dir: string;
let shm: string;
let broker: BrokerProcess;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyanchor-demo-limits-'));
  shm = mkdtempSync(path.join('/dev/shm', 'keyanchor-demo-limits-'));
  env = { KEYANCHOR_STATE_DIR: path.join(dir, 'state'), KEYANCHOR_POLICY_DIR: path.join(ROOT, 'policies', 'demo') };
  broker = await startBrokerProcess(['serve', '--dev', '--port', '0'], env);
}, 60_000);
afterAll(async () => {
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

describe('the demo policy limits the demo app', () => {
  it(`one demo runs; a burst of ${BURST} fetches hits rate_limited`, { timeout: 180_000 }, async () => {
    const demo = await runKeyanchor(['demo'], env);
    expect(demo.code, demo.stderr).toBe(0);

    const dev = devPaths(env.KEYANCHOR_STATE_DIR!);
    const fetch = (i: number) => {
      const out = path.join(shm, `k${i}`);
      mkdirSync(out, { mode: 0o700 });
      return runAgent([
        'fetch', '--broker', broker.url, '--ca', dev.tlsCa, '--node-cert', dev.nodeCert, '--node-key', dev.nodeKey, '--retries', '0',
        '--key', 'demo/app-key', '--program', dev.demoApp, '--sig', dev.demoAppSig, '--out', path.join(out, 'key.json'),
      ]);
    };
    const results = [];
    for (let i = 0; i < BURST; i += AT_ONCE) results.push(...(await Promise.all(Array.from({ length: AT_ONCE }, (_, j) => fetch(i + j)))));

    const codes = results.map((r) => r.code);
    expect(codes.every((c) => c === 0 || c === EXIT_CODES.rate_limited), JSON.stringify(results.filter((r) => r.code !== 0 && r.code !== EXIT_CODES.rate_limited))).toBe(true);
    const released = codes.filter((c) => c === 0).length;
    // 10 a minute, one of them the demo's: the first fetches release, the rest are refused.
    expect(released).toBeGreaterThanOrEqual(1);
    expect(released).toBeLessThanOrEqual(9);
    const refused = results.find((r) => r.code === EXIT_CODES.rate_limited)!;
    expect(refused.stderr).toMatch(/rate/i);
    expect(refused.stderr).toMatch(/retry after \d+ s|Retry-After/i);
  });
});
