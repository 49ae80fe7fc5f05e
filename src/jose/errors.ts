/**
 * The one error type of the JOSE module, after jose's `JOSEError`: a stable `code` to branch on
 * and a message for the log. Callers turn it into their own error (a BrokerError with a problem
 * code in the broker, an AgentError in the agent); the message never carries key material.
 */
export type JoseErrorCode =
  /** Not a compact serialization, bad base64url, bad JSON, a duplicate member, a bad field. */
  | 'ERR_JOSE_INVALID'
  /** `alg` or `enc` outside what the caller allows, `crit`, `zip`, or a key unfit for the alg. */
  | 'ERR_JOSE_NOT_ALLOWED'
  /** The JWS signature does not verify. */
  | 'ERR_JWS_SIGNATURE_INVALID'
  /** The JWE does not decrypt: key unwrap or AES-GCM authentication failed. */
  | 'ERR_JWE_DECRYPTION_FAILED'
  /** The recipient or signing key cannot be used (node:crypto refused it). */
  | 'ERR_JOSE_KEY_INVALID';

export class JoseError extends Error {
  override readonly name = 'JoseError';
  readonly code: JoseErrorCode;

  constructor(code: JoseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const isJoseError = (e: unknown): e is JoseError => e instanceof JoseError;
