/**
 * `keyanchor serve --workers 2` with real processes (a primary that listens, serves, and owns the
 * SQLite store's writer, and one worker it hands every other connection to): the guarantees of one
 * broker.
 *  - The replay race: 200 concurrent submissions of one nonce, each on its own connection (so both
 *    processes get some), give exactly one 200; the others 401 nonce_replayed.
 *  - A worker killed with SIGKILL under load is replaced; no release is lost (every 200 has its
 *    audit record) or doubled (no nonce is released twice, even when the evidence of every attempt
 *    the kill cut off is sent again), and the audit trail verifies.
 *  - SIGTERM drains both processes: requests in flight complete, then the primary closes the store.
 *  - SIGHUP reaches both (each reloads its policy).
 *  - A worker whose primary is killed exits (nothing would hand it connections again).
 *  - Signals sent to every process (Ctrl-C to the group, systemd's stop): a worker leaves SIGHUP
 *    to the primary, and SIGTERM to both drains each once: exit 0.
 */
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { openStore } from '../../src/store/index.js';
import { auditRecords } from '../helpers/audit.js';
import { runKeyanchor, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { RawConnection } from '../helpers/rawHttp.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { APP_KEY, makeEvidence, makeWorld, openReleased, type World } from '../helpers/world.js';

let w: World;
let files: TlsWorldFiles;
let ca: Buffer;

beforeAll(async () => {
  w = await makeWorld();
  files = await writeTlsWorld(w, { config: { server: { workers: 2, shutdownGraceSeconds: 5 } } });
  ca = readFileSync(files.tlsCa);
  const r = await runKeyanchor(['--config', files.config, 'keys', 'create', '--init', APP_KEY]);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => w?.cleanup());

const logLines = (b: BrokerProcess, msg: string) =>
  b.output().split('\n').filter((l) => l.includes(`"msg":"${msg}`)).map((l) => JSON.parse(l) as Record<string, unknown>);
/** Which process logged a line: 'primary' or the worker's id. */
const who = (l: Record<string, unknown>) => (l.role === 'primary' ? 'primary' : String(l.worker));
const exited = (b: BrokerProcess) => new Promise<number | null>((r) => (b.proc.exitCode !== null ? r(b.proc.exitCode) : b.proc.once('exit', (code) => r(code))));

async function waitFor(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Answer { status: number; body: Record<string, unknown> }

/** One POST on a connection of its own (`agent: false`), so that round-robin spreads them over the processes. */
function post(url: string, route: string, body: unknown, agent: https.Agent | false = false): Promise<Answer> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(`${url}${route}`, { method: 'POST', ca, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
      res.on('error', reject);
    });
    req.end(text);
  });
}

const challenge = async (url: string, agent?: https.Agent) => (await post(url, '/v1/challenge', {}, agent ?? false)).body.nonce as string;

async function releasesInStore(): Promise<Array<Record<string, unknown>>> {
  const store = await openStore(JSON.parse(JSON.stringify({ kind: 'sqlite', file: `${w.stateDir}/keyanchor.db`, synchronous: 'full', busyTimeoutMs: 5000, changePollMs: 500 })), { clock: systemClock });
  try {
    return await auditRecords(store.read);
  } finally {
    await store.close();
  }
}

