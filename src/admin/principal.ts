/**
 * Who an admin caller is: the principal strings the policy's `teams[].members` name, and the one
 * the audit trail records as the actor. An Authenticator turns a request into a Caller or throws
 * BrokerError('unauthorized'); it never decides what the caller may do (that is authorize.ts).
 */
import type { IncomingMessage } from 'node:http';

/**
 * Principal strings, each namespaced by how it was proven, so a JWT `sub` can never pose as a
 * certificate subject: `jwt:sub:<sub>`, `jwt:group:<group>`, `cert:subject:<DN>`, `cert:uri:<SAN URI>`.
 */
export type Principal = `jwt:sub:${string}` | `jwt:group:${string}` | `cert:subject:${string}` | `cert:uri:${string}`;

export interface Caller {
  /** Every principal the credential proves; a team matches when it lists any of them. */
  readonly principals: readonly Principal[];
  /** The most specific principal (`jwt:sub:…` or `cert:subject:…`): what the audit trail records. */
  readonly actor: Principal;
}

/** The authentication seam of the admin API. */
export interface Authenticator {
  /** True when bearer tokens are accepted: a 401 then carries `WWW-Authenticate: Bearer`. */
  readonly bearer: boolean;
  /** Resolves the caller, or throws BrokerError('unauthorized') with the reason for the log only. */
  authenticate(req: IncomingMessage): Promise<Caller>;
  /** Re-reads the bearer-token keys (the JWKS file); throws ConfigError and keeps the old ones when the new ones are bad. */
  reload(): void;
}
