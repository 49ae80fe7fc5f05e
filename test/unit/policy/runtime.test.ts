/**
 * The policy runtime: first load, reloads that succeed or are refused (the policy in force stays),
 * expiry while running with an injected clock, coalesced reloads, status and counters. Loads run
 * through the real worker thread (the compiled copy test/globalSetup.ts builds), except where a
 * test says otherwise.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { BrokerError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';
import { PolicyRefusal } from '../../../src/policy/bundle/refusals.js';
import { closeHighWaters, SqliteHighWater } from '../../helpers/highWater.js';
import { loadPolicy } from '../../../src/policy/loadPolicy.js';
import { PolicyRuntime, PolicyStartError, type RuntimeOptions } from '../../../src/policy/runtime.js';
import { signDir, SMALL_POLICY, testKey, writePolicy, type TestKey } from '../../helpers/policyBundles.js';

let root: string;
let n = 0;
let k1: TestKey;
const T0 = Date.parse('2030-06-01T00:00:00Z');
const DAY = 86_400_000;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'keyanchor-runtime-'));
  k1 = testKey();
});
afterAll(async () => {
  await closeHighWaters();
  rmSync(root, { recursive: true, force: true });
});

function setup(o: { signed?: boolean; inProcess?: boolean } = {}) {
  const base = path.join(root, `r${++n}`);
  const dir = path.join(base, 'policy');
  writePolicy(dir);
  const rootKey = path.join(base, 'root.pub');
  writeFileSync(rootKey, k1.publicPem);
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
  const clock = new ManualClock(T0);
  const opts: RuntimeOptions = {
    dir,
    vars: {},
    ...(o.signed ? { root: { keys: [rootKey], threshold: 1 } } : {}),
    requireSigned: false,
    highWater: new SqliteHighWater(base),
    clock,
    log,
    ...(o.inProcess ? { load: async (r) => loadPolicy(r) } : {}),
  };
  const sign = (version: number, expiresInDays = 30) => signDir(dir, { version, keys: [k1], expires: clock.now() + expiresInDays * DAY });
  return { dir, base, clock, opts, lines, sign };
}

describe('starting', () => {
  it('an unsigned policy runs, and says so at start, in status and in its metrics', async () => {
    const s = setup();
    const rt = await PolicyRuntime.start(s.opts);
    expect(rt.current()).toMatchObject({ signed: false, version: null, expires: null });
    expect(rt.current().manifestSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(s.lines.find((l) => l.level === 40)?.msg).toMatch(/^the policy is NOT signed: no trust root is pinned/);
    expect(rt.status()).toMatchObject({ signed: false, version: null, warning: 'unsigned policy: no trust root is pinned (policy.root)', root: null });
    expect(rt.metrics().find((m) => m.name === 'keyanchor_policy_signed')?.value).toBe(0);
  });

  it('a signed bundle runs with its version, expiry and manifest digest', async () => {
    const s = setup({ signed: true });
    s.sign(4);
    const rt = await PolicyRuntime.start(s.opts);
    expect(rt.current()).toMatchObject({ signed: true, version: 4, expires: T0 + 30 * DAY });
    expect(rt.status()).toMatchObject({ signed: true, version: 4, expires: '2030-07-01T00:00:00.000Z', expired: false, root: { id: expect.stringMatching(/^[0-9a-f]{64}$/), threshold: 1, keys: 1 } });
    expect(rt.metrics().filter((m) => m.type === 'gauge').map((m) => [m.name, m.value])).toEqual([
      ['keyanchor_policy_signed', 1],
      ['keyanchor_policy_version', 4],
      ['keyanchor_policy_expires_in_seconds', 30 * 86_400],
    ]);
  });

  it('a refused first load stops the start with the refusal and its code', async () => {
    const s = setup({ signed: true });
    await expect(PolicyRuntime.start(s.opts)).rejects.toThrow(PolicyRefusal);
    await expect(PolicyRuntime.start(s.opts)).rejects.toMatchObject({ code: 'policy_unsigned' });
  });

  it('requireSignedPolicy without a root, or an unreadable root key, does not start', async () => {
    const s = setup();
    await expect(PolicyRuntime.start({ ...s.opts, requireSigned: true })).rejects.toThrow(new PolicyStartError('requireSignedPolicy is set but no trust root is pinned (policy.root)'));
    await expect(PolicyRuntime.start({ ...s.opts, root: { keys: [path.join(s.base, 'nope.pub')], threshold: 1 } })).rejects.toThrow(
      new PolicyStartError(`policy.root: cannot read ${path.join(s.base, 'nope.pub')} (ENOENT)`),
    );
  });
});

describe('reloading', () => {
  it('good → bad → good: a refused reload leaves the policy in force, and is counted by code', async () => {
    const s = setup({ signed: true });
    s.sign(1);
    const rt = await PolicyRuntime.start(s.opts);
    writeFileSync(path.join(s.dir, 'policy.yaml'), SMALL_POLICY.replace('team/a', 'team/b'));
    const bad = await rt.reload('sighup');
    expect(bad).toMatchObject({ outcome: 'refused', code: 'policy_file_altered' });
    expect(rt.current().version).toBe(1);
    expect(rt.current().policy.software[0]!.grants[0]!.keys).toEqual([{ name: 'team/a' }]);
    expect(rt.status().lastReload).toMatchObject({ trigger: 'sighup', outcome: 'refused', code: 'policy_file_altered', problems: [expect.stringContaining('policy.yaml differs from the content signed')] });
    s.sign(2);
    expect(await rt.reload('api')).toMatchObject({ outcome: 'loaded', version: 2 });
    expect(rt.current().policy.software[0]!.grants[0]!.keys).toEqual([{ name: 'team/b' }]);
    expect(await rt.reload('api')).toMatchObject({ outcome: 'unchanged', version: 2 });
    expect(rt.metrics().filter((m) => m.type === 'counter').map((m) => [m.name, m.labels, m.value])).toEqual([
      ['keyanchor_policy_reloads_total', { outcome: 'loaded' }, 2],
      ['keyanchor_policy_reloads_total', { outcome: 'unchanged' }, 1],
      ['keyanchor_policy_reloads_total', { outcome: 'refused' }, 1],
      ['keyanchor_policy_refusals_total', { code: 'policy_file_altered' }, 1],
    ]);
  });

  it('a snapshot taken before a reload keeps its policy: one version per request', async () => {
    const s = setup({ signed: true });
    s.sign(1);
    const rt = await PolicyRuntime.start(s.opts);
    const inFlight = rt.current();
    writeFileSync(path.join(s.dir, 'policy.yaml'), SMALL_POLICY.replace('team/a', 'team/b'));
    s.sign(2);
    await rt.reload('watch');
    expect(inFlight.version).toBe(1);
    expect(inFlight.policy.software[0]!.grants[0]!.keys).toEqual([{ name: 'team/a' }]);
    expect(rt.current().version).toBe(2);
  });

  it('reload calls made while one waits share it; one made during a load runs after it', async () => {
    const s = setup({ inProcess: true });
    let loads = 0;
    const rt = await PolicyRuntime.start({ ...s.opts, load: async (r) => (loads++, loadPolicy(r)) });
    const [a, b, c] = [rt.reload('sighup'), rt.reload('watch'), rt.reload('api')];
    expect(await a).toEqual(await b);
    expect(await c).toEqual(await a);
    expect(loads).toBe(2);
  });

  it('a hostile directory on reload (a FIFO named *.yaml) is refused by the worker without blocking', async () => {
    const s = setup();
    const rt = await PolicyRuntime.start(s.opts);
    execFileSync('mkfifo', [path.join(s.dir, 'pipe.yaml')]);
    const r = await rt.reload('sighup');
    expect(r).toEqual({ outcome: 'refused', code: 'policy_invalid', problems: [expect.objectContaining({ path: '(file)', message: 'not a regular file (a FIFO)' })] });
    expect(rt.current().policy.zones.map((z) => z.name)).toEqual(['z1']);
  });

  it('a worker that runs out of memory or time is a refused load', async () => {
    const s = setup();
    const { loadOffThread } = await import('../../../src/policy/offThread.js');
    writeFileSync(path.join(s.dir, 'big.yaml'), `software:\n${Array.from({ length: 4000 }, (_, i) => `  - name: s${i}\n    binary: { digests: ["${'ab'.repeat(32)}"] }\n    grants: [{ keys: [team/a], zones: [z1] }]\n`).join('')}`);
    const slow = await loadOffThread({ dir: s.dir, vars: {}, now: T0 }, { timeoutMs: 1, maxOldGenerationSizeMb: 768 });
    expect(slow).toEqual({ ok: false, code: 'policy_invalid', problems: [expect.objectContaining({ message: 'loading the policy took longer than 0.001 s' })] });
    const big = await loadOffThread({ dir: s.dir, vars: {}, now: T0 }, { timeoutMs: 60_000, maxOldGenerationSizeMb: 4 });
    expect(big).toEqual({ ok: false, code: 'policy_invalid', problems: [expect.objectContaining({ message: 'loading the policy needed more than 4 MB' })] });
  });
});

describe('expiry while running (freeze)', () => {
  it('releases stop with policy_expired when the bundle expires, and resume with a fresh bundle', async () => {
    const s = setup({ signed: true });
    s.sign(1, 1);
    const rt = await PolicyRuntime.start(s.opts);
    s.clock.advance(DAY - 1);
    expect(rt.current().version).toBe(1);
    s.clock.advance(1);
    const e = (() => {
      try {
        rt.current();
      } catch (err) {
        return err as BrokerError;
      }
    })();
    expect({ code: e?.code, status: e?.status, reason: e?.reason }).toEqual({ code: 'policy_expired', status: 503, reason: 'policy bundle version 1 expired at 2030-06-02T00:00:00.000Z' });
    expect(rt.status()).toMatchObject({ expired: true, version: 1 });
    expect(rt.latest().version).toBe(1);
    expect(s.lines.filter((l) => l.msg === 'the policy bundle has expired: no key is released until a fresh bundle is loaded')).toHaveLength(1);
    // The same, expired bundle cannot come back; a fresh one can.
    expect(await rt.reload('sighup')).toMatchObject({ outcome: 'refused', code: 'policy_expired' });
    s.sign(2, 7);
    expect(await rt.reload('sighup')).toMatchObject({ outcome: 'loaded', version: 2 });
    expect(rt.current().version).toBe(2);
  });
});

describe('rollback across restarts', () => {
  it('a restarted runtime refuses to start on a bundle older than the mark', async () => {
    const s = setup({ signed: true });
    s.sign(1);
    const v1 = (await import('node:fs')).readFileSync(path.join(s.dir, 'policy.dsse'));
    const rt = await PolicyRuntime.start(s.opts);
    s.sign(2);
    await rt.reload('sighup');
    writeFileSync(path.join(s.dir, 'policy.dsse'), v1);
    expect(await rt.reload('sighup')).toMatchObject({ outcome: 'refused', code: 'policy_rollback' });
    await expect(PolicyRuntime.start({ ...s.opts, highWater: new SqliteHighWater(s.base) })).rejects.toMatchObject({ code: 'policy_rollback' });
  });
});
