/**
 * The server module (src/server/listen.ts) on loopback: the per-source connection cap (client
 * addresses 127.0.0.1, .2, .3 are distinct sources on Linux loopback) and maxConnections, each
 * closing the refused connection at once; and the request-timeout answer (408), driven by the
 * `clientError` event Node emits when its timer fires.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { listen, type Listening } from '../../src/server/listen.js';
import { RawConnection } from '../helpers/rawHttp.js';

let server: Listening | undefined;
const open: RawConnection[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await server?.drain(0);
  server = undefined;
});

async function start(limits: { maxConnections: number; maxConnectionsPerSource: number }): Promise<Listening> {
  const config = parseConfig(JSON.stringify({ insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, server: limits }));
  server = await listen(config, (_req, res) => res.end('ok'), createLogger('silent'), {});
  return server;
}

/** Opens a connection from `from` and reports whether it serves a request or is closed unanswered. */
async function connectFrom(url: string, from: string): Promise<'served' | 'closed'> {
  const conn = await RawConnection.open(url, undefined, { localAddress: from });
  open.push(conn);
  conn.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
  const r = await conn.nextResponse();
  return r?.status === 200 ? 'served' : 'closed';
}

describe('connection caps', () => {
  it('maxConnectionsPerSource: the third connection from one address is closed; other addresses still get in', async () => {
    const s = await start({ maxConnections: 100, maxConnectionsPerSource: 2 });
    expect(await connectFrom(s.url, '127.0.0.1')).toBe('served');
    expect(await connectFrom(s.url, '127.0.0.1')).toBe('served');
    expect(await connectFrom(s.url, '127.0.0.1')).toBe('closed');
    expect(await connectFrom(s.url, '127.0.0.2')).toBe('served');
    open[0]!.close(); // one of 127.0.0.1's closes: room for another
    await open[0]!.closed;
    await new Promise((r) => setImmediate(r));
    expect(await connectFrom(s.url, '127.0.0.1')).toBe('served');
  });

  it('maxConnections: beyond it, any address is closed at accept', async () => {
    const s = await start({ maxConnections: 3, maxConnectionsPerSource: 0 });
    for (const from of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) expect(await connectFrom(s.url, from)).toBe('served');
    expect(await connectFrom(s.url, '127.0.0.4')).toBe('closed');
  });
});

describe('request timeout', () => {
  it('answers 408 request_timeout with a problem body and X-Request-Id when Node reports the timeout', async () => {
    const s = await start({ maxConnections: 10, maxConnectionsPerSource: 10 });
    const accepted = once(s.server, 'connection');
    const conn = await RawConnection.open(s.url);
    open.push(conn);
    const [socket] = await accepted;
    conn.send('GET / HTTP/1.1\r\nHost: t\r\n'); // headers never finished
    // What Node emits when headersTimeout/requestTimeout fires (its checker runs every 30 s; not waited for here).
    s.server.emit('clientError', Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket);
    const r = await conn.nextResponse();
    expect(r?.status).toBe(408);
    expect(r?.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(r!.body)).toMatchObject({ status: 408, code: 'request_timeout', requestId: r?.headers['x-request-id'] });
    await conn.closed;
  });
});
