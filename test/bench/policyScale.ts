/**
 * Policy at scale, both sizes in one run: a generated signed policy of 10,000 software entries,
 * 2,000 keys, 500 publishers (450 keys, 50 CAs), 200 zones and 20 node CAs, against one of 10
 * entries built the same way. Reports the time to read, verify, parse and build each (in
 * process), a reload through the broker's runtime (worker thread) with the longest stall of
 * the event loop meanwhile, the cost of one decision in each (evaluate(), indexed), and the
 * memory each adds to a process that holds it.
 *
 * `node dist/test/bench/policyScale.js [--quick]` after `npm run build`; `npm run bench` runs it too.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ManualClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { BUNDLE_FILE } from '../../src/policy/bundle/dsse.js';
import { makeBundle } from '../../src/policy/bundle/sign.js';
import { rootFromPems } from '../../src/policy/bundle/trustRoot.js';
import { evaluate, type Claims } from '../../src/policy/evaluate.js';
import { readPolicyTree } from '../../src/policy/files.js';
import { closeHighWaters, SqliteHighWater } from '../helpers/highWater.js';
import { hydrate } from '../../src/policy/hydrate.js';
import { loadPolicy } from '../../src/policy/loadPolicy.js';
import { PolicyRuntime } from '../../src/policy/runtime.js';
import { issueCertificate } from '../../src/pki.js';
import { fmt, median } from './stats.js';

export interface Size {
  software: number;
  keys: number;
  keyPublishers: number;
  caPublishers: number;
  zones: number;
  nodeCAs: number;
}
export const LARGE: Size = { software: 10_000, keys: 2_000, keyPublishers: 450, caPublishers: 50, zones: 200, nodeCAs: 20 };
export const SMALL: Size = { software: 10, keys: 10, keyPublishers: 10, caPublishers: 2, zones: 4, nodeCAs: 2 };
const ENTRIES_PER_FILE = 500;
const h = (s: string) => createHash('sha256').update(s).digest('hex');

/** Writes a policy of `size` into `dir` (20-odd files and certs/) and signs it with `rootPem`'s key. */
export async function generatePolicy(dir: string, size: Size, root: { privateKey: import('node:crypto').KeyObject }): Promise<void> {
  mkdirSync(path.join(dir, 'certs'), { recursive: true });
  let head = 'nodeCAs:\n';
  for (let i = 0; i < size.nodeCAs; i++) {
    const ca = await issueCertificate({ subject: `CN=bench node CA ${i}`, ca: true });
    writeFileSync(path.join(dir, 'certs', `node-ca-${i}.pem`), ca.certPem);
    head += `  - { name: ca-${i}, certificate: { file: certs/node-ca-${i}.pem } }\n`;
  }
  head += 'zones:\n';
  for (let i = 0; i < size.zones; i++) head += `  - { name: zone-${i}, match: { nodeCA: ca-${i % size.nodeCAs}, sanUriPrefix: "spiffe://bench/zone/${i}/" } }\n`;
  head += 'publishers:\n';
  for (let i = 0; i < size.keyPublishers; i++) {
    writeFileSync(path.join(dir, 'certs', `pub-${i}.pem`), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    head += `  - { name: pub-${i}, publicKey: { file: certs/pub-${i}.pem } }\n`;
  }
  for (let i = 0; i < size.caPublishers; i++) {
    const ca = await issueCertificate({ subject: `CN=bench release CA ${i}`, ca: true });
    writeFileSync(path.join(dir, 'certs', `release-ca-${i}.pem`), ca.certPem);
    head += `  - { name: capub-${i}, certificate: { file: certs/release-ca-${i}.pem } }\n`;
  }
  writeFileSync(path.join(dir, '00-trust.yaml'), head);
  for (let f = 0; f * ENTRIES_PER_FILE < size.software; f++) {
    let y = 'software:\n';
    for (let i = f * ENTRIES_PER_FILE; i < Math.min(size.software, (f + 1) * ENTRIES_PER_FILE); i++) {
      const team = `team-${i % (size.keys / 2)}`;
      y += `  - name: sw-${i}\n`;
      y += i % 2 === 0
        ? `    binary: { digests: ["${h(`binary ${i}`)}"] }\n    image: { digests: ["sha256:${h(`image ${i}`)}"] }\n`
        : `    binary: { publishers: [pub-${i % size.keyPublishers}] }\n    image: { publishers: [capub-${Math.floor(i / size.keyPublishers) % size.caPublishers}] }\n`;
      y += `    grants:\n      - keys: [${team}/key-a, "${team}/key-b@2"]\n        zones: [zone-${i % size.zones}]\n`;
    }
    writeFileSync(path.join(dir, `software-${String(f).padStart(3, '0')}.yaml`), y);
  }
  const tree = readPolicyTree(dir);
  writeFileSync(path.join(dir, BUNDLE_FILE), makeBundle(tree.files, { version: 1, expires: Date.now() + 86_400_000, keys: [root.privateKey] }));
}

/** The decision the bench times: entry `i` (even: pinned digests; odd: publishers) on a node of its zone. */
export function claimsFor(size: Size, i: number): Claims {
  const zone = i % size.zones;
  const team = `team-${i % (size.keys / 2)}`;
  return {
    node: { nodeCA: `ca-${zone % size.nodeCAs}`, subject: 'CN=node-1', sanUris: [`spiffe://bench/zone/${zone}/node-1`], fingerprint: '' },
    binary: i % 2 === 0 ? { sha256: h(`binary ${i}`), publishers: new Set() } : { sha256: h('some binary'), publishers: new Set([`pub-${i % size.keyPublishers}`]) },
    image: i % 2 === 0 ? { digest: `sha256:${h(`image ${i}`)}`, publishers: new Set() } : { digest: `sha256:${h('some image')}`, publishers: new Set([`capub-${Math.floor(i / size.keyPublishers) % size.caPublishers}`]) },
    keys: [{ name: `${team}/key-a` }],
  };
}

/**
 * ns per decision for each (policy, claims), batches of the cases taken in turn so that every case
 * sees the same machine load; the fastest batch of each counts (the machine is shared and noisy).
 */
function nsPerDecision(cases: Array<{ policy: ReturnType<typeof hydrate>; claims: Claims }>, n: number): number[] {
  for (const { policy, claims } of cases) {
    const d = evaluate(policy, claims);
    if (!d.allow || d.software.length !== 1) throw new Error(`the bench decision is not an allow by one entry: ${JSON.stringify(d)}`);
  }
  const best = cases.map(() => Infinity);
  for (let r = 0; r < 15; r++) {
    cases.forEach(({ policy, claims }, i) => {
      const t = performance.now();
      for (let k = 0; k < n; k++) evaluate(policy, claims);
      best[i] = Math.min(best[i]!, ((performance.now() - t) * 1e6) / n);
    });
  }
  return best;
}

const gc = (): void => {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
};

/** In a child process: the memory a process holding the policy (as the broker's runtime loads it) uses. */
async function childMemory(dir: string, rootPub: string): Promise<void> {
  gc();
  const before = process.memoryUsage();
  const rt = await PolicyRuntime.start({
    dir, vars: {}, root: { keys: [rootPub], threshold: 1 }, requireSigned: true,
    highWater: new SqliteHighWater(mkdtempSync(path.join(os.tmpdir(), 'keyanchor-bench-mark-'))), clock: new ManualClock(Date.now()), log: createLogger('silent'),
  });
  await new Promise((r) => setTimeout(r, 200)); // let the worker thread go
  gc();
  const after = process.memoryUsage();
  process.stdout.write(JSON.stringify({ rss: after.rss - before.rss, heap: after.heapUsed + after.external - before.heapUsed - before.external, software: rt.current().policy.software.length }));
}

function memoryOf(dir: string, rootPub: string): { rss: number; heap: number } {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child-memory', dir, rootPub], { encoding: 'utf8' });
  return JSON.parse(out) as { rss: number; heap: number };
}

/** A logger whose 'policy loaded' line the bench reads (the longest slice the build held the loop). */
function capturingLog(): { log: ReturnType<typeof createLogger>; longestSliceMs: () => number } {
  const slices: number[] = [];
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => {
    const s = (JSON.parse(String(c)) as { longestSliceMs?: number }).longestSliceMs;
    if (s !== undefined) slices.push(s);
    cb();
  } }));
  return { log, longestSliceMs: () => median(slices) };
}

