/** Thin handlers: validate → call the service → respond. */
import express, { type Request, type Response, type Router } from 'express';
import type { NonceService } from '../attestation/nonces.js';
import type { SourceLimiter } from '../attestation/sourceLimiter.js';
import type { KeyCustodian } from '../custody/custodian.js';
import { BrokerError } from '../errors.js';
import type { Logger } from '../log.js';
import { AttestRequestSchema, MAX_EVIDENCE_BYTES, PROTOCOL_VERSION, type AttestResponse, type ChallengeResponse } from '../protocol.js';
import type { Readiness } from '../readiness.js';
import { attestAndRelease, type Attempt, type ReleaseDeps } from '../release.js';
import { asBrokerError } from '../errors.js';
import type { RequestLocals } from './problem.js';

export interface RouteDeps {
  nonces: NonceService;
  /** Challenges per source address. */
  challengeLimiter: SourceLimiter;
  custodian: Pick<KeyCustodian, 'recipientKeyTypes'>;
  readiness: Readiness;
  release: ReleaseDeps;
  log: Logger;
}

/** The client's address as the socket sees it (behind a proxy, the proxy's). */
export const sourceOf = (req: Request): string => (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');

const json = express.json({ limit: MAX_EVIDENCE_BYTES + 4096, strict: true, type: 'application/json' });

/** Requires a JSON body (415 otherwise) and returns it. An absent body is allowed when `optional`. */
function jsonBody(req: Request, optional = false): unknown {
  if (req.body !== undefined) return req.body;
  const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
  if (optional && !hasBody && !req.headers['transfer-encoding']) return undefined;
  if (req.headers['content-type']) throw new BrokerError('unsupported_media_type', `content-type ${req.headers['content-type']}`);
  throw new BrokerError('request_malformed', 'a JSON body is required');
}

const methodNotAllowed = (_req: Request, _res: Response) => {
  throw new BrokerError('method_not_allowed', 'wrong method');
};

export function apiRoutes(deps: RouteDeps): Router {
  const r = express.Router();

  r.post('/v1/challenge', json, async (req, res) => {
    const body = jsonBody(req, true);
    if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0)) {
      throw new BrokerError('request_malformed', 'challenge body must be empty or {}');
    }
    deps.challengeLimiter.take(sourceOf(req));
    const n = deps.nonces.issue();
    const out: ChallengeResponse = {
      nonce: n.nonce,
      expiresAt: new Date(n.expiresAt).toISOString(),
      ttlSeconds: Math.round(deps.nonces.ttlMs / 1000),
      protocolVersion: PROTOCOL_VERSION,
      recipientKeyTypes: [...deps.custodian.recipientKeyTypes],
    };
    res.status(200).json(out);
  });
  r.all('/v1/challenge', methodNotAllowed);

  r.post('/v1/attest', json, async (req, res) => {
    const { requestId } = res.locals as RequestLocals;
    const attempt: Attempt = { requestId, source: sourceOf(req), bytes: Number(req.headers['content-length'] ?? 0) || 0 };
    try {
      const parsed = AttestRequestSchema.safeParse(jsonBody(req));
      if (!parsed.success) {
        const err = new BrokerError('request_malformed', 'body must be {"evidence": "<compact JWS>"}');
        deps.release.refusals.note({ source: attempt.source, code: err.code, bytes: attempt.bytes });
        throw err;
      }
      // Recorded in the audit trail before the keys leave; if it cannot be, they do not leave.
      const { keys, trail } = await attestAndRelease(deps.release, parsed.data.evidence, attempt);
      deps.log.info({ event: 'attest', requestId, outcome: 'released', ...trail }, 'keys released');
      const out: AttestResponse = { requestId, keys };
      res.status(200).json(out);
    } catch (e) {
      const err = asBrokerError(e);
      deps.log.warn({ event: 'attest', requestId, source: attempt.source, outcome: 'refused', code: err.code, reason: err.reason }, 'attestation refused');
      throw err;
    }
  });
  r.all('/v1/attest', methodNotAllowed);

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (_req, res) => {
    await deps.readiness.check();
    res.json({ status: 'ready' });
  });
  return r;
}
