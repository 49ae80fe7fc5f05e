/** Thin handlers: validate → call the service → respond. */
import { performance } from 'node:perf_hooks';
import express, { type Request, type Response, type Router } from 'express';
import type { NonceService } from '../attestation/nonces.js';
import type { SourceLimiter } from '../attestation/sourceLimiter.js';
import { CustodyNotReady, type KeyCustodian } from '../custody/custodian.js';
import { BrokerError } from '../errors.js';
import type { InFlight } from '../limits/inFlight.js';
import type { BrokerMetrics } from '../metrics/brokerMetrics.js';
import type { Logger } from '../log.js';
import { AttestRequestSchema, MAX_EVIDENCE_BYTES, PROTOCOL_VERSION, type AttestResponse, type ChallengeResponse } from '../protocol.js';
import type { Readiness } from '../readiness.js';
import { attestAndRelease, type Attempt, type ReleaseDeps } from '../release.js';
import { asBrokerError } from '../errors.js';
import { brokerVersion } from '../version.js';
import { sendProblem, type RequestLocals } from './problem.js';
import { rawJsonBody, strictJsonBody } from './strictBody.js';

export interface RouteDeps {
  nonces: NonceService;
  /** Challenges per source address. */
  challengeLimiter: SourceLimiter;
  custodian: Pick<KeyCustodian, 'recipientKeyTypes'>;
  readiness: Readiness;
  release: ReleaseDeps;
  log: Logger;
  /** Attestations decided at once, at most: beyond it 503 overloaded. */
  inFlight: InFlight;
  metrics: Pick<BrokerMetrics, 'challenge' | 'challengeLimited' | 'attest' | 'refused' | 'render'>;
  /** Serve GET /metrics on this app (false: metrics are off, or on their own listener). */
  serveMetrics: boolean;
  /** The controls in force, for /readyz: limits, alarms and denied nodes in the policy, active suspensions. */
  controlsStatus?: () => Record<string, number>;
  /** The policy in force, for /readyz: expired means not ready; unsigned is said. */
  policyStatus?: () => { signed: boolean; version: number | null; expires: string | null; expired: boolean; warning?: string };
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
    try {
      deps.challengeLimiter.take(sourceOf(req));
    } catch (e) {
      deps.metrics.challengeLimited();
      throw e;
    }
    const n = deps.nonces.issue();
    deps.metrics.challenge();
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

  r.post('/v1/attest', rawJsonBody, async (req, res) => {
    const { requestId } = res.locals as RequestLocals;
    const attempt: Attempt = { requestId, source: sourceOf(req), bytes: Number(req.headers['content-length'] ?? 0) || 0 };
    const started = performance.now();
    let leave: (() => void) | undefined;
    try {
      let evidence: string;
      try {
        leave = deps.inFlight.enter();
        const parsed = AttestRequestSchema.safeParse(strictJsonBody(req));
        if (!parsed.success) throw new BrokerError('request_malformed', 'body must be {"evidence": "<compact JWS>"}');
        evidence = parsed.data.evidence;
      } catch (e) {
        // Unauthenticated: counted for the source address, like every refusal before the signature check.
        deps.release.refusals.note({ source: attempt.source, code: asBrokerError(e).code, bytes: attempt.bytes });
        deps.metrics.refused(asBrokerError(e).code, []);
        throw e;
      }
      // Recorded in the audit trail before the keys leave; if it cannot be, they do not leave.
      const { keys, trail } = await attestAndRelease(deps.release, evidence, attempt);
      deps.log.info({ event: 'attest', requestId, outcome: 'released', ...trail }, 'keys released');
      const out: AttestResponse = { requestId, keys };
      res.status(200).json(out);
      deps.metrics.attest('released', (performance.now() - started) / 1000);
    } catch (e) {
      const err = asBrokerError(e);
      deps.log.warn({ event: 'attest', requestId, source: attempt.source, outcome: 'refused', code: err.code, reason: err.reason }, 'attestation refused');
      deps.metrics.attest('refused', (performance.now() - started) / 1000);
      throw err;
    } finally {
      leave?.();
    }
  });
  r.all('/v1/attest', methodNotAllowed);

  if (deps.serveMetrics) {
    r.get('/metrics', async (_req, res) => {
      const m = await deps.metrics.render();
      res.type(m.contentType).send(m.body);
    });
  }

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: brokerVersion() });
  });
  r.get('/readyz', async (_req, res) => {
    try {
      await deps.readiness.check();
    } catch (e) {
      if (!(e instanceof CustodyNotReady)) throw e;
      // A token that answers but cannot release: say why in config terms; the HSM detail stays in the log.
      deps.log.warn({ code: e.code, reason: e.reason }, 'not ready');
      return sendProblem(res, e, `not ready: ${e.summary}`);
    }
    const p = deps.policyStatus?.();
    if (p?.expired) throw new BrokerError('policy_expired', `the policy bundle in force expired at ${p.expires}`);
    res.json({
      status: 'ready',
      ...(p ? { policy: { signed: p.signed, version: p.version, expires: p.expires, ...(p.warning ? { warning: p.warning } : {}) } } : {}),
      ...(deps.controlsStatus ? { controls: deps.controlsStatus() } : {}),
    });
  });
  return r;
}
