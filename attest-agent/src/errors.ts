/**
 * The agent's one error type. Every failure the agent reports carries a stable `code`: either a
 * broker problem code (from the protocol) or one of the local codes below. Callers branch on
 * `code`, never on message text. Messages never contain key material.
 */
import type { ProblemCode } from '../../src/protocol.js';

/** Failures detected by the agent itself, before or after talking to the broker. */
export const LOCAL_CODES = [
  'usage',
  'config',
  'node_cert_expired',
  'node_key_mismatch',
  'measurement_failed',
  'image_layout_invalid',
  'signature_unreadable',
  'tmpfs_refused',
  'delivery_failed',
  'network_unreachable',
  'timeout',
  'tls_failed',
  'broker_response_invalid',
  'release_invalid',
  'exec_failed',
  'agent_internal',
  'node_key_exposed',
] as const;
export type LocalCode = (typeof LOCAL_CODES)[number];
export type AgentErrorCode = LocalCode | ProblemCode;

export interface AgentErrorOptions {
  cause?: unknown;
  /** The broker's request id, when the broker answered. */
  requestId?: string;
  /** True when trying the whole exchange again might succeed (network errors, 5xx). */
  retryable?: boolean;
  /** HTTP status of the broker's answer, when there was one. */
  status?: number;
  /** The broker's Retry-After, in seconds, when it sent one. */
  retryAfterSeconds?: number;
}

export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly code: AgentErrorCode;
  readonly requestId: string | undefined;
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: AgentErrorCode, message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.requestId = options.requestId;
    this.retryable = options.retryable ?? false;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const isAgentError = (err: unknown): err is AgentError => err instanceof AgentError;

/** Wraps anything thrown into an AgentError; unknown errors become `agent_internal`. */
export function toAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new AgentError('agent_internal', `unexpected error: ${oneLine(text)}`, { cause: err });
}

/** The one-line form printed on stderr: `attest-agent: <code>: <message> (request <id>)`. */
export function formatAgentError(err: AgentError): string {
  const request = err.requestId ? ` (request ${err.requestId})` : '';
  return `attest-agent: ${err.code}: ${oneLine(err.message)}${request}`;
}

/** Collapses whitespace and caps length so that an error always fits on one line. */
export function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
