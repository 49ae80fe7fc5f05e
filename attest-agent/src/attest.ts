/**
 * One attestation, top to bottom: challenge → fresh recipient key → signed evidence → attest →
 * open the released keys.
 *
 * Retries wrap the whole exchange, not single requests: the broker consumes a nonce when it
 * receives evidence, so re-sending the same evidence after a 5xx or a lost answer would only earn
 * `nonce_replayed`. Each attempt gets a new nonce and a new ephemeral key; anything released to
 * an abandoned attempt is encrypted to a key that no longer exists.
 *
 * Start-up time: the challenge does not depend on the workload, so `openAttestation` sends it
 * before the workload is measured, and starts making the recipient key as soon as the answer says
 * which type the broker wants (an RSA key, for HSM custody, takes longer than the rest together).
 * Told the type beforehand (`--recipient-type RSA`), it makes the key at once, alongside the first
 * request; a broker that does not offer that type gets a key of the type it names, made then.
 * `exec` and `fetch` run that opening while they hash the program; the first attempt uses it.
 */
import http from 'node:http';
import https from 'node:https';
import { AttestResponseSchema, ChallengeResponseSchema, type ChallengeResponse, type RecipientKeyType } from '../../src/protocol.js';
import { postJson, type ClientOptions } from './client.js';
import { AgentError } from './errors.js';
import { buildEvidence, type KeyRequest, type WorkloadClaims } from './evidence.js';
import type { NodeIdentity } from './nodeIdentity.js';
import { chooseRecipientType, createRecipient, type Recipient } from './recipient.js';
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

/** The first steps of an exchange, started early: the challenge on its own connection, then the recipient key. */
export interface Opening {
  readonly connection: http.Agent;
  readonly challenge: Promise<ChallengeResponse>;
  readonly recipient: Promise<Recipient>;
  /** Releases the connection (idempotent); for an opening that will not be used. */
  close(): void;
}

/** One keep-alive connection for one exchange: the challenge and the attest share one TLS handshake. */
const exchangeConnection = (broker: string) => new (broker.startsWith('https:') ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });

export function openAttestation(options: ClientOptions, expect?: RecipientKeyType): Opening {
  const connection = options.connection ?? exchangeConnection(options.broker);
  const challenge = postJson({ ...options, connection }, 'v1/challenge', {}, ChallengeResponseSchema);
  const early = expect === undefined ? undefined : createRecipient(expect);
  const recipient = challenge.then((c) =>
    early && c.recipientKeyTypes.includes(expect!) ? early : createRecipient(chooseRecipientType(c.recipientKeyTypes)));
  // Whoever uses the opening sees these failures; an opening dropped unused must not crash the process.
  for (const p of [challenge, recipient, early]) p?.catch(() => undefined);
  return { connection, challenge, recipient, close: () => { if (!options.connection) connection.destroy(); } };
}

export async function attestOnce(options: AttestOptions, opening: Opening = openAttestation(options)): Promise<AttestResult> {
  try {
    return await exchange(options, opening);
  } finally {
    opening.close();
  }
}

async function exchange(options: AttestOptions, opening: Opening): Promise<AttestResult> {
  const challenge = await opening.challenge;
  const recipient = await opening.recipient;
  const evidence = await buildEvidence({
    node: options.node,
    nonce: challenge.nonce,
    workload: options.workload,
    keys: options.keys,
    recipient: recipient.publicJwk,
    now: options.now?.() ?? new Date(),
  });
  const answer = await postJson({ ...options, connection: opening.connection }, 'v1/attest', { evidence }, AttestResponseSchema);
  const { keys, versions } = await openReleasedKeys(answer.keys, options.keys, recipient);
  return { requestId: answer.requestId, keys, versions };
}

/**
 * Attests with bounded retries. The first attempt uses `opening` when given; a nonce that expired
 * while the program was being measured (a very large one) earns one fresh attempt.
 */
export function attest(options: AttestOptions, opening?: Opening): Promise<AttestResult> {
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...options.retry, retries: options.retries ?? options.retry?.retries ?? DEFAULT_RETRY.retries };
  let early = opening;
  return withRetries(async () => {
    const head = early;
    early = undefined;
    if (!head) return attestOnce(options);
    try {
      return await attestOnce(options, head);
    } catch (err) {
      if (err instanceof AgentError && err.code === 'nonce_expired') return attestOnce(options);
      throw err;
    }
  }, policy);
}