/** The longest the event loop went without running a 1 ms timer while `work` ran. */
async function longestStall(work: () => Promise<unknown>): Promise<{ ms: number; stallMs: number }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  const t = performance.now();
  await work();
  const ms = performance.now() - t;
  clearInterval(timer);
  return { ms, stallMs: worst };
}

export async function benchPolicyScale(quick: boolean): Promise<string[]> {
  const base = mkdtempSync(path.join(os.tmpdir(), 'keyanchor-bench-policy-'));
  const root = generateKeyPairSync('ed25519');
  const rootPub = path.join(base, 'root.pub');
  writeFileSync(rootPub, root.publicKey.export({ type: 'spki', format: 'pem' }));
  const rootData = rootFromPems([root.publicKey.export({ type: 'spki', format: 'pem' })], 1);
  const out: string[] = [];
  try {
    const results: Record<'small' | 'large', { loadMs: number; ns: number; nsPub: number; bytes: number; files: number; reload: { ms: number; stallMs: number; sliceMs: number }; mem: { rss: number; heap: number } }> = {} as never;
    const policies: Partial<Record<'small' | 'large', ReturnType<typeof hydrate>>> = {};
    for (const [label, size] of [['small', SMALL], ['large', LARGE]] as const) {
      const dir = path.join(base, label);
      await generatePolicy(dir, size, root);
      const tree = readPolicyTree(dir);
      const bytes = [...tree.files.values()].reduce((a, b) => a + b.length, 0);
      const loads: number[] = [];
      let policy: ReturnType<typeof hydrate> | undefined;
      for (let r = 0; r < (quick ? 1 : 3); r++) {
        const t = performance.now();
        const res = loadPolicy({ dir, vars: {}, root: rootData, now: Date.now() });
        if (!res.ok) throw new Error(`generated policy refused: ${res.code} ${res.problems.slice(0, 3).map((p) => p.message).join('; ')}`);
        policy = hydrate(res.compiled);
        loads.push(performance.now() - t);
      }
      policies[label] = policy!;
      const clock = new ManualClock(Date.now());
      const captured = capturingLog();
      const stalls: Array<{ ms: number; stallMs: number }> = [];
      for (let r = 0; r < (quick ? 1 : 3); r++) {
        stalls.push(await longestStall(() =>
          PolicyRuntime.start({ dir, vars: {}, root: { keys: [rootPub], threshold: 1 }, requireSigned: true, highWater: new SqliteHighWater(mkdtempSync(path.join(base, 'mark-'))), clock, log: captured.log }),
        ));
      }
      const reload = { ms: median(stalls.map((x) => x.ms)), stallMs: median(stalls.map((x) => x.stallMs)), sliceMs: captured.longestSliceMs() };
      results[label] = { loadMs: median(loads), ns: NaN, nsPub: NaN, bytes, files: tree.files.size, reload, mem: memoryOf(dir, rootPub) };
    }
    const { small, large } = results;
    const mid = (size: Size, odd: boolean) => (size.software / 2) + ((size.software / 2) % 2 === (odd ? 1 : 0) ? 0 : 1);
    [small.ns, large.ns, small.nsPub, large.nsPub] = nsPerDecision(
      [
        { policy: policies.small!, claims: claimsFor(SMALL, mid(SMALL, false)) },
        { policy: policies.large!, claims: claimsFor(LARGE, mid(LARGE, false)) },
        { policy: policies.small!, claims: claimsFor(SMALL, mid(SMALL, true)) },
        { policy: policies.large!, claims: claimsFor(LARGE, mid(LARGE, true)) },
      ],
      quick ? 5_000 : 50_000,
    ) as [number, number, number, number];
    const mb = (b: number) => fmt(b / 2 ** 20, 1);
    out.push(`policy at scale: ${LARGE.software} software entries, ${LARGE.keys} keys, ${LARGE.keyPublishers + LARGE.caPublishers} publishers, ${LARGE.zones} zones (${large.files} files, ${mb(large.bytes)} MiB, signed) against ${SMALL.software} entries (${small.files} files)`);
    out.push(`policy load + verify + build, in process: large ${fmt(large.loadMs, 0)} ms, small ${fmt(small.loadMs, 1)} ms (median of ${quick ? 1 : 3})`);
    out.push(`policy reload through the runtime (worker thread), median of ${quick ? 1 : 3}: large ${fmt(large.reload.ms, 0)} ms, the longest build slice on the event loop ${fmt(large.reload.sliceMs, 1)} ms, the longest gap between 1 ms timers (scheduling included) ${fmt(large.reload.stallMs, 1)} ms; small ${fmt(small.reload.ms, 0)} ms, slice ${fmt(small.reload.sliceMs, 1)} ms, gap ${fmt(small.reload.stallMs, 1)} ms`);
    out.push(`decision (evaluate, indexed; fastest of 15 interleaved batches), entry approved by pinned digests: large ${fmt(large.ns, 0)} ns, small ${fmt(small.ns, 0)} ns, ratio ${fmt(large.ns / small.ns, 2)}; approved by publishers: large ${fmt(large.nsPub, 0)} ns, small ${fmt(small.nsPub, 0)} ns, ratio ${fmt(large.nsPub / small.nsPub, 2)}`);
    out.push(`memory of a process holding the policy (after GC): large +${mb(large.mem.rss)} MiB RSS (+${mb(large.mem.heap)} MiB heap and external), small +${mb(small.mem.rss)} MiB RSS; the large one adds ${mb(large.mem.rss - small.mem.rss)} MiB`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--child-memory');
  if (i > 0) await childMemory(process.argv[i + 1]!, process.argv[i + 2]!);
  else for (const line of await benchPolicyScale(process.argv.includes('--quick'))) process.stdout.write(line + '\n');
}
