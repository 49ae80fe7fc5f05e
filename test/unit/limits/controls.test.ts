/**
 * The pure parts of the controls: rates and durations as written in policies, subjects as
 * operators write them, which windows and alarm counts a request gets from the policy's index,
 * and the in-memory suspension set kept current from the change feed.
 */
import { describe, expect, it } from 'vitest';
import { controlsOf, limitOfWindow } from '../../../src/limits/controls.js';
import { normalizeSerial } from '../../../src/limits/nodes.js';
import { parseDuration, parseRate } from '../../../src/limits/rates.js';
import { parseSubject } from '../../../src/limits/subjects.js';
import { SuspensionSet } from '../../../src/limits/suspensionSet.js';
import type { NodeIdentity } from '../../../src/policy/evaluate.js';
import type { Alarm, Policy, RateLimit } from '../../../src/policy/types.js';
import type { ChangeListener } from '../../../src/store/changes.js';
import type { Suspension } from '../../../src/store/suspensions.js';

const node = (san: string, fp = 'aa'.repeat(32), serial = '1f'): NodeIdentity => ({ nodeCA: 'ca', subject: 'CN=n', sanUris: [san], fingerprint: fp, serial });
const n1 = node('spiffe://t/z/n1');
const n2 = node('spiffe://t/z/n2', 'bb'.repeat(32), '2e');
const req = (nd: NodeIdentity, o: { zones?: string[]; software?: string[]; keys?: string[] } = {}) => ({ node: nd, zones: o.zones ?? ['z1'], software: o.software ?? ['api'], keys: o.keys ?? ['t/db'] });

const limit = (name: string, subject: RateLimit['subject'], windows: Array<[number, number, string]>, perNode = false): RateLimit => ({ name, subject, perNode, windows: windows.map(([l, p, text]) => ({ limit: l, periodMs: p, text })) });
const alarm = (name: string, subject: Alarm['subject'], o: Partial<Alarm> = {}): Alarm => ({ name, measure: 'releases', subject, perNode: false, periodMs: 60_000, threshold: 1, evaluationPeriods: 1, datapointsToAlarm: 1, action: 'suspend', ...o });
const policy = (p: Partial<Policy>): Policy => ({ nodeCAs: new Map(), zones: [], publishers: new Map(), software: [], teams: [], limits: [], alarms: [], deniedNodes: [], sources: [], ...p });

describe('rates and durations', () => {
  it('N/PERIOD with units s, sec, m, min, h, hour, d, day and an optional count', () => {
    expect(['5/s', '5/sec', '100/10m', '7/min', '1/h', '2/hour', '2000/day', '30/2d'].map((t) => { const r = parseRate(t)!; return [r.limit, r.periodMs]; })).toEqual([
      [5, 1000], [5, 1000], [100, 600_000], [7, 60_000], [1, 3_600_000], [2, 3_600_000], [2000, 86_400_000], [30, 172_800_000],
    ]);
    for (const bad of ['0/s', '5/0s', '5 /s', '5/ms', '5/', '/s', '5/w', '-1/s', '1.5/s', '5/s ']) expect(parseRate(bad), bad).toBeUndefined();
    expect(['10s', '1m', '1h', '1d', '90sec'].map(parseDuration)).toEqual([10_000, 60_000, 3_600_000, 86_400_000, 90_000]);
    for (const bad of ['0s', 'm', '1 m', '1y']) expect(parseDuration(bad), bad).toBeUndefined();
  });
});

describe('subjects', () => {
  it('canonical forms, from the ways operators write them', () => {
    const ok = (t: string) => (parseSubject(t) as { subject: string }).subject;
    expect(ok('software:payments-api')).toBe('software:payments-api');
    expect(ok('zone:pci')).toBe('zone:pci');
    expect(ok('key:payments/db')).toBe('key:payments/db');
    expect(ok('node:spiffe://p.example/zone/pci/node-7')).toBe('node:spiffe://p.example/zone/pci/node-7');
    expect(ok(`node:sha256:${'AB'.repeat(32)}`)).toBe(`node:sha256:${'ab'.repeat(32)}`);
    expect(ok('node:serial:00:0A:1B')).toBe('node:serial:a1b');
    expect(normalizeSerial('000')).toBe('0');
  });
  it('anything else is a problem', () => {
    for (const bad of ['software', 'software:', 'software:Api', 'zone:a b', 'key:db', 'key:a/b@2', 'node:', 'node:no scheme', 'node:sha256:abc', 'node:serial:xyz', 'global', 'team:x', 'node:spiffe://a/\nb', `node:spiffe://${'a'.repeat(2100)}`]) {
      expect(parseSubject(bad), JSON.stringify(bad)).toHaveProperty('problem');
    }
  });
});

