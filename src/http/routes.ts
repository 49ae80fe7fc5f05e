/** Thin handlers on express: health, readiness and metrics. The release path's two routes are in hotRoutes.ts. */
import express, { type Router } from 'express';
import type { NonceService } from '../attestation/nonces.js';
import type { SourceLimiter } from '../attestation/sourceLimiter.js';
import { CustodyNotReady, type KeyCustodian } from '../custody/custodian.js';
import { BrokerError } from '../errors.js';
import type { InFlight } from '../limits/inFlight.js';
import type { BrokerMetrics } from '../metrics/brokerMetrics.js';
import type { Logger } from '../log.js';
import type { Readiness } from '../readiness.js';
import type { ReleaseDeps } from '../release.js';
import { brokerVersion } from '../version.js';
import { sendProblem } from './problem.js';

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

export function apiRoutes(deps: RouteDeps): Router {
  const r = express.Router();
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
