/**
 * The bench's instruments: the CPU profile summariser's categories (on a small hand-made profile
 * whose every sample is known) and the /proc reader (against this process's own CPU clock).
 */
import { describe, expect, it } from 'vitest';
import { summarise, NATIVE, type CpuProfile } from '../../bench/profile.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { parseStatCpuMs, processTree, readProcCpu, clockTickMs } from '../../bench/procStat.js';

const dist = (f: string) => `file:///checkout/dist/src/${f}.js`;
/** [id, parent, functionName, url] */
const NODES: Array<[number, number | undefined, string, string]> = [
  [1, undefined, '(root)', ''],
  [2, 1, 'processTicksAndRejections', 'node:internal/process/task_queues'],
  [3, 2, 'attestAndRelease', dist('release')],
  [4, 3, 'verifyEvidenceSignature', dist('attestation/evidence')],
  [5, 4, 'verifyOneShot', 'node:internal/crypto/sig'],
  [6, 5, 'run', ''],
  [7, 3, 'releaseTo', dist('custody/software')],
  [8, 7, 'b64u', dist('jose/base64url')],
  [9, 1, '(garbage collector)', ''],
  [10, 1, '(idle)', ''],
  [11, 1, '(program)', ''],
  [12, 2, 'handle', 'file:///checkout/node_modules/router/index.js'],
  [13, 12, 'parse', ''],
  [14, 12, 'writevGeneric', 'node:internal/stream_base_commons'],
  [15, 14, 'writev', ''],
  [16, 3, 'mystery', 'node:internal/whatever'],
  [17, 2, 'write', 'file:///checkout/node_modules/pino/lib/proto.js'],
  [18, 3, 'consume', dist('attestation/nonces')],
  [19, 3, 'record', dist('audit/fileAuditLog')],
];

function profile(samples: Array<[number, number]>): CpuProfile {
  const nodes = NODES.map(([id, , functionName, url]) => ({ id, callFrame: { functionName, url }, children: NODES.filter(([, p]) => p === id).map(([c]) => c) }));
  // Sample i lasts timeDeltas[i + 1] µs; a trailing sample closes the last one.
  const ids = [...samples.map(([id]) => id), 1];
  const deltas = [0, ...samples.map(([, us]) => us)];
  return { nodes, samples: ids, timeDeltas: deltas, startTime: 0, endTime: 0 };
}

describe('the CPU profile summary', () => {
  it('puts each sample in the category of the first rule that matches from the leaf up', () => {
    const s = summarise(profile([[6, 3000], [8, 2000], [9, 1000], [10, 5000], [11, 1500], [13, 500], [15, 700], [16, 300], [17, 200], [18, 100], [19, 400], [3, 50]]));
    expect(Object.fromEntries(s.categories)).toEqual({
      'evidence parse + signature': 3, // native verify → the innermost keyanchor file decides
      'JWE / custody release': 2, // base64url is skipped: its caller decides
      'GC (main thread)': 1,
      [NATIVE]: 1.5,
      'JSON / zod': 0.5, // JSON.parse inside express still counts as JSON
      'TLS / socket I/O (JS side)': 0.7,
      'release pipeline (its own code)': 0.35, // node internals without a rule climb to release.js
      'logging (pino)': 0.2,
      'state store (the release transaction)': 0.1,
      'audit append': 0.4,
    });
    expect(s.idleMs).toBe(5);
    expect(s.busyMs).toBeCloseTo(9.75, 6);
    expect(s.top[0]).toEqual(['run', 'evidence parse + signature', 3]);
  });
  it('calls a stack that no rule knows "other"', () => {
    const s = summarise(profile([[2, 1000]]));
    expect(s.categories).toEqual([['other', 1]]);
  });
});

describe('CPU time from /proc', () => {
  it('reads utime + stime past a command name with spaces and parentheses', () => {
    const line = '4242 (node (bench) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 11 0 12345 0 0';
    expect(parseStatCpuMs(line, 10)).toBe(3200);
  });
  it("agrees with the process's own CPU clock to within a few ticks", () => {
    const tick = clockTickMs();
    const before = readProcCpu(process.pid, tick);
    const own0 = process.cpuUsage();
    let x = 0;
    while ((process.cpuUsage(own0).user + process.cpuUsage(own0).system) / 1000 < 300) x += Math.sqrt(x + 1);
    const own = process.cpuUsage(own0);
    const after = readProcCpu(process.pid, tick);
    const procMs = after.processMs - before.processMs;
    expect(x).toBeGreaterThan(0);
    expect(procMs).toBeGreaterThanOrEqual((own.user + own.system) / 1000 - 3 * tick);
    expect(after.mainMs - before.mainMs).toBeGreaterThanOrEqual(250);
  });
  it('counts the descendants of a process too', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      await once(child, 'spawn');
      expect(processTree(process.pid)).toContain(child.pid);
      expect(readProcCpu(process.pid, clockTickMs()).processes).toBeGreaterThanOrEqual(2);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
