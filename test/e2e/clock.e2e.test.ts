/**
 * Time-dependent refusals with the agent CLI as a real process and an injected broker clock:
 * the broker runs in this process (real HTTP server) so the test can move its clock, and a
 * small proxy moves it at the exact moment between the agent's challenge and its attest.
 * Nothing sleeps.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../attest-agent/src/exitCodes.js';
import { startBroker, type Broker } from '../../src/broker.js';
import { openKeys } from '../../src/broker.js';
import { ManualClock, systemClock } from '../../src/clock.js';
import { APP_KEY, makeWorld, type World } from '../helpers/world.js';
import { runAgent } from '../helpers/processes.js';

let w: World;
let broker: Broker;
let proxyUrl: string;
let proxy: http.Server;
const clock = new ManualClock(Date.now());
/** What the proxy does to the clock once the challenge answer has passed through. */
let afterChallenge: () => void = () => {};

beforeAll(async () => {
  w = await makeWorld();
  writeFileSync(path.join(w.dir, 'node.pem'), w.node.certPem);
  writeFileSync(path.join(w.dir, 'node.key'), w.node.keyPem, { mode: 0o600 });
  writeFileSync(`${w.app.path}.sig`, w.app.sig);
  const k = await openKeys(w.config, systemClock, 'serve');
  await k.keys.create(APP_KEY, 'test');
  await k.close();
  broker = await startBroker(w.config, { clock });
  proxy = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const up = http.request(broker.url + req.url, { method: req.method, headers: { 'content-type': 'application/json' } }, (ur) => {
        const body: Buffer[] = [];
        ur.on('data', (c: Buffer) => body.push(c));
        ur.on('end', () => {
          if (req.url === '/v1/challenge') afterChallenge();
          res.writeHead(ur.statusCode ?? 502, { 'content-type': ur.headers['content-type'] ?? 'application/json' });
          res.end(Buffer.concat(body));
        });
      });
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
});

afterAll(async () => {
  proxy?.close();
  await broker?.close();
  w?.cleanup();
});

const agentExec = () =>
  runAgent(['exec', '--allow-shared-uid', '--broker', proxyUrl, '--node-cert', path.join(w.dir, 'node.pem'), '--node-key', path.join(w.dir, 'node.key'), '--retries', '0', '--key', `${APP_KEY}=APP_KEY`, '--', w.app.path]);

describe('with an injected broker clock', () => {
  it('the agent succeeds when the clock stands still', async () => {
    afterChallenge = () => {};
    clock.set(Date.now());
    const r = await agentExec();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('key bytes 32');
  });

  it('refuses an expired nonce: the broker clock passes the 60 s TTL between challenge and attest', async () => {
    clock.set(Date.now());
    afterChallenge = () => clock.advance(61_000);
    const r = await agentExec();
    expect(r.code).toBe(EXIT_CODES.nonce_expired);
    expect(r.stderr).toMatch(/nonce_expired/);
    expect(r.stdout).toBe('');
  });

  it('refuses evidence from a node whose clock is off by more than the allowed skew', async () => {
    afterChallenge = () => {};
    clock.set(Date.now() + 5 * 60_000); // the broker is five minutes ahead of the agent (and within the node certificate's validity)
    const r = await agentExec();
    expect(r.code).toBe(EXIT_CODES.clock_skew);
  });
});

// openssl is the release pipeline's tool; check it is there rather than fail obscurely.
execFileSync('openssl', ['version']);
