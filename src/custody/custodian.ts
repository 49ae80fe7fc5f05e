/**
 * The key-custody seam. A custodian holds the key-encryption key (KEK) and never exposes it, nor
 * any data key: it makes data keys already wrapped for the keystore, and re-encrypts a wrapped
 * data key to an attested agent's ephemeral key. Backends: software (default) and pkcs11.
 */
import { BrokerError } from '../errors.js';
import type { RecipientJwk, RecipientKeyType, ReleasedKey } from '../protocol.js';

/** Identifies one key version; it is bound to the wrapped blob as associated data. */
export interface KeyRef {
  name: string;
  version: number;
}

/** A data key as the keystore holds it: opaque bytes only its custodian can unwrap. */
export interface WrappedKey {
  /** The custody backend and mechanism, e.g. `software:A256GCM`, `pkcs11:AES_KEY_WRAP_PAD`. */
  alg: string;
  /** Identifies the KEK that wrapped it (a fingerprint or label), so a mismatch fails closed. */
  kekId: string;
  blob: Buffer;
}

export interface KeyCustodian {
  readonly kind: 'software' | 'pkcs11';
  /** Identifies the KEK (a fingerprint or token label); the store records the one that wraps its keys. */
  readonly kekId: string;
  /** Recipient key types this custodian can release to, preferred first. */
  readonly recipientKeyTypes: readonly RecipientKeyType[];
  /** Generates a new 256-bit data key inside custody and returns it wrapped under the KEK. */
  generate(ref: KeyRef): Promise<WrappedKey>;
  /** Unwraps `wrapped` and encrypts it to `recipient`, returning the wire form for the agent. */
  releaseTo(ref: KeyRef, wrapped: WrappedKey, recipient: RecipientJwk): Promise<ReleasedKey>;
  /**
   * Proves that `wrapped` unwraps under this KEK and belongs to `ref`, without releasing it (the
   * unwrapped key is discarded at once). Throws BrokerError('custody_unavailable') otherwise.
   * Readiness uses it on one existing key version.
   */
  check(ref: KeyRef, wrapped: WrappedKey): Promise<void>;
  /** Throws BrokerError('custody_unavailable') when the custodian cannot serve. */
  health(): Promise<void>;
  close(): Promise<void>;
}

/** The associated data that binds a wrapped blob to its key name and version. */
export const keyAad = (ref: KeyRef): Buffer => Buffer.from(`keyanchor:key:v1:${ref.name}:${ref.version}`, 'utf8');

/**
 * What health() throws when custody answers but a release would fail (a mechanism or hash the token
 * refuses). `summary` names the cause in config terms, without HSM detail, so `/readyz` can show it;
 * `reason` (with the CKR_* and the rest) is for the log.
 */
export class CustodyNotReady extends BrokerError {
  constructor(
    readonly summary: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('custody_unavailable', reason, options);
  }
}
