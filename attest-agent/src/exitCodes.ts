/**
 * Exit codes: one distinct, documented number per error code. The table is a typed literal so the
 * compiler rejects a missing broker problem code, and numbers stay stable when the protocol grows.
 *
 *   0      success (for `exec`: the program's own exit status is passed through instead;
 *          128+N when the program was killed by signal N)
 *   1–9    local usage/configuration/measurement/delivery failures
 *   10–34  broker problem codes (one per code in PROBLEM_STATUS)
 *   40–47  transport, response, runtime and isolation failures
 *   50–69  broker problem codes added later (one per code in PROBLEM_STATUS)
 */
import type { ProblemCode } from '../../src/protocol.js';
import type { AgentErrorCode, LocalCode } from './errors.js';

interface Entry { readonly exit: number; readonly message: string }

const LOCAL: Readonly<Record<LocalCode, Entry>> = {
  usage: { exit: 1, message: 'invalid command line' },
  config: { exit: 2, message: 'invalid local configuration (files, options, key specs)' },
  node_cert_expired: { exit: 3, message: 'the node certificate is outside its validity period' },
  node_key_mismatch: { exit: 4, message: 'the node private key does not match the node certificate' },
  measurement_failed: { exit: 5, message: 'could not measure the program' },
  image_layout_invalid: { exit: 6, message: 'the OCI image layout is missing, ambiguous or does not verify' },
  signature_unreadable: { exit: 7, message: 'a publisher signature or certificate file could not be read' },
  tmpfs_refused: { exit: 8, message: 'refused to write a key file outside a tmpfs' },
  delivery_failed: { exit: 9, message: 'could not deliver a released key (file exists, write failed)' },
  network_unreachable: { exit: 40, message: 'the broker could not be reached (after retries)' },
  timeout: { exit: 41, message: 'the broker did not answer in time (after retries)' },
  tls_failed: { exit: 42, message: 'TLS to the broker failed (check --ca and the broker URL)' },
  broker_response_invalid: { exit: 43, message: 'the broker answered with something that is not the protocol' },
  release_invalid: { exit: 44, message: 'a released key did not decrypt or did not match the request' },
  exec_failed: { exit: 45, message: 'the program could not be started' },
  agent_internal: { exit: 46, message: 'internal agent error' },
  node_key_exposed: { exit: 47, message: 'refused to start a program whose user could read the node key (see --user, --allow-shared-uid)' },
};

const BROKER: Readonly<Record<ProblemCode, Entry>> = {
  request_malformed: { exit: 10, message: 'the broker rejected the request as malformed' },
  evidence_malformed: { exit: 11, message: 'the broker rejected the evidence as malformed' },
  nonce_unknown: { exit: 12, message: 'the broker does not know the challenge nonce' },
  nonce_expired: { exit: 13, message: 'the challenge nonce expired before the evidence arrived' },
  nonce_replayed: { exit: 14, message: 'the challenge nonce was already used' },
  evidence_signature_invalid: { exit: 15, message: 'the evidence signature did not verify' },
  node_untrusted: { exit: 16, message: 'the broker does not trust this node certificate' },
  clock_skew: { exit: 17, message: "the evidence time is too far from the broker's clock" },
  software_not_approved: { exit: 18, message: 'policy does not approve this software' },
  key_not_granted: { exit: 19, message: 'policy does not grant a requested key to this software' },
  key_unknown: { exit: 20, message: 'a requested key (or version) does not exist' },
  not_found: { exit: 21, message: 'the broker has no such endpoint (check --broker)' },
  method_not_allowed: { exit: 22, message: 'the broker does not allow this method on the endpoint' },
  evidence_too_large: { exit: 23, message: 'the evidence is larger than the protocol allows' },
  unsupported_media_type: { exit: 24, message: 'the broker rejected the request content type' },
  unauthorized: { exit: 25, message: 'the broker requires authentication' },
  forbidden: { exit: 26, message: 'the broker forbids this request' },
  key_exists: { exit: 27, message: 'the key already exists' },
  key_state_invalid: { exit: 28, message: 'the key is not in a state that allows release' },
  challenge_capacity: { exit: 29, message: 'the broker is out of challenge capacity, try later' },
  custody_unavailable: { exit: 30, message: "the broker's key custody is unavailable" },
  store_unavailable: { exit: 31, message: "the broker's state store is unavailable" },
  recipient_unsupported: { exit: 32, message: "the broker cannot release to the agent's recipient key type" },
  internal: { exit: 33, message: 'the broker failed internally' },
  audit_unavailable: { exit: 34, message: "the broker's audit log is unavailable, so it released nothing" },
  rate_limited: { exit: 50, message: 'the broker rate-limited this release; retry after the time it gave' },
  suspended: { exit: 51, message: "releases to this workload, node, zone or key are suspended (an alarm, an operator, or the policy's node deny-list)" },
  policy_expired: { exit: 52, message: "the broker's policy has expired, so it releases nothing" },
  recipient_invalid: { exit: 53, message: "the broker rejected the agent's ephemeral recipient key" },
  overloaded: { exit: 54, message: 'the broker is overloaded, try later' },
  shutting_down: { exit: 55, message: 'the broker is shutting down, try again (another replica)' },
  request_timeout: { exit: 56, message: 'the broker timed out reading the request' },
  expectation_failed: { exit: 57, message: 'the broker does not support the Expect header' },
  request_headers_too_large: { exit: 58, message: 'the request headers were too large for the broker' },
  policy_rejected: { exit: 59, message: 'the broker rejected a policy' },
  suspension_unknown: { exit: 60, message: 'no such suspension' },
};

export type ExitCodeSource = 'local' | 'broker';
export interface ExitCodeRow { code: AgentErrorCode; exit: number; source: ExitCodeSource; message: string }

/** Every code with its exit status, sorted by exit status. */
export const EXIT_CODE_TABLE: readonly ExitCodeRow[] = Object.freeze(
  [
    ...Object.entries(LOCAL).map(([code, e]) => ({ code: code as LocalCode, source: 'local' as const, ...e })),
    ...Object.entries(BROKER).map(([code, e]) => ({ code: code as ProblemCode, source: 'broker' as const, ...e })),
  ].sort((a, b) => a.exit - b.exit),
);

/** Exit status for every code. */
export const EXIT_CODES: Readonly<Record<AgentErrorCode, number>> = Object.freeze(
  Object.fromEntries(EXIT_CODE_TABLE.map((r) => [r.code, r.exit])) as Record<AgentErrorCode, number>,
);

export const exitCodeFor = (code: AgentErrorCode): number => EXIT_CODES[code];

/** The one-line meaning of a code, as printed in the table and for broker problems. */
export const describeCode = (code: AgentErrorCode): string =>
  EXIT_CODE_TABLE.find((r) => r.code === code)?.message ?? code;

/** The table as printed by `attest-agent exit-codes`. */
export function formatExitCodeTable(): string {
  const lines = ['exit  source  code                         meaning', '   0  -       ok                           success (exec: the program\'s own status; 128+N if killed by signal N)'];
  for (const r of EXIT_CODE_TABLE) {
    lines.push(`${String(r.exit).padStart(4)}  ${r.source.padEnd(6)}  ${r.code.padEnd(27)}  ${r.message}`);
  }
  return `${lines.join('\n')}\n`;
}
