import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { asBrokerError, BrokerError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeProblem } from '../server/problemResponse.js';

export interface RequestLocals {
  requestId: string;
}

/** `detail` only where it tells a client nothing it could exploit (the readiness summary). */
export function sendProblem(res: Response, err: BrokerError, detail?: string): void {
  writeProblem(res, err, (res.locals as RequestLocals).requestId, detail ? { detail } : {});
}

/** Body-parser and other framework errors mapped onto stable codes; never a 5xx for bad input. */
function fromFramework(e: unknown): BrokerError | undefined {
  const type = (e as { type?: string } | null)?.type;
  if (type === 'entity.too.large') return new BrokerError('request_malformed', 'request body over the limit');
  if (type === 'entity.parse.failed') return new BrokerError('request_malformed', 'body is not valid JSON');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new BrokerError('unsupported_media_type', String(type));
  if (type === 'request.aborted' || type === 'request.size.invalid') return new BrokerError('request_malformed', String(type));
  return undefined;
}

/**
 * The single place where a request's error becomes its answer and its log line, for the express
 * app and the hot routes (hotRoutes.ts) alike. An answer already under way is left as it is;
 * `close` ends the connection after the answer (a request whose body was not read to its end).
 */
export function answerError(log: Logger, req: IncomingMessage, res: ServerResponse, e: unknown, requestId: string, path: string, opts: { close?: boolean } = {}): void {
  const err = fromFramework(e) ?? asBrokerError(e);
  const line = { requestId, method: req.method, path, code: err.code, reason: err.reason };
  if (err.status >= 500) log.error({ ...line, stack: err.stack, cause: String(err.cause ?? '') }, 'request failed');
  else log.info(line, 'request refused');
  if (res.headersSent) return;
  writeProblem(res, err, requestId, opts);
}

/** The express app's error handler. */
export function errorHandler(log: Logger) {
  return (e: unknown, req: Request, res: Response, _next: NextFunction): void => answerError(log, req, res, e, (res.locals as RequestLocals).requestId, req.path);
}
