/**
 * How a problem is answered, for every writer: the express app (http/problem.ts), the two hot
 * routes (http/hotRoutes.ts), and what Node's HTTP layer answers by itself (parser errors,
 * `Expect`, the shutdown drain). RFC 9457 body from errors.ts's toProblem (the one mapping from an
 * error to what a client sees), a stable code, `X-Request-Id`, the headers every answer carries,
 * and `Retry-After` on 429 and 503.
 */
import { randomFillSync } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { toProblem, type BrokerError } from '../errors.js';

/** Headers on every answer of the broker's API, problem or not. */
export const COMMON_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' } as const;

/** Request ids are 16 hex digits, cut from a random pool refilled 512 ids at a time. */
const POOL_IDS = 512;
const pool = Buffer.alloc(8 * POOL_IDS);
let next = POOL_IDS;
export function newRequestId(): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const at = 8 * next++;
  return pool.toString('hex', at, at + 8);
}

export interface ProblemAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** `detail` only where it tells a client nothing it could exploit (the readiness summary). */
export function problemAnswer(err: BrokerError, requestId: string, detail?: string): ProblemAnswer {
  const body = JSON.stringify(detail ? { ...toProblem(err, requestId), detail } : toProblem(err, requestId));
  const retryAfter = err.retryAfterSeconds ?? (err.status === 503 ? 1 : undefined);
  return {
    status: err.status,
    headers: {
      'Content-Type': 'application/problem+json',
      'Content-Length': String(Buffer.byteLength(body)),
      'X-Request-Id': requestId,
      ...COMMON_HEADERS,
      ...(retryAfter !== undefined ? { 'Retry-After': String(retryAfter) } : {}),
    },
    body,
  };
}

/** Answers `res` with the problem for `err`; with `close`, the connection closes afterwards. */
export function writeProblem(res: ServerResponse, err: BrokerError, requestId: string, opts: { close?: boolean; detail?: string } = {}): void {
  const a = problemAnswer(err, requestId, opts.detail);
  if (opts.close) {
    res.shouldKeepAlive = false;
    a.headers.Connection = 'close';
  }
  res.writeHead(a.status, a.headers);
  res.end(a.body);
}

/** The same answer as raw HTTP/1.1 bytes, for a socket the parser gave up on (always closed). */
export function rawProblemResponse(err: BrokerError, requestId: string): string {
  const a = problemAnswer(err, requestId);
  const headers = Object.entries({ ...a.headers, Connection: 'close' }).map(([k, v]) => `${k}: ${v}`);
  return [`HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? 'Error'}`, ...headers, '', a.body].join('\r\n');
}