describe('serve --workers 2', () => {
  it('starts a primary and a worker, announces one URL, and serves from both', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    try {
      expect(logLines(broker, 'worker ready').map((l) => l.worker)).toEqual([1]);
      expect(broker.output().match(/keyanchor listening on/g)).toHaveLength(1);
      // The replay race: one nonce, one evidence, 200 submissions at once on 200 connections.
      const { compact, recipient } = await makeEvidence(w, { nonce: await challenge(broker.url) });
      const answers = await Promise.all(Array.from({ length: 200 }, () => post(broker.url, '/v1/attest', { evidence: compact })));
      const ok = answers.filter((a) => a.status === 200);
      expect(ok).toHaveLength(1);
      expect(answers.filter((a) => a.status !== 200).map((a) => `${a.status} ${String(a.body.code)}`)).toEqual(Array(199).fill('401 nonce_replayed'));
      const [key] = ok[0]!.body.keys as Array<{ jwe: string }>;
      expect((await openReleased(key!.jwe, recipient)).key).toHaveLength(32);
      // Both processes took part: each logged refusals of its own.
      const refusedBy = new Set(logLines(broker, 'attestation refused').map(who));
      expect([...refusedBy].sort()).toEqual(['1', 'primary']);
    } finally {
      await broker.stop();
    }
    const releases = (await releasesInStore()).filter((r) => r.event === 'release');
    expect(releases).toHaveLength(1);
  });

  it('a worker killed with SIGKILL is replaced; no release is lost or doubled, and the trail verifies', async () => {
    const earlier = new Set((await releasesInStore()).map((r) => String(r.requestId)));
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    const attempts: Array<{ evidence: string; requestId?: string; status?: number; error?: string }> = [];
    let running = true;
    const agents = Array.from({ length: 6 }, () => new https.Agent({ keepAlive: true, maxSockets: 1 }));
    const client = async (agent: https.Agent) => {
      while (running) {
        let nonce: string;
        try {
          nonce = await challenge(broker.url, agent);
        } catch {
          continue; // the connection was the killed worker's: the agent opens another
        }
        const { compact } = await makeEvidence(w, { nonce });
        const a: (typeof attempts)[number] = { evidence: compact };
        attempts.push(a);
        try {
          const r = await post(broker.url, '/v1/attest', { evidence: compact }, agent);
          a.status = r.status;
          a.requestId = String(r.body.requestId);
        } catch (e) {
          a.error = (e as Error).message;
        }
      }
    };
    try {
      const load = Promise.all(agents.map(client));
      await waitFor(() => attempts.filter((a) => a.status === 200).length >= 60, '60 releases');
      const victim = logLines(broker, 'worker ready')[0]!;
      process.kill(Number(victim.pid), 'SIGKILL');
      await waitFor(() => logLines(broker, 'worker died: starting a replacement').length === 1, 'the primary to see the worker die');
      await waitFor(() => logLines(broker, 'worker ready').length === 2, 'the replacement to be ready');
      const before = attempts.filter((a) => a.status === 200).length;
      await waitFor(() => attempts.filter((a) => a.status === 200).length >= before + 60, '60 more releases');
      running = false;
      await load;
      expect(logLines(broker, 'worker died: starting a replacement')[0]).toMatchObject({ worker: victim.worker, signal: 'SIGKILL' });

      // Every attempt that got no answer is tried again: its nonce was used up (401), or never reached the store (200).
      const cut = attempts.filter((a) => a.status === undefined);
      for (const a of cut) {
        const r = await post(broker.url, '/v1/attest', { evidence: a.evidence });
        expect([200, 401]).toContain(r.status);
        if (r.status === 401) expect(r.body.code).toBe('nonce_replayed');
        a.status = r.status;
        a.requestId = String(r.body.requestId);
      }
    } finally {
      running = false;
      for (const a of agents) a.destroy();
      await broker.stop();
    }
    expect(await exited(broker)).toBe(0);

    // This test's records: the store holds the earlier tests' too.
    const records = (await releasesInStore()).filter((r) => !earlier.has(String(r.requestId)));
    const released = records.filter((r) => r.event === 'release').map((r) => String(r.requestId));
    const ok = attempts.filter((a) => a.status === 200).map((a) => a.requestId!);
    // Not lost: every 200 has its record. Not doubled: one record per request, and one 200 per evidence (nonce).
    for (const id of ok) expect(released).toContain(id);
    expect(new Set(released).size).toBe(released.length);
    const perEvidence = new Map<string, number>();
    for (const a of attempts) if (a.status === 200) perEvidence.set(a.evidence, (perEvidence.get(a.evidence) ?? 0) + 1);
    expect([...perEvidence.values()].every((n) => n === 1)).toBe(true);
    // Releases recorded without an answer (the killed worker's, committed as it died) are at most the attempts it cut.
    expect(released.length - ok.length).toBeLessThanOrEqual(attempts.filter((a) => a.error !== undefined).length);
    const verify = await runKeyanchor(['--config', files.config, 'audit', 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('SIGTERM drains both processes: requests in flight complete; then the primary closes the store and exits 0', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    // Requests in flight on several connections (spread over both processes): the body is still to come.
    const conns = await Promise.all(Array.from({ length: 6 }, () => RawConnection.open(broker.url, ca)));
    for (const c of conns) c.send('POST /v1/challenge HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n');
    for (const c of conns) expect((await c.nextResponse())?.status).toBe(100);
    broker.proc.kill('SIGTERM');
    await waitFor(() => logLines(broker, 'shutdown: stopped accepting').length === 2, 'both processes to begin draining');
    for (const c of conns) c.send('{}');
    for (const c of conns) expect((await c.nextResponse())?.status).toBe(200);
    expect(await exited(broker)).toBe(0);
    const drained = logLines(broker, 'shutdown: stopped accepting');
    expect(drained.map(who).sort()).toEqual(['1', 'primary']);
    expect(drained.reduce((n, l) => n + Number(l.inFlight), 0)).toBe(6);
    expect(logLines(broker, 'shutdown: grace period over')).toHaveLength(0);
    // The primary closes the store last, after the worker's own shutdown.
    const lines = broker.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const primaryDone = lines.findIndex((l) => l.role === 'primary' && l.msg === 'shutdown: complete');
    expect(primaryDone).toBe(lines.length - 1);
    expect(lines.filter((l) => l.msg === 'shutdown: complete').map(who).sort()).toEqual(['1', 'primary']);
  });

  it('workers that cannot start (a policy that does not load): the broker exits as one would, 3 and why', async () => {
    const config = `${w.dir}/bad-policy.json`;
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(files.config, 'utf8')), policyDir: `${w.dir}/no-such-policy` }));
    const r = await runKeyanchor(['--config', config, 'serve']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^keyanchor: refusing to start: policy refused \(policy_invalid\)$/m);
    expect(r.stdout).not.toContain('keyanchor listening on');
  });

  it('SIGHUP reaches both processes', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    try {
      expect(logLines(broker, 'policy reloaded')).toHaveLength(0);
      broker.proc.kill('SIGHUP');
      await waitFor(() => logLines(broker, 'policy reloaded').length === 2, 'both processes to reload');
      expect(logLines(broker, 'policy reloaded').map((l) => [who(l), l.trigger]).sort()).toEqual([['1', 'sighup'], ['primary', 'sighup']]);
    } finally {
      await broker.stop();
    }
  });

  it('a worker whose primary is killed exits', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    const worker = Number(logLines(broker, 'worker ready')[0]!.pid);
    const alive = () => {
      try {
        process.kill(worker, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);
    broker.proc.kill('SIGKILL');
    await exited(broker);
    await waitFor(() => !alive(), 'the worker to exit');
  });

  it('signals sent to every process: SIGHUP leaves the worker to the primary; SIGTERM to both drains each once and exits 0', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    const worker = Number(logLines(broker, 'worker ready')[0]!.pid);
    process.kill(worker, 'SIGHUP');
    process.kill(broker.proc.pid!, 'SIGHUP');
    await waitFor(() => logLines(broker, 'policy reloaded').length === 2, 'both processes to reload, once each');
    expect(logLines(broker, 'worker died: starting a replacement')).toHaveLength(0);
    process.kill(worker, 'SIGTERM');
    process.kill(broker.proc.pid!, 'SIGTERM');
    expect(await exited(broker)).toBe(0);
    expect(broker.output()).not.toContain('again: stopping now');
    expect(logLines(broker, 'shutdown: complete').map(who).sort()).toEqual(['1', 'primary']);
    expect(logLines(broker, 'policy reloaded')).toHaveLength(2);
  });

  it('/metrics shows the whole broker whichever process answers the scrape', async () => {
    const broker = await startBrokerProcess(['--config', files.config, 'serve']);
    try {
      const RELEASES = 10;
      for (let i = 0; i < RELEASES; i++) {
        const { compact } = await makeEvidence(w, { nonce: await challenge(broker.url) });
        expect((await post(broker.url, '/v1/attest', { evidence: compact })).status).toBe(200);
      }
      // Connections alternate between the two processes: the challenges went to one and the
      // attestations to the other, so neither process alone counted both.
      const releasedBy = new Set(logLines(broker, 'keys released').map(who));
      expect(releasedBy.size).toBe(1);
      const scrape = () =>
        new Promise<string>((resolve, reject) => {
          https.get(`${broker.url}/metrics`, { ca, agent: false }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve(body));
          }).on('error', reject);
        });
      const released = (text: string) => [...text.matchAll(/^keyanchor_releases_total\{zone="[^"]*"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      const challenges = (text: string) => Number(/^keyanchor_challenges_total (\d+)$/m.exec(text)?.[1]);
      const scrapes = [await scrape(), await scrape(), await scrape(), await scrape()];
      expect(scrapes.map(released)).toEqual(Array(4).fill(RELEASES));
      expect(scrapes.map(challenges)).toEqual(Array(4).fill(RELEASES));
      expect(scrapes[0]).toMatch(/^keyanchor_suspensions_active\{kind="node"\} 0$/m);
    } finally {
      await broker.stop();
    }
  });
});
