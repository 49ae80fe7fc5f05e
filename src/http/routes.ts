/** Thin handlers: validate → call the service → respond. */
import express, { type Request, type Response, type Router } from 'express';
import type { AuditLog } from '../audit/auditLog.js';
import type { NonceService } from '../attestation/nonces.js';
import { CustodyNotReady, type KeyCustodian } from '../custody/custodian.js';
import { BrokerError } from '../errors.js';
import type { Logger } from '../log.js';
import { AttestRequestSchema, MAX_EVIDENCE_BYTES, PROTOCOL_VERSION, type AttestResponse, type ChallengeResponse } from '../protocol.js';
import { attestAndRelease, type ReleaseDeps, type Trail } from '../release.js';
import { asBrokerError } from '../errors.js';
import { brokerVersion } from '../version.js';
import { sendProblem, type RequestLocals } from './problem.js';
import { rawJsonBody, strictJsonBody } from './strictBody.js';

export interface RouteDeps {
  nonces: NonceService;
  audit: AuditLog;
  custodian: Pick<KeyCustodian, 'recipientKeyTypes' | 'health'>;
  release: ReleaseDeps;
  log: Logger;
  /** The policy in force, for /readyz: expired means not ready; unsigned is said. */
  policyStatus?: () => { signed: boolean; version: number | null; expires: string | null; expired: boolean; warning?: string };
}

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
    const n = await deps.nonces.issue();
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
    const parsed = AttestRequestSchema.safeParse(strictJsonBody(req));
    const trail: Trail = {};
    try {
      if (!parsed.success) throw new BrokerError('request_malformed', 'body must be {"evidence": "<compact JWS>"}');
      const keys = await attestAndRelease(deps.release, parsed.data.evidence, trail);
      // The record is written before the keys leave; if it cannot be, they do not leave.
      await deps.audit.record({ event: 'release', requestId, ...trail }).catch((e: unknown) => {
        throw new BrokerError('audit_unavailable', 'the release could not be recorded', { cause: e });
      });
      deps.log.info({ event: 'attest', requestId, outcome: 'released', ...trail }, 'keys released');
      const out: AttestResponse = { requestId, keys };
      res.status(200).json(out);
    } catch (e) {
      const err = asBrokerError(e);
      deps.log.warn({ event: 'attest', requestId, outcome: 'refused', code: err.code, reason: err.reason, ...trail }, 'attestation refused');
      if (err.code !== 'audit_unavailable') {
        await deps.audit.record({ event: 'refusal', requestId, code: err.code, reason: err.reason, ...trail }).catch((ae: unknown) => {
          deps.log.error({ requestId, err: String(ae) }, 'could not record a refusal in the audit log');
        });
      }
      throw err;
    }
  });
  r.all('/v1/attest', methodNotAllowed);

  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', version: brokerVersion() });
  });
  r.get('/readyz', async (_req, res) => {
    try {
      await deps.custodian.health();
    } catch (e) {
      if (!(e instanceof CustodyNotReady)) throw e;
      // A token that answers but cannot release: say why in config terms; the HSM detail stays in the log.
      deps.log.warn({ code: e.code, reason: e.reason }, 'not ready');
      return sendProblem(res, e, `not ready: ${e.summary}`);
    }
    const p = deps.policyStatus?.();
    if (p?.expired) throw new BrokerError('policy_expired', `the policy bundle in force expired at ${p.expires}`);
    res.json({ status: 'ready', ...(p ? { policy: { signed: p.signed, version: p.version, expires: p.expires, ...(p.warning ? { warning: p.warning } : {}) } } : {}) });
  });
  return r;
}
