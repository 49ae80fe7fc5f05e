/**
 * Problems answered outside express (parser errors, `Expect`, the shutdown drain), in the same
 * shape as every other: RFC 9457 body with a stable code, `X-Request-Id`, and the same headers as
 * app.ts sets. They always close the connection.
 */
import { randomBytes } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import { toProblem, type BrokerError } from '../errors.js';

export const newRequestId = (): string => randomBytes(8).toString('hex');

function problemHeaders(err: BrokerError, requestId: string, body: string): Record<string, string> {
  return {
    'Content-Type': 'application/problem+json',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Request-Id': requestId,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    ...(err.status === 503 ? { 'Retry-After': '1' } : {}),
    Connection: 'close',
  };
}

/** Answers `res` with the problem for `err` and closes its connection afterwards. */
export function writeProblem(res: ServerResponse, err: BrokerError, requestId: string): void {
  const body = JSON.stringify(toProblem(err, requestId));
  res.shouldKeepAlive = false;
  res.writeHead(err.status, problemHeaders(err, requestId, body));
  res.end(body);
}

/** The same answer as raw HTTP/1.1 bytes, for a socket the parser gave up on. */
export function rawProblemResponse(err: BrokerError, requestId: string): string {
  const body = JSON.stringify(toProblem(err, requestId));
  const headers = Object.entries(problemHeaders(err, requestId, body)).map(([k, v]) => `${k}: ${v}`);
  return [`HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}`, ...headers, '', body].join('\r\n');
}
