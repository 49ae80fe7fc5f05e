/**
 * Errors Node's HTTP layer answers by itself, before express sees a request, given the broker's
 * problem shape (problemResponse.ts):
 *
 *  - `clientError` (the parser refused the bytes, or a timeout fired): HPE_HEADER_OVERFLOW → 431
 *    request_headers_too_large; ERR_HTTP_REQUEST_TIMEOUT → 408 request_timeout; every other parser
 *    error (bad framing, bad method or version, conflicting lengths…) → 400 request_malformed.
 *    Written straight to the socket, which is then closed, as Node's own default answer is; only
 *    when the socket is still writable and no response on it has begun (else it is destroyed).
 *  - `checkExpectation` (an `Expect` other than `100-continue`) → 417 expectation_failed.
 *
 * What Node leaves no room for is listed in docs/operations.md (TLS failures, a peer that reset,
 * errors after a response began, connections refused at accept).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BrokerError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ProblemCode } from '../protocol.js';
import { newRequestId, rawProblemResponse, writeProblem } from './problemResponse.js';

export function parserErrorCode(code: string | undefined): ProblemCode {
  if (code === 'HPE_HEADER_OVERFLOW') return 'request_headers_too_large';
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout';
  return 'request_malformed';
}

type ClientSocket = Duplex & { _httpMessage?: ServerResponse; remoteAddress?: string };

export function answerParserErrors(server: Server, log: Logger): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: ClientSocket) => {
    if (err.code === 'ECONNRESET' || !socket.writable || socket._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const requestId = newRequestId();
    const problem = new BrokerError(parserErrorCode(err.code), `HTTP parser: ${err.code ?? 'error'}: ${err.message}`);
    log.info({ requestId, code: problem.code, reason: problem.reason, source: socket.remoteAddress }, 'request refused by the HTTP parser');
    socket.end(rawProblemResponse(problem, requestId));
  });

  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const requestId = newRequestId();
    const problem = new BrokerError('expectation_failed', `Expect: ${String(req.headers.expect).slice(0, 100)}`);
    log.info({ requestId, code: problem.code, method: req.method, path: req.url?.slice(0, 200) }, 'request refused');
    writeProblem(res, problem, requestId, { close: true });
  });
}
