/**
 * The agent facing a broker that says "not now" or "never": rate_limited and suspended get their
 * own exit codes and messages; --wait-on-rate-limit honours Retry-After within its cap and never
 * waits by default; 5xx (a misconfigured custody) is retried a bounded number of times and then
 * says so; exec refuses to start a program as its own user before it contacts the broker.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { attest } from '../../../attest-agent/src/attest.js';
import { runCli } from '../../../attest-agent/src/cli.js';
import { parseRetryAfter } from '../../../attest-agent/src/client.js';
import { exitCodeFor } from '../../../attest-agent/src/exitCodes.js';
import { loadNodeIdentity } from '../../../attest-agent/src/nodeIdentity.js';
import { makeNodeCert, scratchDir } from './helpers.js';
import { startStubBroker, type ScriptedFailure, type StubBroker } from './stubBroker.js';

const scratch = scratchDir();
const node = makeNodeCert(scratch.dir, 'P-256');
const identity = loadNodeIdentity(node);
const DB = { version: 1, bytes: randomBytes(32) };
const workload = { binary: { path: '/opt/app', sha256: 'c'.repeat(64), signatures: [] } };

let broker: StubBroker | undefined;
const start = async (failures: ScriptedFailure[]) => (broker = await startStubBroker({ keys: { 'app/db': DB }, failures }));
afterEach(async () => { await broker?.close(); broker = undefined; });
afterAll(() => scratch.remove());

async function fetchCli(b: StubBroker, ...extra: string[]) {
  let err = '';
  const status = await runCli(['node', 'attest-agent', 'fetch', '--broker', b.url, '--node-cert', node.certFile, '--node-key', node.keyFile,
    '--program', '/bin/true', '--key', 'app/db', '--stdout', ...extra], { out: () => undefined, err: (t) => { err += t; } });
  return { status, err };
}

describe('rate limits and suspensions', () => {
  it('rate_limited: exit 50, the Retry-After and how to wait, without waiting by default', async () => {
    const b = await start([{ path: '/v1/attest', status: 429, code: 'rate_limited', retryAfter: '7' }]);
    const r = await fetchCli(b);
    expect(r.status).toBe(50);
    expect(r.status).toBe(exitCodeFor('rate_limited'));
    expect(r.err).toBe('attest-agent: rate_limited: the broker rate-limited this release; retry after the time it gave ' +
      '(the broker asks to retry after 7 s; pass --wait-on-rate-limit SECONDS to wait for it) (request req-2)\n');
    expect(b.nonces).toHaveLength(1);
  });

  it('suspended: exit 51 and its own message, never retried', async () => {
    const b = await start([{ path: '/v1/attest', status: 403, code: 'suspended' }]);
    const r = await fetchCli(b, '--wait-on-rate-limit', '60');
    expect(r.status).toBe(51);
    expect(r.err).toBe("attest-agent: suspended: releases to this workload, node, zone or key are suspended (an alarm, an operator, or the policy's node deny-list) (request req-2)\n");
    expect(b.nonces).toHaveLength(1);
  });

  it('--wait-on-rate-limit: sleeps what Retry-After says, then a fresh exchange succeeds', async () => {
    const b = await start([
      { path: '/v1/attest', status: 429, code: 'rate_limited', retryAfter: '3' },
      { path: '/v1/attest', status: 429, code: 'rate_limited', retryAfter: '2' },
    ]);
    const slept: number[] = [];
    const r = await attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }], retries: 0, retry: { rateLimitWaitSeconds: 5, sleep: async (ms) => slept.push(ms) } });
    expect(r.keys.get('app/db')?.equals(DB.bytes)).toBe(true);
    expect(slept).toEqual([3000, 2000]);
    expect(new Set(b.nonces).size).toBe(3);
  });

  it('--wait-on-rate-limit: a Retry-After beyond what is left of the cap fails at once', async () => {
    const b = await start([
      { path: '/v1/attest', status: 429, code: 'rate_limited', retryAfter: '3' },
      { path: '/v1/attest', status: 429, code: 'rate_limited', retryAfter: '3' },
    ]);
    const slept: number[] = [];
    const err = await attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }], retry: { rateLimitWaitSeconds: 5, sleep: async (ms) => slept.push(ms) } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'rate_limited', retryAfterSeconds: 3, message: expect.stringMatching(/longer than what is left of --wait-on-rate-limit 5 \(2 s\)/) });
    expect(slept).toEqual([3000]);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('120')).toBe(120);
    expect(parseRetryAfter(new Date(10_000 + 30_000).toUTCString(), 10_000)).toBe(30);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('a broker that fails every time', () => {
  it('custody_unavailable: bounded retries, then the code, its exit status and how many attempts', async () => {
    const down: ScriptedFailure = { path: '/v1/attest', status: 503, code: 'custody_unavailable' };
    const b = await start([down, down, down, down, down]);
    const err = await attest({ broker: b.url, node: identity, workload, keys: [{ name: 'app/db' }], retries: 2, retry: { sleep: async () => undefined } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'custody_unavailable', message: "the broker's key custody is unavailable (gave up after 3 attempts)" });
    expect(b.nonces).toHaveLength(3);
  });
});

describe('exec and the node key', () => {
  it('refuses to run a program as the agent\'s own user (exit 47) before contacting the broker', async () => {
    const b = await start([]);
    let err = '';
    const status = await runCli(['node', 'attest-agent', 'exec', '--broker', b.url, '--node-cert', node.certFile, '--node-key', node.keyFile,
      '--key', 'app/db=DB_KEY', '--', '/bin/true'], { out: () => undefined, err: (t) => { err += t; } });
    expect(status).toBe(47);
    expect(err).toMatch(/^attest-agent: node_key_exposed: refusing to start the program as the agent's own user: uid \d+ is the agent's own/);
    expect(b.nonces).toHaveLength(0);
  });

  it('--group without --user is a usage error', async () => {
    const b = await start([]);
    const status = await runCli(['node', 'attest-agent', 'exec', '--group', 'nogroup', '--broker', b.url, '--node-cert', node.certFile, '--node-key', node.keyFile,
      '--', '/bin/true'], { out: () => undefined, err: () => undefined });
    expect(status).toBe(exitCodeFor('usage'));
  });
});

describe('--recipient-type', () => {
  const fetchWith = async (offered: Array<'EC' | 'RSA'>, hint: string) => {
    broker = await startStubBroker({ keys: { 'app/db': DB }, recipientKeyTypes: offered, form: offered[0] === 'RSA' ? 'cek' : 'plaintext' });
    const r = await fetchCli(broker, '--recipient-type', hint);
    return { status: r.status, kty: broker.evidence[0]?.cnf.jwk.kty };
  };

  it('a key of the hinted type when the broker offers it', async () => {
    expect(await fetchWith(['RSA'], 'RSA')).toEqual({ status: 0, kty: 'RSA' });
  });

  it('the broker\'s type when it does not offer the hinted one', async () => {
    expect(await fetchWith(['EC'], 'RSA')).toEqual({ status: 0, kty: 'EC' });
  });

  it('refuses a type it does not know', async () => {
    expect((await fetchWith(['EC'], 'DSA')).status).toBe(exitCodeFor('usage'));
  });
});
