/**
 * The crypto-anchor controls end to end, with real processes:
 * - the agent CLI against a broker whose clock the test moves (in this process, as in
 *   clock.e2e.test.ts): a rate limit gives exit 50 with the broker's Retry-After, the refusals
 *   trip an alarm that suspends the service (exit 51), the webhook receiver on loopback gets a body
 *   the `standardwebhooks` package verifies, a restart keeps the suspension, `keyanchor suspend
 *   clear` (a CLI process) lifts it, and the window frees up when the clock reaches its edge;
 * - a bounded load test on a `keyanchor serve` process: one service floods and is cut off by its
 *   alarm while every request of a second service succeeds (the timing comparison is in
 *   `npm run bench`).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../attest-agent/src/exitCodes.js';
import { openKeys, startBroker, type Broker } from '../../src/broker.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { loadConfig, type Config } from '../../src/config.js';
import { webhookReceiver, writeControls, type Receiver } from '../helpers/controls.js';
import { runAgent, runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { postJson } from '../helpers/replicas.js';
import { APP_KEY, IMG_KEY, makeEvidence, makeWorld, type World } from '../helpers/world.js';

describe('the agent against the controls, with the broker clock in the test\'s hands', () => {
  let w: World;
  let config: Config;
  let configFile: string;
  let broker: Broker;
  let hook: Receiver;
  const clock = new ManualClock(Date.now());

  beforeAll(async () => {
    hook = await webhookReceiver();
    w = await makeWorld();
    writeFileSync(path.join(w.dir, 'node.pem'), w.node.certPem);
    writeFileSync(path.join(w.dir, 'node.key'), w.node.keyPem, { mode: 0o600 });
    writeFileSync(`${w.app.path}.sig`, w.app.sig);
    writeFileSync(path.join(w.dir, 'hook.secret'), hook.secret);
    writeControls(w, `limits:
  - name: app-hourly
    software: app
    windows: ["2/h"]
alarms:
  - name: app-refused
    measure: refusals
    codes: [rate_limited]
    software: app
    period: 1m
    threshold: 2
    action: suspend
`);
    configFile = path.join(w.dir, 'broker.json');
    writeFileSync(configFile, JSON.stringify({
      stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, log: { level: 'silent' },
      // The agent signs with its own clock: allow the half hour the test moves the broker's by.
      evidence: { maxClockSkewSeconds: 3600 },
      store: { kind: 'sqlite', changePollMs: 100 }, alarms: { webhook: { url: hook.url, secret: { file: 'hook.secret' } } },
    }));
    config = loadConfig(configFile, {});
    const k = await openKeys(config, systemClock, 'serve');
    await k.keys.create(APP_KEY, 'test');
    await k.close();
    broker = await startBroker(config, { clock });
  });
  afterAll(async () => {
    await broker?.close();
    await hook?.close();
    w?.cleanup();
  });

  const agent = () =>
    runAgent(['exec', '--allow-shared-uid', '--broker', broker.url, '--node-cert', path.join(w.dir, 'node.pem'), '--node-key', path.join(w.dir, 'node.key'), '--retries', '0', '--key', `${APP_KEY}=APP_KEY`, '--', w.app.path]);

  it('a limit: exit 50 with the wait the broker gave; three refusals in a minute suspend the service: exit 51; the webhook says so', async () => {
    const t = clock.now();
    for (let i = 0; i < 2; i++) {
      const ok = await agent();
      expect(ok.code, ok.stderr).toBe(0);
    }
    for (let i = 0; i < 3; i++) {
      const r = await agent();
      expect(r.code, r.stderr).toBe(EXIT_CODES.rate_limited);
      expect(r.stderr).toMatch(/rate_limited/);
      expect(r.stderr).toContain('the broker asks to retry after 1800 s; pass --wait-on-rate-limit SECONDS to wait for it');
      expect(r.stdout).toBe('');
    }
    const cut = await agent();
    expect(cut.code, cut.stderr).toBe(EXIT_CODES.suspended);
    expect(cut.stderr).toMatch(/suspended/);
    const [d] = await hook.waitFor(1);
    expect(d!.verified).toMatchObject({ type: 'keyanchor.alarm.fired', data: { alarm: 'app-refused', measure: 'refusals', subject: 'software:app', counts: [3], suspension: { created: true } } });
    expect(Date.parse(d!.verified.timestamp)).toBe(t);
  });

  it('a restart keeps the suspension; `keyanchor suspend clear` lifts it on the running broker; the window frees up at its edge', async () => {
    await broker.close();
    broker = await startBroker(config, { clock });
    expect((await agent()).code).toBe(EXIT_CODES.suspended);
    const cleared = await runKeyanchor(['--config', configFile, 'suspend', 'clear', 'software:app']);
    expect(cleared.code, cleared.stderr).toBe(0);
    // The running broker learns of it from the change feed (every 100 ms here).
    let r = await agent();
    for (let i = 0; i < 50 && r.code === EXIT_CODES.suspended; i++) r = await agent();
    expect(r.code, r.stderr).toBe(EXIT_CODES.rate_limited); // no longer suspended; the hour's window is still spent
    clock.advance(30 * 60_000 - 1);
    expect((await agent()).code).toBe(EXIT_CODES.rate_limited);
    clock.advance(1);
    const ok = await agent();
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('a bounded load test: one service floods and is cut off, the other carries on', () => {
  const THRESHOLD = 40;
  const FLOOD_WORKERS = 12;
  const FLOOD_ATTEMPTS = 240;
  const STEADY = 40;
  let w: World;
  let broker: BrokerProcess;

  beforeAll(async () => {
    w = await makeWorld();
    writeControls(w, `alarms:
  - name: app-flood
    measure: releases
    software: app
    period: 1m
    threshold: ${THRESHOLD}
    action: suspend
`);
    const config = path.join(w.dir, 'load.json');
    // Both services come from 127.0.0.1 here (in production, from different nodes): the per-source
    // challenge limit is lifted so that only the policy's controls decide.
    const nonce = { perSource: { ratePerSecond: 100_000, burst: 100_000 } };
    writeFileSync(config, JSON.stringify({ stateDir: w.stateDir, policyDir: w.policyDir, insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, log: { level: 'warn' }, nonce }));
    for (const [i, key] of [APP_KEY, IMG_KEY].entries()) {
      const made = await runKeyanchor(['--config', config, 'keys', 'create', ...(i === 0 ? ['--init'] : []), key]);
      expect(made.code, made.stderr).toBe(0);
    }
    broker = await startBrokerProcess(['--config', config, 'serve']);
  }, 60_000);
  afterAll(async () => {
    await broker?.stop();
    w?.cleanup();
  });

  async function once(who: 'app' | 'pinned'): Promise<string> {
    const ch = await postJson(`${broker.url}/v1/challenge`, {});
    if (ch.status !== 200) return `challenge ${ch.status} ${ch.code ?? ''}`;
    const opts = who === 'app' ? {} : { binary: { sha256: w.pinnedSha256, sigs: [] }, image: { digest: w.imageDigest }, keys: [{ name: IMG_KEY }] };
    const ev = await makeEvidence(w, { nonce: ch.body.nonce as string, ...opts });
    const a = await postJson(`${broker.url}/v1/attest`, { evidence: ev.compact });
    return `${a.status}${a.code ? ` ${a.code}` : ''}`;
  }

  it(`${FLOOD_WORKERS} workers flood one service: at most ${THRESHOLD} + 1 + what was in flight is released, then nothing; every request of the other service succeeds`, { timeout: 120_000 }, async () => {
    const flood: string[] = [];
    let firstCut = -1;
    let next = 0;
    const flooder = async () => {
      while (next < FLOOD_ATTEMPTS) {
        next++;
        const started = flood.length;
        const a = await once('app');
        flood.push(a);
        if (a === '403 suspended' && firstCut < 0) firstCut = started;
      }
    };
    const steady: string[] = [];
    const steadyLoop = async () => {
      for (let i = 0; i < STEADY; i++) steady.push(await once('pinned'));
    };
    await Promise.all([...Array.from({ length: FLOOD_WORKERS }, flooder), steadyLoop()]);

    const released = flood.filter((a) => a === '200').length;
    console.log(`flood: ${released} released of ${flood.length}, first refusal after ${firstCut} answers; other service: ${steady.filter((a) => a === '200').length}/${STEADY}`);
    expect(steady).toEqual(Array(STEADY).fill('200'));
    expect(new Set(flood)).toEqual(new Set(['200', '403 suspended']));
    expect(released).toBeGreaterThan(THRESHOLD);
    expect(released).toBeLessThanOrEqual(THRESHOLD + 1 + FLOOD_WORKERS);
    // Once cut off, the flood gets nothing more: every answer after the workers' last ones in flight is a refusal.
    expect(flood.slice(firstCut + FLOOD_WORKERS)).toEqual(Array(flood.length - firstCut - FLOOD_WORKERS).fill('403 suspended'));
  });
});
