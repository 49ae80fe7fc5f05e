import { PROBLEM_STATUS, problemType, type Problem, type ProblemCode } from './protocol.js';

const TITLES: Record<ProblemCode, string> = {
  request_malformed: 'The request is malformed',
  evidence_malformed: 'The evidence is malformed',
  nonce_unknown: 'The nonce is unknown',
  nonce_expired: 'The nonce has expired',
  nonce_replayed: 'The nonce was already used',
  evidence_signature_invalid: 'The evidence signature is invalid',
  node_untrusted: 'The node is not trusted',
  clock_skew: 'The evidence time is outside the allowed clock skew',
  software_not_approved: 'The software is not approved',
  key_not_granted: 'A requested key is not granted to this workload',
  key_unknown: 'A requested key does not exist',
  not_found: 'Not found',
  method_not_allowed: 'Method not allowed',
  evidence_too_large: 'The evidence is too large',
  unsupported_media_type: 'Unsupported media type',
  unauthorized: 'Authentication required',
  forbidden: 'Not allowed',
  key_exists: 'The key already exists',
  key_state_invalid: 'The key version is not in a state that allows this',
  challenge_capacity: 'Too many outstanding challenges; retry later',
  custody_unavailable: 'Key custody is unavailable; retry later',
  store_unavailable: 'The state store is unavailable; retry later',
  audit_unavailable: 'The audit log is unavailable; nothing was released',
  recipient_unsupported: 'The recipient key is not supported by this custody backend',
  recipient_invalid: 'The recipient key is invalid',
  request_timeout: 'The request took too long to arrive',
  expectation_failed: 'The Expect header is not supported',
  policy_rejected: 'The policy was rejected; the previous policy stays in force',
  rate_limited: 'Rate limit exceeded; retry later',
  request_headers_too_large: 'The request headers are too large',
  suspended: 'Releases to this subject are suspended',
  suspension_unknown: 'No such suspension',
  overloaded: 'The broker is overloaded; retry later',
  shutting_down: 'The broker is shutting down; retry on another replica',
  policy_expired: 'The policy has expired; nothing is released until a fresh one is loaded',
  internal: 'Internal error',
};

/**
 * The one error type of the broker. `code` is stable and is all a client learns; `reason` and
 * `cause` are for the log only.
 */
export class BrokerError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  /** Log-only detail: which check failed and why. Never sent to the client. */
  readonly reason: string;
  /** For 429 and 503: when to retry (the Retry-After header). */
  readonly retryAfterSeconds?: number;

  constructor(code: ProblemCode, reason: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(`${code}: ${TITLES[code]}`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'BrokerError';
    this.code = code;
    this.status = PROBLEM_STATUS[code];
    this.reason = reason;
    if (options?.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const isBrokerError = (e: unknown): e is BrokerError => e instanceof BrokerError;

/** Anything not a BrokerError is an internal fault: the client gets `internal`, nothing more. */
export function asBrokerError(e: unknown): BrokerError {
  if (isBrokerError(e)) return e;
  return new BrokerError('internal', e instanceof Error ? e.message : String(e), { cause: e });
}

/** The only mapping from an error to what the client sees (RFC 9457). */
export function toProblem(err: BrokerError, requestId: string): Problem {
  return {
    type: problemType(err.code),
    title: TITLES[err.code],
    status: err.status,
    code: err.code,
    requestId,
  };
}
