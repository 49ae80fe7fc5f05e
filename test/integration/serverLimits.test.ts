/**
 * The server module (src/server/listen.ts) on loopback: the per-source connection cap (client
 * addresses 127.0.0.1, .2, .3 are distinct sources on Linux loopback) and maxConnections, each
 * closing the refused connection at once; and the request-timeout answer (408), driven by the
 * `clientError` event Node emits when its timer fires. And the same server when another process
 * accepts (`serve --workers`, workers.ts): with `handOff` (the primary: a TCP acceptor offers every
 * connection away first) and `handed` (a worker: connections arrive through `accept`), the cap is
 * counted here and the drain still closes kept-alive connections.
 */
import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { listen, type ListenOptions, type Listening } from '../../src/server/listen.js';
import { RawConnection } from '../helpers/rawHttp.js';

let server: Listening | undefined;
const open: RawConnection[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await server?.drain(0);
  server = undefined;
});

async function start(limits: { maxConnections: number; maxConnectionsPerSource: number }, opts: ListenOptions = {}): Promise<Listening> {
  const config = parseConfig(JSON.stringify({ insecureHttp: true, listen: { host: '127.0.0.1', port: 0 }, server: limits }));
  server = await listen(config, (_req, res) => res.end('ok'), createLogger('silent'), opts);
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

describe('connections accepted by another process (serve --workers)', () => {
  /** A served, kept-alive connection: open after its response. */
  async function servedConnection(url: string, from = '127.0.0.1'): Promise<RawConnection> {
    expect(await connectFrom(url, from)).toBe('served');
    return open.at(-1)!;
  }

  it('handOff: every connection is offered first; one declined is served here, under maxConnections counted here', async () => {
    const offered: string[] = [];
    const s = await start({ maxConnections: 2, maxConnectionsPerSource: 0 }, { handOff: (socket) => (offered.push(socket.remoteAddress!), false) });
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const from of ['127.0.0.1', '127.0.0.2']) await servedConnection(s.url, from);
    expect(await connectFrom(s.url, '127.0.0.3')).toBe('closed');
    expect(offered).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  });

  it('handOff: a connection taken elsewhere is not served here', async () => {
    const taken: Socket[] = [];
    const s = await start({ maxConnections: 10, maxConnectionsPerSource: 0 }, { handOff: (socket) => (taken.push(socket), true) });
    const conn = await RawConnection.open(s.url);
    open.push(conn);
    conn.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    while (taken.length === 0) await new Promise((r) => setImmediate(r));
    taken[0]!.destroy(); // the taker closes it unanswered
    expect(await conn.nextResponse()).toBeUndefined();
  });

  it('handed: nothing listens here; connections given to accept are served, and the drain closes the idle ones', async () => {
    const s = await start({ maxConnections: 10, maxConnectionsPerSource: 0 }, { handed: true });
    expect(s.url).toBe('');
    const acceptor = net.createServer({ pauseOnConnect: true }, (socket) => s.accept(socket));
    await new Promise<void>((r) => acceptor.listen(0, '127.0.0.1', r));
    try {
      const conn = await servedConnection(`http://127.0.0.1:${(acceptor.address() as AddressInfo).port}`);
      // Node tracks the connections of a server that never listened too (the drain's closeAllConnections).
      const drained = await s.drain(0);
      expect(drained).toEqual({ inFlight: 0, cut: 0, refused: 0 });
      await conn.closed;
    } finally {
      acceptor.close();
      server = undefined;
    }
  });
});
