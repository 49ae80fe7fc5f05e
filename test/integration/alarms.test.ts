/**
 * Alarms and suspensions through HTTP (the assembled broker, real store, custody, policy files and
 * certificates) with an injected clock, announced to a real webhook receiver on loopback whose
 * every delivery the independent `standardwebhooks` package verifies: a threshold crossed
 * suspends exactly its subject while another service carries on; M of N periods; refusal alarms
 * per node; one suspension however many alarms fire for a subject; the policy's node deny-list;
 * a restart and a policy reload keep a suspension, clearing lifts it; the metrics.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RequestListener } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config.js';
import type { Issued } from '../../src/pki.js';
import { toX5c } from '../../src/pki.js';
import { activeSuspensions } from '../../src/store/suspensions.js';
import { attester, recordsOf, webhookReceiver, writeControls, zoneNode, type Receiver } from '../helpers/controls.js';
import { APP_KEY, IMG_KEY, makeWorld, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;
let app: RequestListener;
let hook: Receiver;
let node2: Issued;
let node3: Issued;
const clock = new ManualClock(Math.floor(Date.now() / 60_000) * 60_000);

const ALARMS = `limits:
  - name: node3-hourly
    node: { sanUri: "spiffe://test/zone/z1/node-3" }
    windows: ["1/h"]
alarms:
  - name: app-flood
    measure: releases
    software: app
    period: 1m
    threshold: 3
    action: suspend
  - name: pinned-busy
    measure: releases
    software: pinned-in-image
    period: 1m
    threshold: 2
    evaluationPeriods: 3
    datapointsToAlarm: 2
    action: notify
  - name: node-denials
    measure: refusals
    codes: [rate_limited]
    global: true
    perNode: true
    period: 1m
    threshold: 2
    action: suspend
`;

beforeAll(async () => {
  hook = await webhookReceiver();
  w = await makeWorld();
  writeFileSync(path.join(w.dir, 'webhook.secret'), hook.secret);
  const config = parseConfig(
    JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' }, policy: { watch: false }, alarms: { webhook: { url: hook.url, secret: { file: 'webhook.secret' } } } }),
    { file: path.join(w.dir, 'alarms.json') },
  );
  Object.assign(w, { config });
  node2 = await zoneNode('node-2')(w);
  node3 = await zoneNode('node-3')(w);
  writeControls(w, ALARMS);
  b = await assembleBroker(w.config, { clock });
  app = b.app;
  await b.keys.create(APP_KEY, 'test');
  await b.keys.create(IMG_KEY, 'test');
});
afterAll(async () => {
  await b?.close();
  await hook?.close();
  w?.cleanup();
});

const { attest, times } = attester(() => app, () => w, clock);
const OK = { status: 200 };
const SUSPENDED = { status: 403, code: 'suspended' };
const nextMinute = () => clock.set(Math.floor(clock.now() / 60_000) * 60_000 + 60_000);
const suspended = async () => (await activeSuspensions(b.store.read)).map((s) => s.subject).sort();

describe('alarms', () => {
  it('crossing the threshold suspends exactly that subject, at once; another service carries on; the webhook body verifies', async () => {
    // The 4th release of the minute takes the count over 3: it is released, and the alarm fires in its transaction.
    expect(await times(4, 'app')).toEqual([OK, OK, OK, OK]);
    expect(await attest('app')).toEqual(SUSPENDED);
    expect(await attest('app', node2)).toEqual(SUSPENDED);
    expect(await attest('pinned')).toEqual(OK);
    expect(await suspended()).toEqual(['software:app']);

    const [alarm] = await recordsOf(b.store.read, 'alarm');
    expect(alarm).toMatchObject({ alarm: 'app-flood', measure: 'releases', action: 'suspend', subject: 'software:app', threshold: 3, counts: [4], breaching: 1, suspension: { created: true } });
    const [set] = await recordsOf(b.store.read, 'suspension.set');
    expect(set).toMatchObject({ subject: 'software:app', by: 'alarm:app-flood' });
    const [s] = await activeSuspensions(b.store.read);
    expect(s).toMatchObject({ reason: 'alarm app-flood: releases above 3 per 1 min in 1 of the last 1 period(s)', createdBy: 'alarm:app-flood', figures: { counts: [4], threshold: 3, periodSeconds: 60 } });
    expect((await recordsOf(b.store.read, 'refusal')).at(-2)).toMatchObject({ code: 'suspended', reason: 'software:app is suspended' });

    const [d] = await hook.waitFor(1);
    expect(d!.verified.type).toBe('keyanchor.alarm.fired');
    expect(d!.verified.data).toMatchObject({ alarm: 'app-flood', subject: 'software:app', action: 'suspend', counts: [4], suspension: { id: s!.id, created: true } });
    expect(d!.headers['webhook-id']).toMatch(/^msg_[0-9a-f]{32}$/);
  });

  it('M of N periods: a breach alone does not fire; the second breach within three periods does (notify: nothing is suspended)', async () => {
    nextMinute();
    expect(await times(3, 'pinned')).toEqual([OK, OK, OK]);
    expect((await recordsOf(b.store.read, 'alarm')).filter((a) => a.alarm === 'pinned-busy')).toEqual([]);
    nextMinute();
    expect(await times(1, 'pinned')).toEqual([OK]);
    nextMinute();
    expect(await times(4, 'pinned')).toEqual([OK, OK, OK, OK]);
    const fired = (await recordsOf(b.store.read, 'alarm')).filter((a) => a.alarm === 'pinned-busy');
    expect(fired).toHaveLength(1); // the 4th release of the period crosses nothing new
    expect(fired[0]).toMatchObject({ action: 'notify', subject: 'software:pinned-in-image', counts: [3, 1, 3], breaching: 2, evaluationPeriods: 3, datapointsToAlarm: 2 });
    expect(fired[0]!.suspension).toBeUndefined();
    expect(await suspended()).toEqual(['software:app']);
    const d = (await hook.waitFor(2)).find((x) => x.verified.data.alarm === 'pinned-busy');
    expect(d?.verified.data).toMatchObject({ action: 'notify', counts: [3, 1, 3] });
  });

  it('a refusal alarm per node suspends the node that is refused, not the others', async () => {
    nextMinute();
    // node-3 is limited to 1 an hour: its 2nd, 3rd and 4th attempts are refused; the 3rd refusal is over the threshold of 2.
    expect(await times(4, 'pinned', node3)).toEqual([OK, { status: 429, code: 'rate_limited', retryAfter: '3600' }, { status: 429, code: 'rate_limited', retryAfter: '3600' }, { status: 429, code: 'rate_limited', retryAfter: '3600' }]);
    expect(await attest('pinned', node3)).toEqual(SUSPENDED);
    expect(await attest('pinned', node2)).toEqual(OK);
    expect(await suspended()).toEqual(['node:spiffe://test/zone/z1/node-3', 'software:app']);
    const fired = (await recordsOf(b.store.read, 'alarm')).filter((a) => a.alarm === 'node-denials');
    expect(fired).toHaveLength(1);
    expect(fired[0]).toMatchObject({ measure: 'refusals', subject: 'node:spiffe://test/zone/z1/node-3', counts: [3], suspension: { created: true } });
  });

  it('two alarms crossing for one subject in one release make one suspension', async () => {
    await b.suspensions.clear('software:app', 'cli:test');
    expect(await suspended()).toEqual(['node:spiffe://test/zone/z1/node-3']);
    writeControls(w, `${ALARMS}  - name: twin-a
    measure: releases
    software: app
    period: 10m
    threshold: 1
    action: suspend
  - name: twin-b
    measure: releases
    software: app
    period: 5m
    threshold: 1
    action: suspend
`);
    expect((await b.reloadPolicy()).outcome).toBe('loaded');
    nextMinute();
    expect(await times(3, 'app')).toEqual([OK, OK, SUSPENDED]);
    const twins = (await recordsOf(b.store.read, 'alarm')).filter((a) => String(a.alarm).startsWith('twin-'));
    expect(twins.map((t) => [t.alarm, t.subject, (t.suspension as { created: boolean }).created])).toEqual([['twin-a', 'software:app', true], ['twin-b', 'software:app', false]]);
    expect(new Set(twins.map((t) => (t.suspension as { id: string }).id)).size).toBe(1);
    expect(await suspended()).toEqual(['node:spiffe://test/zone/z1/node-3', 'software:app']);
    const sets = (await recordsOf(b.store.read, 'suspension.set')).filter((r) => r.subject === 'software:app');
    expect(sets.map((r) => r.by)).toEqual(['alarm:app-flood', 'alarm:twin-a']); // the first, cleared above, then this one
  });

  it("the policy's node deny-list refuses that node (403 suspended) and no other", async () => {
    writeControls(w, `${ALARMS}deniedNodes:\n  - fingerprint: "${fingerprint(node2)}"\n    description: a stolen node key\n`);
    expect((await b.reloadPolicy()).outcome).toBe('loaded');
    nextMinute();
    expect(await attest('pinned', node2)).toEqual(SUSPENDED);
    expect(await attest('pinned')).toEqual(OK);
    expect((await recordsOf(b.store.read, 'refusal')).filter((r) => r.code === 'suspended').at(-1)).toMatchObject({ reason: `the node is on the policy's deny-list (node:sha256:${fingerprint(node2)})` });
  });

  it('a restart and a policy reload keep the suspensions; clearing lifts them', async () => {
    await b.close();
    b = await assembleBroker(w.config, { clock });
    app = b.app;
    writeControls(w, '# no limits, no alarms\n');
    expect((await b.reloadPolicy()).outcome).toBe('loaded');
    expect(await attest('app', node3)).toEqual(SUSPENDED);
    expect(await suspended()).toEqual(['node:spiffe://test/zone/z1/node-3', 'software:app']);
    await b.suspensions.clear('software:app', 'cli:test');
    expect(await attest('app', node3)).toEqual(SUSPENDED); // the node is still suspended
    await b.suspensions.clear('node:spiffe://test/zone/z1/node-3', 'cli:test');
    expect(await attest('app', node3)).toEqual(OK);
    expect((await recordsOf(b.store.read, 'suspension.cleared')).map((r) => [r.subject, r.by])).toEqual([
      ['software:app', 'cli:test'], ['software:app', 'cli:test'], ['node:spiffe://test/zone/z1/node-3', 'cli:test'],
    ]);
  });

  it('/metrics: alarms, suspensions, webhook deliveries and the audit trail, with no node, digest or request id in any label', async () => {
    await hook.waitFor(4);
    const m = (await request(app).get('/metrics').expect(200)).text;
    expect(m).toMatch(/^# TYPE keyanchor_alarms_fired_total counter$/m);
    expect(m).toMatch(/^keyanchor_suspensions_active\{kind="node"\} 0$/m);
    expect(m).toMatch(/^keyanchor_webhook_events_total\{target="alarms",outcome="delivered"\} \d+$/m);
    expect(m).toMatch(/^keyanchor_releases_total\{zone="z1"\} 1$/m); // this broker (restarted) released once
    expect(m).toMatch(/^keyanchor_policy_reloads_total\{outcome="loaded"\} 2$/m);
    expect(m).toMatch(/^# TYPE keyanchor_audit_checkpoints_total counter$/m); // the audit trail's own counts
    expect(m).toMatch(/^keyanchor_audit_uncovered_records \d+$/m);
    expect(m).toMatch(/^keyanchor_audit_index_failures_total 0$/m);
    const labels = [...m.matchAll(/\{([^}]*)\}/g)].map((x) => x[1]!).join('\n');
    expect(labels).not.toMatch(/spiffe:|node-\d|[0-9a-f]{32}/);
  });
});

function fingerprint(node: Issued): string {
  return createHash('sha256').update(Buffer.from(toX5c(node)[0]!, 'base64')).digest('hex');
}