describe('the controls of a policy', () => {
  const p = policy({
    limits: [
      limit('g', { kind: 'global' }, [[100, 1000, '100/s']]),
      limit('z', { kind: 'zone', name: 'z1' }, [[5, 1000, '5/s'], [50, 60_000, '50/min']]),
      limit('s', { kind: 'software', name: 'api' }, [[3, 1000, '3/s']]),
      limit('other', { kind: 'software', name: 'web' }, [[3, 1000, '3/s']]),
      limit('k', { kind: 'key', name: 't/db' }, [[2, 1000, '2/s']]),
      limit('each', { kind: 'zone', name: 'z1' }, [[9, 60_000, '9/min']], true),
      limit('one', { kind: 'node', node: { fingerprint: 'bb'.repeat(32) } }, [[1, 60_000, '1/min']]),
    ],
    alarms: [
      alarm('flood', { kind: 'software', name: 'api' }),
      alarm('denials', { kind: 'global' }, { measure: 'refusals', codes: ['rate_limited'], perNode: true, periodMs: 30_000, action: 'notify' }),
      alarm('serial', { kind: 'node', node: { serial: '2e', nodeCA: 'ca' } }),
    ],
    deniedNodes: [{ sanUri: 'spiffe://t/z/n2' }, { serial: '1f', nodeCA: 'other-ca' }],
  });
  const c = controlsOf(p);

  it('a request gets every window of every limit that covers it, per node where asked', () => {
    expect(c.windowsFor(req(n1)).map((w) => w.key).sort()).toEqual(['L:each:9/min@spiffe://t/z/n1', 'L:g:100/s', 'L:k:2/s', 'L:s:3/s', 'L:z:5/s', 'L:z:50/min']);
    expect(c.windowsFor(req(n2, { zones: [], software: ['web'], keys: [] })).map((w) => w.key).sort()).toEqual(['L:g:100/s', 'L:one:1/min', 'L:other:3/s']);
    expect(limitOfWindow('L:each:9/min@spiffe://t/z/n1')).toBe('each');
    expect(c.counts).toEqual({ limits: 7, alarms: 3, deniedNodes: 2 });
  });

  it('alarm counts: by measure, code, period bucket and node', () => {
    const at = 1_000_000_123;
    expect(c.alarmCounts('releases', req(n1), at).map((a) => [a.counterKey, a.bucket, a.subject])).toEqual([['A:flood', 999_960_000, 'software:api']]);
    expect(c.alarmCounts('releases', req(n2), at).map((a) => [a.counterKey, a.subject])).toEqual([['A:flood', 'software:api'], ['A:serial', 'node:serial:2e']]);
    expect(c.alarmCounts('refusals', req(n1), at, 'rate_limited').map((a) => [a.counterKey, a.bucket, a.subject])).toEqual([['A:denials@spiffe://t/z/n1', 999_990_000, 'node:spiffe://t/z/n1']]);
    expect(c.alarmCounts('refusals', req(n1), at, 'key_not_granted')).toEqual([]);
  });

  it('the deny-list: by SAN URI, and by serial only under its node CA', () => {
    expect(c.denied(n2)).toEqual({ sanUri: 'spiffe://t/z/n2' });
    expect(c.denied(n1)).toBeUndefined(); // serial 1f is denied under other-ca only
    expect(c.denied({ ...n1, nodeCA: 'other-ca' })).toEqual({ serial: '1f', nodeCA: 'other-ca' });
  });

  it('a policy without controls gives nothing, cheaply', () => {
    const none = controlsOf(policy({}));
    expect([none.windowsFor(req(n1)), none.alarmCounts('releases', req(n1), 0), none.denied(n1)]).toEqual([[], [], undefined]);
  });
});

describe('the in-memory suspension set', () => {
  function fakeStore(rows: Suspension[]) {
    let listener: ChangeListener = () => undefined;
    let reads = 0;
    let gate: Promise<void> | undefined;
    const store = {
      read: { dialect: { name: 'sqlite' }, all: async () => { reads++; await gate; return rows.filter((r) => r.clearedAt === undefined).map((r) => ({ id: r.id, subject: r.subject, reason: r.reason, figures: '{}', created_by: r.createdBy, created_at: r.createdAt, cleared_by: null, cleared_at: null })); }, run: async () => 0 },
      changes: { watch: (l: ChangeListener) => ((listener = l), () => undefined) },
    };
    return { store: store as never, rows, changed: () => listener('suspensions'), reads: () => reads, hold: (p: Promise<void> | undefined) => (gate = p) };
  }
  const s = (subject: string): Suspension => ({ id: subject, subject, reason: 'r', figures: {}, createdBy: 't', createdAt: 1 });

  it('finds a request\'s node, zone, software or key; follows the change feed', async () => {
    const f = fakeStore([s('zone:z9')]);
    const set = new SuspensionSet(f.store, () => undefined);
    await set.start();
    expect(set.suspendedOf(req(n1))).toBeUndefined();
    f.rows.push(s('key:t/db'));
    f.changed();
    await set.refresh();
    expect(set.suspendedOf(req(n1))).toBe('key:t/db');
    f.rows.push(s(`node:sha256:${'aa'.repeat(32)}`));
    await set.refresh();
    expect(set.suspendedOf(req(n1))).toBe(`node:sha256:${'aa'.repeat(32)}`);
    expect(set.suspendedOf(req(n2, { keys: [] }))).toBeUndefined();
    expect(Object.fromEntries(set.countsByKind())).toEqual({ zone: 1, key: 1, node: 1 });
  });

  it('a change this process made while a read was running is not undone by that read', async () => {
    const f = fakeStore([]);
    const set = new SuspensionSet(f.store, () => undefined);
    await set.start();
    let release!: () => void;
    f.hold(new Promise<void>((r) => (release = r)));
    const reading = set.refresh(); // reads the store before the suspension below commits
    set.changed('software:api', true);
    release();
    await reading;
    expect(set.suspendedOf(req(n1))).toBe('software:api');
  });

  it('reads that arrive during a read coalesce into one more read', async () => {
    const f = fakeStore([]);
    const set = new SuspensionSet(f.store, () => undefined);
    await set.start();
    const before = f.reads();
    await Promise.all([set.refresh(), set.refresh(), set.refresh(), set.refresh()]);
    expect(f.reads() - before).toBeLessThanOrEqual(2);
  });
});
