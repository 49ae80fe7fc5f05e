/**
 * The load generator, run as a separate process: full agent round trips (challenge, fresh
 * ephemeral key, signed evidence, attest, decrypt) against a broker URL, each on a new TLS
 * connection as a starting workload makes (or, with `warm`, on one kept-alive connection per
 * worker, as a long-running client would). Prints one JSON line of results.
 *
 *   node dist/test/bench/load.js '{"mode":"seq","n":300,...}'   sequential latency
 *   node dist/test/bench/load.js '{"mode":"load","seconds":10,"concurrency":8,...}'
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { attestOnce, describeWorkload, readNodeIdentity, zeroKeys } from '../../attest-agent/src/index.js';

interface Args {
  mode: 'seq' | 'load';
  url: string;
  ca: string;
  nodeCert: string;
  nodeKey: string;
  program: { path: string; sha256: string };
  sig: string;
  key: string;
  /** Keep one TLS connection per worker across attestations (a warm client). */
  warm?: boolean;
  n?: number;
  warmup?: number;
  seconds?: number;
  concurrency?: number;
}

const a = JSON.parse(process.argv[2]!) as Args;
const node = await readNodeIdentity(a.nodeCert, a.nodeKey);
const workload = await describeWorkload(a.program, { sigFiles: [a.sig], imageSigs: [] }, {});
const opts = { broker: a.url, ca: readFileSync(a.ca), node, workload, keys: [{ name: a.key }], timeoutMs: 10_000 };
const warmPool = () => (a.warm ? { connection: new https.Agent({ keepAlive: true, maxSockets: 1 }) } : {});

async function once(pool: { connection?: https.Agent }): Promise<number> {
  const t = performance.now();
  const r = await attestOnce({ ...opts, ...pool });
  const ms = performance.now() - t;
  if (r.keys.get(a.key)?.length !== 32) throw new Error('no key');
  zeroKeys(r.keys);
  return ms;
}

const lat: number[] = [];
let errors = 0;
if (a.mode === 'seq') {
  const pool = warmPool();
  for (let i = 0; i < (a.warmup ?? 30); i++) await once(pool);
  for (let i = 0; i < (a.n ?? 300); i++) lat.push(await once(pool));
  process.stdout.write(JSON.stringify({ lat }) + '\n');
} else {
  const end = performance.now() + (a.seconds ?? 10) * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: a.concurrency ?? 8 }, async () => {
      const pool = warmPool();
      while (performance.now() < end) {
        try {
          lat.push(await once(pool));
        } catch {
          errors++;
        }
      }
    }),
  );
  process.stdout.write(JSON.stringify({ lat, errors, elapsedMs: performance.now() - t0 }) + '\n');
}
