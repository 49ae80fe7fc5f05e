/**
 * The two routes every release takes, `POST /v1/challenge` and `POST /v1/attest`, served on
 * node:http directly; every other request goes on to the express app (health, readiness, the
 * admin API, 404s).
 *
 * Why these two left express: on the release path, express's router, its per-request prototype
 * swap of `req` and `res`, body-parser and `res.json` cost ≈ 0.2 ms of CPU per release, which was
 * ≈ 15 % of the broker's (docs/benchmarks.md, "HTTP"), and served nothing these routes need. They
 * keep what the express routes did: the same body rules (strictBody.ts), `405` for another method,
 * the same headers, and errors answered and logged by the one mapping (problem.ts → errors.ts).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { asBrokerError, BrokerError } from '../errors.js';
import { AttestRequestSchema, MAX_EVIDENCE_BYTES, PROTOCOL_VERSION, type AttestResponse, type ChallengeResponse } from '../protocol.js';
import { attestAndRelease, type Attempt } from '../release.js';
import { COMMON_HEADERS, newRequestId } from '../server/problemResponse.js';
import { answerError } from './problem.js';
import type { RouteDeps } from './routes.js';
import { readJsonBody } from './strictBody.js';

/** The body limit of both routes: the evidence, and room for its JSON envelope. */
const BODY_LIMIT = MAX_EVIDENCE_BYTES + 4096;

type Route = (req: IncomingMessage, res: ServerResponse, requestId: string) => Promise<void>;

/** The client's address as the socket sees it (behind a proxy, the proxy's). */
export const sourceOf = (req: IncomingMessage): string => {
  const a = req.socket.remoteAddress ?? 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
};

export function withHotRoutes(deps: RouteDeps, next: RequestListener): RequestListener {
  const routes = new Map<string, Route>([
    ['/v1/challenge', challengeRoute(deps)],
    ['/v1/attest', attestRoute(deps)],
  ]);
  return (req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = routes.get(path);
    if (!route) return next(req, res);
    const requestId = newRequestId();
    const fail = (e: unknown) => answerError(deps.log, req, res, e, requestId, path, { close: !req.complete });
    if (req.method !== 'POST') return fail(new BrokerError('method_not_allowed', 'wrong method'));
    route(req, res, requestId).catch(fail);
  };
}

function challengeRoute(deps: RouteDeps): Route {
  const ttlSeconds = Math.round(deps.nonces.ttlMs / 1000);
  const recipientKeyTypes = [...deps.custodian.recipientKeyTypes];
  return async (req, res, requestId) => {
    const body = await readJsonBody(req, { limit: BODY_LIMIT, tooLarge: 'request_malformed', required: false });
    if (body !== undefined && !isEmptyObject(body.value)) throw new BrokerError('request_malformed', 'challenge body must be empty or {}');
    try {
      deps.challengeLimiter.take(sourceOf(req));
    } catch (e) {
      deps.metrics.challengeLimited();
      throw e;
    }
    const n = deps.nonces.issue();
    deps.metrics.challenge();
    const out: ChallengeResponse = { nonce: n.nonce, expiresAt: new Date(n.expiresAt).toISOString(), ttlSeconds, protocolVersion: PROTOCOL_VERSION, recipientKeyTypes };
    sendJson(res, requestId, out);
  };
}

function attestRoute(deps: RouteDeps): Route {
  return async (req, res, requestId) => {
    const attempt: Attempt = { requestId, source: sourceOf(req), bytes: Number(req.headers['content-length'] ?? 0) || 0 };
    const started = performance.now();
    let leave: (() => void) | undefined;
    try {
      let evidence: string;
      try {
        leave = deps.inFlight.enter(); // 503 overloaded before a byte of the body is read
        const body = await readJsonBody(req, { limit: BODY_LIMIT, tooLarge: 'evidence_too_large', required: true });
        attempt.bytes = body!.bytes;
        const parsed = AttestRequestSchema.safeParse(body!.value);
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
      sendJson(res, requestId, out);
      deps.metrics.attest('released', (performance.now() - started) / 1000);
    } catch (e) {
      const err = asBrokerError(e);
      deps.log.warn({ event: 'attest', requestId, source: attempt.source, outcome: 'refused', code: err.code, reason: err.reason }, 'attestation refused');
      deps.metrics.attest('refused', (performance.now() - started) / 1000);
      throw err;
    } finally {
      leave?.();
    }
  };
}

const isEmptyObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

function sendJson(res: ServerResponse, requestId: string, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'X-Request-Id': requestId,
    ...COMMON_HEADERS,
  });
  res.end(body);
}
