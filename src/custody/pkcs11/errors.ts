/**
 * How PKCS#11 failures become broker errors. pkcs11js throws a `Pkcs11Error` whose `code` is the
 * CK_RV number (its message is the CKR_ name); we branch on that number only, never on text.
 * Every failure the broker sees is a BrokerError('custody_unavailable'): the client learns
 * nothing more, the log gets the operation and the CKR_ name in `reason`, and the native error
 * stays as `cause`.
 */
import { BrokerError } from '../../errors.js';
import { CKR, ckrName } from './constants.js';

/**
 * What a failure calls for before the one retry: `session` reopens the pool's sessions, logs in
 * again and re-finds the KEK; `module` also finalizes and re-initializes the library first.
 */
export type Recovery = 'session' | 'module';

const SESSION_LEVEL: ReadonlySet<number> = new Set([
  CKR.SESSION_HANDLE_INVALID,
  CKR.SESSION_CLOSED,
  CKR.USER_NOT_LOGGED_IN,
  // A stale KEK handle (the token was reloaded, or the object store re-read): re-find it.
  CKR.KEY_HANDLE_INVALID,
  CKR.WRAPPING_KEY_HANDLE_INVALID,
  CKR.UNWRAPPING_KEY_HANDLE_INVALID,
  CKR.OBJECT_HANDLE_INVALID,
]);

const MODULE_LEVEL: ReadonlySet<number> = new Set([
  CKR.CRYPTOKI_NOT_INITIALIZED,
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.DEVICE_ERROR,
]);

/** Login failures that retrying would only make worse (each attempt counts towards a PIN lockout). */
const PIN_FATAL: ReadonlySet<number> = new Set([CKR.PIN_INCORRECT, CKR.PIN_INVALID, CKR.PIN_LEN_RANGE, CKR.PIN_EXPIRED, CKR.PIN_LOCKED]);

/** The CK_RV of a pkcs11js error, or undefined for anything else (TypeError, dlopen failure…). */
export function ckrOf(e: unknown): number | undefined {
  if (!(e instanceof Error) || e.name !== 'Pkcs11Error') return undefined;
  const code = (e as Error & { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

export const isCkr = (e: unknown, rv: number): boolean => ckrOf(e) === rv;

/** Raised by the backend itself when a check, not a CK_RV, shows a session lost its login. */
export class SessionLostError extends Error {
  override readonly name = 'SessionLostError';
}

export function recoveryFor(e: unknown): Recovery | undefined {
  if (e instanceof SessionLostError) return 'session';
  const rv = ckrOf(e);
  if (rv === undefined) return undefined;
  if (MODULE_LEVEL.has(rv)) return 'module';
  if (SESSION_LEVEL.has(rv)) return 'session';
  return undefined;
}

export const isPinFatal = (e: unknown): boolean => PIN_FATAL.has(ckrOf(e) ?? -1);

/** `CKR_WRAPPED_KEY_INVALID`, or the error's class for a non-PKCS#11 failure. */
export function failureName(e: unknown): string {
  const rv = ckrOf(e);
  if (rv !== undefined) return ckrName(rv);
  return e instanceof Error ? e.name : 'error';
}

/** Wraps `e` as custody_unavailable naming the operation; a BrokerError passes through unchanged. */
export function custodyError(what: string, e: unknown): BrokerError {
  if (e instanceof BrokerError) return e;
  return new BrokerError('custody_unavailable', `pkcs11: ${what} failed: ${failureName(e)}`, { cause: e });
}
