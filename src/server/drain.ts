/**
 * The request gate and the shutdown drain.
 *
 * Until the drain begins, every request goes to the app and is counted while in flight. The drain:
 *  1. stops accepting connections (the listening socket closes; kept-alive connections stay open);
 *  2. marks every response in flight that has not started `Connection: close`;
 *  3. answers any request that still arrives, on a kept-alive connection, with `503 shutting_down`
 *     and `Connection: close`, so a client retries elsewhere instead of meeting a reset;
 *  4. waits for the requests in flight to finish, at most `graceMs`;
 *  5. closes every connection left (idle ones, and those of requests still running: cut).
 *
 * Step 1 uses net.Server's close rather than http.Server's, which since Node 19 also closes idle
 * kept-alive connections at once: a request already on its way on one would meet a reset, where
 * step 3 gives it an answer.
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { Server as NetServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { BrokerError } from '../errors.js';
import type { Logger } from '../log.js';
import { newRequestId, writeProblem } from './problemResponse.js';

export interface DrainResult {
  /** Requests in flight when the drain began. */
  inFlight: number;
  /** Requests still running when the grace period ended, whose connections were cut. */
  cut: number;
  /** Requests answered 503 shutting_down during the drain. */
  refused: number;
}

export interface RequestGate {
  readonly listener: RequestListener;
  readonly draining: boolean;
  drain(graceMs: number): Promise<DrainResult>;
}

export function gateRequests(server: Server, app: RequestListener, log: Logger): RequestGate {
  let draining = false;
  let refused = 0;
  const inFlight = new Set<ServerResponse>();
  let allDone: (() => void) | undefined;

  const listener: RequestListener = (req: IncomingMessage, res: ServerResponse) => {
    if (draining) {
      refused++;
      refuse(req, res, log);
      return;
    }
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      if (inFlight.size === 0) allDone?.();
    });
    app(req, res);
  };

  return {
    listener,
    get draining() {
      return draining;
    },
    async drain(graceMs: number): Promise<DrainResult> {
      draining = true;
      const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      const started = inFlight.size;
      for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
      log.info({ inFlight: started, graceSeconds: graceMs / 1000 }, 'shutdown: stopped accepting connections; waiting for requests in flight');
      if (inFlight.size > 0) {
        const done = new Promise<void>((resolve) => (allDone = resolve));
        const grace = new AbortController();
        await Promise.race([done, sleep(graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
        grace.abort();
      }
      const cut = inFlight.size;
      if (cut > 0) log.warn({ cut }, 'shutdown: grace period over; cutting the connections of requests still running');
      else log.info({ completed: started, refused }, 'shutdown: every request in flight completed');
      server.closeAllConnections();
      await closed;
      return { inFlight: started, cut, refused };
    },
  };
}

function refuse(req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const requestId = newRequestId();
  const err = new BrokerError('shutting_down', 'request arrived during the shutdown drain');
  log.info({ requestId, method: req.method, path: req.url?.slice(0, 200), code: err.code }, 'request refused');
  writeProblem(res, err, requestId, { close: true });
}
