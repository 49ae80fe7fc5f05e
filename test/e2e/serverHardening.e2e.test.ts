/**
 * The broker's server against a real process: TLS offers 1.3 and, for 1.2, only ECDHE with AEAD
 * ciphers (checked with `openssl s_client`, which refuses what the broker does not offer); errors
 * Node's HTTP parser answers by itself (bad framing, 431, 417) come back as problems with an
 * X-Request-Id; /healthz carries the version.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/deps.js';
import { ROOT, run, startBrokerProcess, type BrokerProcess } from '../helpers/processes.js';
import { RawConnection, type RawResponse } from '../helpers/rawHttp.js';
import { writeTlsWorld, type TlsWorldFiles } from '../helpers/tlsWorld.js';
import { makeWorld, type World } from '../helpers/world.js';

const hasOpenssl = requireTool('openssl', 'the TLS cipher tests');
let w: World;
let files: TlsWorldFiles;
let broker: BrokerProcess;
let ca: Buffer;

beforeAll(async () => {
  w = await makeWorld();
  files = await writeTlsWorld(w);
  ca = readFileSync(files.tlsCa);
  broker = await startBrokerProcess(['--config', files.config, 'serve']);
});
afterAll(async () => {
  await broker?.stop();
  w?.cleanup();
});

describe.runIf(hasOpenssl)('TLS (openssl s_client)', () => {
  /** Exit status 0 when the handshake completes with these client settings. */
  const handshake = async (...args: string[]) => {
    const u = new URL(broker.url);
    const r = await run('openssl', ['s_client', '-connect', `${u.hostname}:${u.port}`, '-CAfile', files.tlsCa, '-verify_return_error', ...args], { timeoutMs: 10_000 });
    const agreed = /^New, (TLSv[\d.]+), Cipher is (\S+)$/m.exec(r.stdout);
    // A refusal must be the broker's: a TLS alert it sent, not a client that could not offer the cipher.
    const alert = /alert (handshake failure|protocol version)/.exec(r.stderr)?.[1];
    return { ok: r.code === 0 && agreed !== null, protocol: agreed?.[1], cipher: agreed?.[2], ...(alert ? { alert } : {}) };
  };

  it('TLS 1.3 with its AEAD suites', async () => {
    expect(await handshake('-tls1_3')).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
    expect(await handshake('-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256')).toEqual({ ok: true, protocol: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256' });
  });

  it('TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305', async () => {
    expect(await handshake('-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256')).toMatchObject({ ok: true, protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect((await handshake('-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305')).ok).toBe(true);
  });

  it('refuses CBC suites (with or without ECDHE), static-RSA and DHE key exchange, CCM_8, and TLS 1.1', async () => {
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384', 'AES128-GCM-SHA256', 'AES128-SHA', 'DHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES128-CCM8']) {
      expect(await handshake('-tls1_2', '-cipher', cipher), cipher).toEqual({ ok: false, alert: 'handshake failure' });
    }
    expect(await handshake('-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_8_SHA256')).toEqual({ ok: false, alert: 'handshake failure' });
    expect(await handshake('-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0')).toEqual({ ok: false, alert: 'protocol version' });
  });
});

describe('errors from Node\'s HTTP parser are problems with a request id', () => {
  const exchange = async (bytes: string): Promise<RawResponse | undefined> => {
    const conn = await RawConnection.open(broker.url, ca);
    conn.send(bytes);
    const r = await conn.nextResponse();
    await conn.closed; // and the connection is closed afterwards
    return r;
  };
  const problem = (r: RawResponse | undefined) => {
    const body = JSON.parse(r!.body) as { code: string; status: number; requestId: string };
    expect(r!.headers['content-type']).toBe('application/problem+json');
    expect(r!.headers['x-request-id']).toMatch(/^[0-9a-f]{16}$/);
    expect(body.requestId).toBe(r!.headers['x-request-id']);
    expect(body.status).toBe(r!.status);
    return { status: r!.status, code: body.code };
  };

  it('bad framing (Content-Length with Transfer-Encoding): 400 request_malformed', async () => {
    const r = await exchange('POST /v1/challenge HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}');
    expect(problem(r)).toEqual({ status: 400, code: 'request_malformed' });
  });

  it('bytes that are not HTTP: 400 request_malformed', async () => {
    expect(problem(await exchange('HELLO broker\r\n\r\n'))).toEqual({ status: 400, code: 'request_malformed' });
  });

  it('headers over 16 KiB: 431 request_headers_too_large', async () => {
    const r = await exchange(`GET /healthz HTTP/1.1\r\nHost: b\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(problem(r)).toEqual({ status: 431, code: 'request_headers_too_large' });
  });

  it('an Expect the broker does not support: 417 expectation_failed', async () => {
    const r = await exchange('POST /v1/challenge HTTP/1.1\r\nHost: b\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}');
    expect(problem(r)).toEqual({ status: 417, code: 'expectation_failed' });
  });

  it('the broker keeps serving, and /healthz carries its version', async () => {
    const conn = await RawConnection.open(broker.url, ca);
    conn.send('GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n');
    const r = await conn.nextResponse();
    const version = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')).version;
    expect({ status: r?.status, body: JSON.parse(r!.body) }).toEqual({ status: 200, body: { status: 'ok', version } });
    expect(broker.output()).toContain('"msg":"request refused by the HTTP parser"');
  });
});
