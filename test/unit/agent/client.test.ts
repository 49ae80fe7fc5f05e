import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChallengeResponseSchema } from '../../../src/protocol.js';
import { postJson } from '../../../attest-agent/src/client.js';
import { backoffDelay, withRetries } from '../../../attest-agent/src/retry.js';
import { scratchDir } from './helpers.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;
let server: http.Server | https.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A broker stand-in on 127.0.0.1:0 that counts requests. */
async function serve(handler: Handler): Promise<{ url: string; count: () => number; bodies: string[] }> {
  let n = 0;
  const bodies: string[] = [];
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { bodies.push(body); handler(req, res, ++n); });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, count: () => n, bodies };
}

const CHALLENGE = { nonce: 'x'.repeat(43), expiresAt: '2030-01-01T00:00:00Z', ttlSeconds: 60, protocolVersion: 1, recipientKeyTypes: ['EC'] };
const json = (res: http.ServerResponse, status: number, body: unknown, type = 'application/json') => {
  res.writeHead(status, { 'content-type': type });
  res.end(JSON.stringify(body));
};
const problem = (res: http.ServerResponse, status: number, code: string) =>
  json(res, status, { type: `urn:keyanchor:problem:${code}`, title: code, status, code, requestId: `req-${code}` }, 'application/problem+json');
const fast = { retries: 3, sleep: async () => undefined };

describe('postJson + withRetries against a local server', () => {
  it('posts {} as JSON and parses the answer with the protocol schema', async () => {
    const headers: http.IncomingHttpHeaders[] = [];
    const b = await serve((req, res) => { headers.push(req.headers); json(res, 200, CHALLENGE); });
    expect(await postJson({ broker: b.url }, 'v1/challenge', {}, ChallengeResponseSchema)).toEqual(CHALLENGE);
    expect(b.bodies).toEqual(['{}']);
    expect(headers[0]?.['content-type']).toBe('application/json');
  });

  it('rejects a 2xx answer that does not match the (strict) protocol schema', async () => {
    const b = await serve((_q, res) => json(res, 200, { ...CHALLENGE, extra: true }));
    await expect(postJson({ broker: b.url }, 'v1/challenge', {}, ChallengeResponseSchema)).rejects.toMatchObject({ code: 'broker_response_invalid', retryable: false });
  });

  it('retries 5xx and succeeds', async () => {
    const b = await serve((_q, res, n) => (n < 3 ? problem(res, 503, 'challenge_capacity') : json(res, 200, CHALLENGE)));
    const got = await withRetries(() => postJson({ broker: `${b.url}/` }, 'v1/challenge', {}, ChallengeResponseSchema), fast);
    expect(got.nonce).toBe(CHALLENGE.nonce);
    expect(b.count()).toBe(3);
  });

  it('gives up after the configured retries with the last 5xx code', async () => {
    const b = await serve((_q, res) => problem(res, 500, 'internal'));
    await expect(withRetries(() => postJson({ broker: b.url }, 'v1/challenge', {}, ChallengeResponseSchema), { ...fast, retries: 2 }))
      .rejects.toMatchObject({ code: 'internal', requestId: 'req-internal', status: 500 });
    expect(b.count()).toBe(3);
  });

  it('never retries 4xx, and surfaces the problem code and request id', async () => {
    const b = await serve((_q, res) => problem(res, 403, 'software_not_approved'));
    await expect(withRetries(() => postJson({ broker: b.url }, 'v1/attest', {}, ChallengeResponseSchema), fast))
      .rejects.toMatchObject({ code: 'software_not_approved', requestId: 'req-software_not_approved', retryable: false });
    expect(b.count()).toBe(1);
  });

  it('treats a 5xx without a problem body as broker_response_invalid, still retryable', async () => {
    const b = await serve((_q, res) => { res.writeHead(502, { 'content-type': 'text/html' }); res.end('<html>bad gateway</html>'); });
    await expect(withRetries(() => postJson({ broker: b.url }, 'v1/challenge', {}, ChallengeResponseSchema), { ...fast, retries: 1 }))
      .rejects.toMatchObject({ code: 'broker_response_invalid', retryable: true });
    expect(b.count()).toBe(2);
  });

  it('honours the per-request timeout, and retries it', async () => {
    const b = await serve(() => undefined); // never answers
    const t0 = Date.now();
    await expect(withRetries(() => postJson({ broker: b.url, timeoutMs: 150 }, 'v1/challenge', {}, ChallengeResponseSchema), { ...fast, retries: 1 }))
      .rejects.toMatchObject({ code: 'timeout' });
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(2000);
    expect(b.count()).toBe(2);
  });

  it('reports network_unreachable after retries when nothing listens', async () => {
    const b = await serve(() => undefined);
    server!.close();
    let attempts = 0;
    await expect(withRetries(() => { attempts++; return postJson({ broker: b.url }, 'v1/challenge', {}, ChallengeResponseSchema); }, { ...fast, retries: 2 }))
      .rejects.toMatchObject({ code: 'network_unreachable' });
    expect(attempts).toBe(3);
  });

  it('refuses non-http URLs as config', async () => {
    await expect(postJson({ broker: 'ftp://x' }, 'v1/challenge', {}, ChallengeResponseSchema)).rejects.toMatchObject({ code: 'config' });
  });
});

describe('backoff', () => {
  it('grows exponentially, is capped, and jitters below the ceiling', () => {
    const max = { retries: 5, baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999999 };
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, max))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoffDelay(3, { ...max, random: () => 0 })).toBe(0);
  });

  it('sleeps the computed delays between attempts', async () => {
    const slept: number[] = [];
    let n = 0;
    const { AgentError } = await import('../../../attest-agent/src/errors.js');
    await withRetries(async () => {
      if (++n < 4) throw new AgentError('network_unreachable', 'x', { retryable: true });
      return 'ok';
    }, { retries: 5, baseDelayMs: 10, maxDelayMs: 1000, random: () => 0.5, sleep: async (ms) => { slept.push(ms); } });
    expect(slept).toEqual([5, 10, 20]);
  });
});

describe('https with --ca', () => {
  it('trusts the given CA and refuses an unknown one with tls_failed, without retrying', async () => {
    const scratch = scratchDir();
    try {
      const keyFile = join(scratch.dir, 'server.key');
      const certFile = join(scratch.dir, 'server.crt');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile,
        '-out', certFile, '-days', '1', '-subj', '/CN=broker', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
      let n = 0;
      server = https.createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
        n++;
        req.resume();
        req.on('end', () => json(res, 200, CHALLENGE));
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ok = await postJson({ broker: url, ca: readFileSync(certFile) }, 'v1/challenge', {}, ChallengeResponseSchema);
      expect(ok.nonce).toBe(CHALLENGE.nonce);
      let attempts = 0;
      await expect(withRetries(() => { attempts++; return postJson({ broker: url }, 'v1/challenge', {}, ChallengeResponseSchema); }, fast))
        .rejects.toMatchObject({ code: 'tls_failed' });
      expect(attempts).toBe(1);
      expect(n).toBe(1);
    } finally {
      scratch.remove();
    }
  });
});
