/**
 * One attestation, top to bottom: challenge → fresh recipient key → signed evidence → attest →
 * open the released keys.
 *
 * Retries wrap the whole exchange, not single requests: the broker consumes a nonce when it
 * receives evidence, so re-sending the same evidence after a 5xx or a lost answer would only earn
 * `nonce_replayed`. Each attempt gets a new nonce and a new ephemeral key; anything released to
 * an abandoned attempt is encrypted to a key that no longer exists.
 */
import http from 'node:http';
import https from 'node:https';
import { AttestResponseSchema, ChallengeResponseSchema } from '../../src/protocol.js';
import { postJson, type ClientOptions } from './client.js';
import { buildEvidence, type KeyRequest, type WorkloadClaims } from './evidence.js';
import type { NodeIdentity } from './nodeIdentity.js';
import { chooseRecipientType, createRecipient } from './recipient.js';
import { openReleasedKeys } from './release.js';
import { DEFAULT_RETRY, withRetries, type RetryPolicy } from './retry.js';

export interface AttestOptions extends ClientOptions {
  node: NodeIdentity;
  workload: WorkloadClaims;
  keys: KeyRequest[];
  /** Extra attempts after the first for network errors, timeouts and 5xx (default 3). */
  retries?: number;
  /** Backoff tuning and hooks (tests). `retries` above wins over `retry.retries`. */
  retry?: Partial<RetryPolicy>;
  /** Clock for the evidence `iat` (tests). */
  now?: () => Date;
}

export interface AttestResult {
  requestId: string;
  /** Raw key bytes by key name. The caller owns them: zero them when done (zeroKeys). */
  keys: Map<string, Buffer>;
  /** Released version by key name. */
  versions: Map<string, number>;
}

export async function attestOnce(options: AttestOptions): Promise<AttestResult> {
  // The challenge and the attest share one keep-alive connection: one TLS handshake, not two.
  // A caller that attests repeatedly (a benchmark, a sidecar) may pass its own pool instead.
  if (options.connection) return exchange(options);
  const connection = new (options.broker.startsWith('https:') ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
  try {
    return await exchange({ ...options, connection });
  } finally {
    connection.destroy();
  }
}

async function exchange(options: AttestOptions): Promise<AttestResult> {
  const challenge = await postJson(options, 'v1/challenge', {}, ChallengeResponseSchema);
  const recipient = await createRecipient(chooseRecipientType(challenge.recipientKeyTypes));
  const evidence = await buildEvidence({
    node: options.node,
    nonce: challenge.nonce,
    workload: options.workload,
    keys: options.keys,
    recipient: recipient.publicJwk,
    now: options.now?.() ?? new Date(),
  });
  const answer = await postJson(options, 'v1/attest', { evidence }, AttestResponseSchema);
  const { keys, versions } = await openReleasedKeys(answer.keys, options.keys, recipient);
  return { requestId: answer.requestId, keys, versions };
}

export function attest(options: AttestOptions): Promise<AttestResult> {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...options.retry, retries: options.retries ?? options.retry?.retries ?? DEFAULT_RETRY.retries };
  return withRetries(() => attestOnce(options), policy);
}
