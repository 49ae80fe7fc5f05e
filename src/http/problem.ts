import type { NextFunction, Request, Response } from 'express';
import { asBrokerError, BrokerError, toProblem } from '../errors.js';
import type { Logger } from '../log.js';

export interface RequestLocals {
  requestId: string;
}

/** `detail` only where it tells a client nothing it could exploit (the readiness summary). */
export function sendProblem(res: Response, err: BrokerError, detail?: string): void {
  const requestId = (res.locals as RequestLocals).requestId;
  if (err.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(err.retryAfterSeconds));
  else if (err.status === 503) res.setHeader('Retry-After', '1');
  res.status(err.status).type('application/problem+json').send(JSON.stringify({ ...toProblem(err, requestId), ...(detail ? { detail } : {}) }));
}

/** Body-parser and other framework errors mapped onto stable codes; never a 5xx for bad input. */
function fromFramework(e: unknown, path: string): BrokerError | undefined {
  const type = (e as { type?: string } | null)?.type;
  if (type === 'entity.too.large') {
    return new BrokerError(path === '/v1/attest' ? 'evidence_too_large' : 'request_malformed', 'request body over the limit');
  }
  if (type === 'entity.parse.failed') return new BrokerError('request_malformed', 'body is not valid JSON');
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new BrokerError('unsupported_media_type', String(type));
  if (type === 'request.aborted' || type === 'request.size.invalid') return new BrokerError('request_malformed', String(type));
  return undefined;
}

/** The single place where errors become HTTP responses (and log lines). */
export function errorHandler(log: Logger) {
  return (e: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const err = fromFramework(e, req.path) ?? asBrokerError(e);
    const requestId = (res.locals as RequestLocals).requestId;
    const line = { requestId, method: req.method, path: req.path, code: err.code, reason: err.reason };
    if (err.status >= 500) log.error({ ...line, stack: err.stack, cause: String(err.cause ?? '') }, 'request failed');
    else log.info(line, 'request refused');
    if (res.headersSent) return;
    sendProblem(res, err);
  };
}
