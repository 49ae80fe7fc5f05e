/**
 * `node dist/test/bench/run.js --quick` runs against real processes and prints every figure: a
 * smoke test of `npm run bench`, not a timing assertion (the figures are in docs/benchmarks.md).
 * The bench exits non-zero when any release failed, so exit 0 also means every release in it
 * (a sample of them opened and checked) succeeded.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/deps.js';
import { ROOT, run } from '../helpers/processes.js';

const hsm = requireTool('softhsm2-util', "the bench's PKCS#11 custody phases");
const n = String.raw`\d+(?:\.\d+)?`;
const phase = (label: string, c: number) =>
  new RegExp(
    String.raw`^${label}, concurrency ${c}: ${n} releases/s over ${n} s; ${n} releases per broker CPU-second \(${n} µs each, ${n} % on main threads; ${n} of the floor\); ` +
      String.raw`broker ${n} cores in [1-9]\d* process(?:es)?, load generator ${n} cores \(${n} µs per release\); latency p50 ${n} ms, p99 ${n} ms \(p99/p50 ${n}\); ` +
      String.raw`(?:broker|the primary's) event-loop delay p50 ${n} ms, p99 ${n} ms, max ${n} ms; [1-9]\d* keys opened and checked; errors 0 \[load ${n}\]$`,
    'm',
  );
const warmUp = (label: string) => new RegExp(String.raw`^${label}, warm-up at concurrency 8: [1-9]\d* releases in ${n} s; broker CPU per release ${n} µs in the first second, ${n} µs in the last \(.+\); errors 0 \[load ${n}\]$`, 'm');

describe('npm run bench --quick', () => {
  it('exits 0 and prints every figure', async () => {
    const r = await run(process.execPath, [path.join(ROOT, 'dist', 'test', 'bench', 'run.js'), '--quick'], { timeoutMs: 240_000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const out = r.stdout;
    expect(out).toMatch(/^# keyanchor bench \S+ — \d+× .+ \(quick\)$/m);
    expect(out).toMatch(new RegExp(String.raw`^crypto floor \(one single-key release, synchronous node:crypto\): ${n} µs of CPU, ${n} releases per CPU-second \(ECDSA P-256 verify ${n} µs, P-256 key generation ${n} µs, ECDH ${n} µs, AES-256-KW of 32 bytes ${n} µs, AES-256-GCM of 32 bytes ${n} µs, 32 random bytes ${n} µs; sum of the parts ${n} µs\) \[load ${n}\]$`, 'm'));
    expect(out).toMatch(warmUp('software custody'));
    for (const c of [1, 8, 64]) expect(out).toMatch(phase('software custody', c));
    expect(out).toMatch(warmUp('software custody, 2 workers'));
    expect(out).toMatch(phase('software custody, 1 worker, round 1', 64));
    expect(out).toMatch(phase('software custody, 2 workers, round 1', 64));
    expect(out).toMatch(new RegExp(String.raw`^workers \(median of 1 interleaved round at concurrency 64\): 1 worker ${n} releases per broker CPU-second, ${n} cores, ${n} releases/s; 2 workers ${n}, ${n} cores, ${n} releases/s; ratio ${n} \[load ${n}\]$`, 'm'));
    if (hsm) {
      expect(out).toMatch(warmUp(String.raw`pkcs11 custody \(SoftHSM2\)`));
      for (const c of [1, 8]) expect(out).toMatch(phase(String.raw`pkcs11 custody \(SoftHSM2\)`, c));
    } else expect(out).toMatch(/^pkcs11 custody \(SoftHSM2\): skipped, SoftHSM2 is not installed$/m);
    const exec = (label: string) => new RegExp(String.raw`^agent exec of a small program \(${label}\): ${n} ms median for the whole command, Node's own start ${n} ms, hashing ${n} ms; beyond Node's start -?${n} ms \[load ${n}\]$`, 'm');
    expect(out).toMatch(exec('software custody, EC recipient'));
    if (hsm) expect(out).toMatch(exec(String.raw`pkcs11 custody \(SoftHSM2\), RSA recipient`));
    expect(out).toMatch(new RegExp(String.raw`^agent hashing: ${n} MB/s streamed sha256 over a 128 MiB file \(median of 5, page cache warm\); sha256sum: ${n} MB/s \[load ${n}\]$`, 'm'));
    expect(out).toMatch(warmUp('audit checkpoints without checkpoints'));
    expect(out).toMatch(new RegExp(String.raw`^audit checkpoints, releases per broker CPU-second at concurrency 8 \(median of 1 interleaved rounds\): without checkpoints ${n}, as shipped ${n} \(-?${n} %\) \[load ${n}\]$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^audit records: the store part of a release transaction \(SQLite FULL, 8 waiting at once\) ${n} µs of CPU with the record as before, ${n} µs as now; its search terms ${n} µs per record \(indexed in batches\); the store-file check ${n} µs per batch: -?${n} µs more, -?${n} % of the broker's ${n} µs per release \[load ${n}\]$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target checkpoints as shipped and the richer records cost ≤ 3 % of releases per broker CPU-second: -?${n} %: (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target ≥ 1000 releases per broker CPU-second \(software custody, EC recipient, TLS keep-alive\): ${n} at concurrency (8|64): (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target ≥ 35 % of the floor: ${n} % \(${n} of ${n} per CPU-second\): (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target 2 workers within 10 % of 1 worker's releases per broker CPU-second \(concurrency 64, medians of interleaved rounds\): ${n} against ${n}, ratio ${n}: (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target 2 workers use more than one core under more load than one takes \(concurrency 64\): ${n} cores \(1 worker: ${n}\), ${n} releases/s \(1 worker: ${n}\): (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target round trip at concurrency 1 p50 ≤ 3 ms, p99 ≤ 8 ms: p50 ${n} ms, p99 ${n} ms: (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target p99 ≤ 10 × p50 at concurrency 64: p99/p50 ${n}: (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target agent exec adds ≤ 100 ms to Node's own start \(EC recipient\): -?${n} ms: (met|NOT MET)$`, 'm'));
    const s = String.raw`[+-]${n}`;
    expect(out).toMatch(new RegExp(String.raw`^controls overhead, concurrency 8: broker CPU per release ${n} µs without controls, ${n} µs with 20 limits and 10 alarms \(${s} %\), median of 1 interleaved round \[load ${n}\]$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^controls overhead, concurrency 1: latency p50 ${n} ms without controls, ${n} ms with them \(${s} ms\); broker CPU per release ${n} µs and ${n} µs \(${s} ms on the request's path\), median of 1 interleaved round \[load ${n}\]$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^suspension check per release, 100 active: in memory ${n} µs; reading them from the store \(SQLite\) would cost ${n} µs \[load ${n}\]$`, 'm'));
    for (const label of ['clients that stop when suspended, as attest-agent does', 'clients that keep hammering after the cut-off']) {
      expect(out).toMatch(new RegExp(String.raw`^flood, ${label}: the other service ${n} releases/s \(unloaded ${n}, ${s} %\), p99 ${n} ms \(unloaded ${n} ms, ${s} %\); the flood: [1-9]\d* released, then [1-9]\d* refused \(403 suspended\) \[load ${n}\]$`, 'm'));
    }
    expect(out).toMatch(new RegExp(String.raw`^target the controls add ≤ 5 % broker CPU per release \(20 limits, 10 alarms\): ${s} %: (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target the controls add ≤ 0\.2 ms to the release p50: ${s} ms: (met|NOT MET)$`, 'm'));
    expect(out).toMatch(new RegExp(String.raw`^target during a flood that is cut off, another service's rate and p99 within 20 % of unloaded: rate ${s} %, p99 ${s} %: (met|NOT MET)$`, 'm'));
  }, 300_000);
});
