/**
 * Rate limits from the policy through HTTP (the assembled broker, real store, custody, policy
 * files and certificates) with an injected clock: windows at their edges with the exact
 * Retry-After, several windows on one subject, the most restrictive of zone, software, key, node
 * and global limits deciding, no window charged when another refuses, refusals recorded and
 * counted. Nothing sleeps: the clock moves.
 */
import type { RequestListener } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { ManualClock } from '../../src/clock.js';
import type { Issued } from '../../src/pki.js';
import { attester, recordsOf, writeControls, zoneNode } from '../helpers/controls.js';
import { APP_KEY, IMG_KEY, makeWorld, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;
let app: RequestListener;
let node2: Issued;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  w = await makeWorld({ configExtra: { policy: { watch: false } } });
  node2 = await zoneNode('node-2')(w);
  b = await assembleBroker(w.config, { clock });
  app = b.app;
  await b.keys.create(APP_KEY, 'test');
  await b.keys.create(IMG_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  w?.cleanup();
});

/** Replaces the controls file and reloads; fails the test if the policy is refused. */
async function controls(text: string): Promise<void> {
  writeControls(w, text);
  expect((await b.reloadPolicy()).outcome).toBe('loaded');
}

const { attest, times } = attester(() => app, () => w, clock);
const OK = { status: 200 };
const limited = (retryAfter: number) => ({ status: 429, code: 'rate_limited', retryAfter: String(retryAfter) });


/** The limit named in the last rate_limited refusal record. */
async function lastLimit(): Promise<unknown> {
  return (await recordsOf(b.store.read, 'refusal')).filter((r) => r.code === 'rate_limited').at(-1)?.limit;
}

describe('rate limits in the policy', () => {
  it('a window at its edges: the burst at once, then one per period/limit, with the exact Retry-After', async () => {
    await controls('limits:\n  - name: edges\n    software: app\n    windows: ["3/min"]\n');
    const t = clock.now();
    expect(await times(3)).toEqual([OK, OK, OK]);
    // The next one frees up 20 s (60 s / 3) after the burst.
    expect(await attest()).toEqual(limited(20));
    clock.set(t + 12_500);
    expect(await attest()).toEqual(limited(8)); // 7.5 s left: rounded up
    clock.set(t + 19_999);
    expect(await attest()).toEqual(limited(1)); // 1 ms left: still a whole second
    clock.set(t + 20_000);
    expect(await attest()).toEqual(OK);
    expect(await attest()).toEqual(limited(20));
    // A window idle for a whole period is full again, and never more than its burst.
    clock.set(t + 20_000 + 60_000);
    expect(await times(4)).toEqual([OK, OK, OK, limited(20)]);
    expect(await lastLimit()).toBe('edges');
  });

  it('every unit: s, min, h and day windows each hold at their own edge', async () => {
    const cases: Array<[string, number]> = [['2/s', 1000], ['2/10s', 10_000], ['2/h', 3_600_000], ['2/day', 86_400_000]];
    for (const [rate, periodMs] of cases) {
      await controls(`limits:\n  - name: unit-${cases.findIndex((c) => c[0] === rate)}\n    global: true\n    windows: ["${rate}"]\n`);
      const t = clock.now();
      expect(await times(3), rate).toEqual([OK, OK, limited(Math.ceil(periodMs / 2 / 1000))]);
      clock.set(t + periodMs / 2 - 1);
      expect((await attest()).status, `${rate} 1 ms before`).toBe(429);
      clock.set(t + periodMs / 2);
      expect(await attest(), `${rate} at the edge`).toEqual(OK);
      clock.set(t + 2 * periodMs);
    }
  });

  it('several windows on one subject: each holds, and the one that frees up last gives Retry-After', async () => {
    await controls('limits:\n  - name: two-windows\n    key: team/app-key\n    windows: ["5/s", "7/min"]\n');
    const t = clock.now();
    expect(await times(6)).toEqual([OK, OK, OK, OK, OK, limited(1)]);
    clock.set(t + 1000);
    // 2 more fit the minute window (7), then it refuses: TAT = t + 60 s, next at t + 68.57 s − 60 s.
    expect(await times(3)).toEqual([OK, OK, limited(8)]);
    expect(await lastLimit()).toBe('two-windows');
  });

  it('the most restrictive of the software, node and zone limits decides; per node, each node has its own window', async () => {
    await controls(`limits:
  - name: zone-z1
    zone: z1
    windows: ["6/min"]
  - name: software-app
    software: app
    windows: ["3/min"]
  - name: each-node
    global: true
    perNode: true
    windows: ["4/min"]
`);
    expect(await times(4, 'app')).toEqual([OK, OK, OK, limited(20)]);
    expect(await lastLimit()).toBe('software-app');
    // Another service on the same node: its software is not limited, the node's window is (3 + 1 = 4).
    expect(await times(2, 'pinned')).toEqual([OK, limited(15)]);
    expect(await lastLimit()).toBe('each-node');
    // A second node has a window of its own; the zone has seen 4 of its 6.
    expect(await times(3, 'pinned', node2)).toEqual([OK, OK, limited(10)]);
    expect(await lastLimit()).toBe('zone-z1');
  });

  it('the most restrictive of the key and global limits decides', async () => {
    await controls('limits:\n  - name: key-img\n    key: team/img-key\n    windows: ["2/min"]\n  - name: everything\n    global: true\n    windows: ["4/min"]\n');
    expect(await times(3, 'pinned')).toEqual([OK, OK, limited(30)]);
    expect(await lastLimit()).toBe('key-img');
    expect(await times(3, 'app')).toEqual([OK, OK, limited(15)]);
    expect(await lastLimit()).toBe('everything');
  });

  it('no window is charged when another refuses', async () => {
    await controls('limits:\n  - name: tight\n    software: app\n    windows: ["2/h"]\n  - name: shared\n    global: true\n    windows: ["5/h"]\n');
    expect(await times(2, 'app')).toEqual([OK, OK]);
    for (const r of await times(10, 'app')) expect(r).toEqual(limited(1800));
    // Had the ten refused attempts been charged to "shared", these would be refused.
    expect(await times(4, 'pinned')).toEqual([OK, OK, OK, limited(720)]);
    expect(await lastLimit()).toBe('shared');
  });

  it('a refusal is recorded with its limit, counted per code, and uses up the nonce; /metrics counts it by limit', async () => {
    await controls('limits:\n  - name: once\n    software: app\n    windows: ["1/day"]\n');
    expect(await attest()).toEqual(OK);
    const before = (await recordsOf(b.store.read, 'refusal')).length;
    expect(await attest()).toEqual(limited(86_400));
    const refusals = await recordsOf(b.store.read, 'refusal');
    expect(refusals).toHaveLength(before + 1);
    expect(refusals.at(-1)).toMatchObject({ code: 'rate_limited', limit: 'once', software: ['app'], zones: ['z1'] });
    const counted = await b.store.read.all("SELECT SUM(count) AS n FROM counters WHERE counter_key = 'refusals:rate_limited'");
    expect(Number(counted[0]!.n)).toBeGreaterThan(0);
    const m = (await request(app).get('/metrics').expect(200)).text;
    expect(m).toMatch(/^keyanchor_rate_limited_total\{limit="once"\} 1$/m);
    expect(m).toMatch(/^keyanchor_refusals_total\{code="rate_limited",zone="z1"\} \d+$/m);
  });

  it('a policy without limits charges nothing', async () => {
    await controls('# no limits\n');
    expect(await times(5)).toEqual([OK, OK, OK, OK, OK]);
  });
});
