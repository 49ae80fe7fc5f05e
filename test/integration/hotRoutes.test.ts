/**
 * The release path's two routes on node:http (src/http/hotRoutes.ts), over a real socket: the body
 * rules express used to apply (and the stricter ones: no Content-Encoding), a streamed body over the
 * limit answered and its connection closed, the same headers as every other answer, and a query
 * string ignored as express ignored it. Everything else still reaches express.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleBroker, type Assembled } from '../../src/broker.js';
import { RawConnection } from '../helpers/rawHttp.js';
import { APP_KEY, makeEvidence, makeWorld, openReleased, type World } from '../helpers/world.js';

let w: World;
let b: Assembled;
let server: Server;
let url: string;

beforeAll(async () => {
  w = await makeWorld();
  b = await assembleBroker(w.config);
  await b.keys.create(APP_KEY, 'test');
  server = createServer(b.app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await b?.close();
  w?.cleanup();
});

async function exchange(raw: string | Buffer): Promise<{ status: number; code?: string; headers: Record<string, string>; closed: boolean }> {
  const c = await RawConnection.open(url);
  try {
    c.send(raw);
    const r = await c.nextResponse();
    if (!r) throw new Error('no response');
    const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 200))]);
    const body = r.body ? (JSON.parse(r.body) as { code?: string }) : {};
    return { status: r.status, ...(body.code ? { code: body.code } : {}), headers: r.headers, closed };
  } finally {
    c.close();
  }
}

const post = (path: string, headers: Record<string, string>, body: string | Buffer = '') =>
  Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: broker\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`),
    Buffer.from(body),
  ]);

describe('POST /v1/challenge and /v1/attest on node:http', () => {
  it('a challenge with no body, with {} and with a query string: 200 with the headers every answer carries', async () => {
    for (const raw of [post('/v1/challenge', { 'Content-Length': '0' }), post('/v1/challenge?x=1', { 'Content-Type': 'application/json', 'Content-Length': '2' }, '{}')]) {
      const r = await exchange(raw);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f]{16}$/);
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('a challenge body of another type: 415; not JSON: 400', async () => {
    expect(await exchange(post('/v1/challenge', { 'Content-Type': 'text/plain', 'Content-Length': '2' }, 'hi'))).toMatchObject({ status: 415, code: 'unsupported_media_type' });
    expect(await exchange(post('/v1/challenge', { 'Content-Type': 'application/json', 'Content-Length': '1' }, '{'))).toMatchObject({ status: 400, code: 'request_malformed' });
  });

  it('an attest with no body: 400 request_malformed; a compressed body: 415, never inflated', async () => {
    expect(await exchange(post('/v1/attest', { 'Content-Type': 'application/json', 'Content-Length': '0' }))).toMatchObject({ status: 400, code: 'request_malformed' });
    const gz = gzipSync(JSON.stringify({ evidence: 'a.b.c' }));
    const r = await exchange(post('/v1/attest', { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip', 'Content-Length': String(gz.length) }, gz));
    expect(r).toMatchObject({ status: 415, code: 'unsupported_media_type' });
  });

  it('a chunked body over the limit: 413 evidence_too_large, and the connection is closed rather than drained', async () => {
    const chunk = 'x'.repeat(16 * 1024);
    const chunks = Array.from({ length: 8 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
    const r = await exchange(post('/v1/attest', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, `${chunks}0\r\n\r\n`));
    expect(r).toMatchObject({ status: 413, code: 'evidence_too_large', closed: true });
  });

  it('a declared length over the limit: 413 at once, connection closed', async () => {
    const r = await exchange(post('/v1/attest', { 'Content-Type': 'application/json', 'Content-Length': String(10 * 1024 * 1024) }, '{"evidence":"'));
    expect(r).toMatchObject({ status: 413, code: 'evidence_too_large', closed: true });
  });

  it('other methods on both paths: 405 method_not_allowed; other paths still reach express', async () => {
    for (const m of ['GET', 'PUT', 'DELETE']) {
      expect(await exchange(`${m} /v1/attest HTTP/1.1\r\nHost: b\r\n\r\n`)).toMatchObject({ status: 405, code: 'method_not_allowed' });
      expect(await exchange(`${m} /v1/challenge HTTP/1.1\r\nHost: b\r\n\r\n`)).toMatchObject({ status: 405, code: 'method_not_allowed' });
    }
    expect(await exchange('GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n')).toMatchObject({ status: 200 });
    expect(await exchange('POST /v1/attest/ HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n')).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('a release over a kept-alive connection, twice: both answers on the one connection', async () => {
    const c = await RawConnection.open(url);
    try {
      for (let i = 0; i < 2; i++) {
        c.post('/v1/challenge', '{}');
        const nonce = (JSON.parse((await c.nextResponse())!.body) as { nonce: string }).nonce;
        const ev = await makeEvidence(w, { nonce });
        c.post('/v1/attest', JSON.stringify({ evidence: ev.compact }));
        const r = (await c.nextResponse())!;
        expect(r.status).toBe(200);
        const body = JSON.parse(r.body) as { requestId: string; keys: Array<{ jwe: string }> };
        expect(body.requestId).toBe(r.headers['x-request-id']);
        expect(body.keys).toHaveLength(1);
        expect((await openReleased(body.keys[0]!.jwe, ev.recipient)).key).toHaveLength(32);
      }
    } finally {
      c.close();
    }
  });
});
