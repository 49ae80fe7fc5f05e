/**
 * The loaded PKCS#11 library: lazy import of pkcs11js, C_Initialize/C_Finalize, token lookup and
 * logged-in sessions. The one place that turns a module path and a token selector into handles.
 *
 * A PKCS#11 library's state is per process: a second C_Initialize answers
 * CKR_CRYPTOKI_ALREADY_INITIALIZED, and C_Finalize ends every session in the process. So a
 * Pkcs11Library finalizes on release only if its own C_Initialize did the initializing.
 */
import type { PKCS11 } from 'pkcs11js';
import type { Pkcs11CustodyConfig } from '../../config.js';
import { BrokerError } from '../../errors.js';
import type { Secret } from '../../secret.js';
import { CKF, CKU_USER, CKR } from './constants.js';
import { custodyError, failureName, isCkr, isPinFatal } from './errors.js';

export type Handle = Buffer;

/** The part of pkcs11js's PKCS11 this backend calls; a test may hand in a recording wrapper. */
export type Pkcs11Module = Pick<
  PKCS11,
  | 'C_Initialize'
  | 'C_Finalize'
  | 'C_GetInfo'
  | 'C_GetSlotList'
  | 'C_GetTokenInfo'
  | 'C_GetMechanismList'
  | 'C_OpenSession'
  | 'C_CloseSession'
  | 'C_GetSessionInfo'
  | 'C_Login'
  | 'C_FindObjectsInit'
  | 'C_FindObjects'
  | 'C_FindObjectsFinal'
  | 'C_GetAttributeValue'
  | 'C_CreateObject'
  | 'C_DestroyObject'
  | 'C_GenerateKeyAsync'
  | 'C_GenerateKeyPair'
  | 'C_WrapKeyAsync'
  | 'C_UnwrapKeyAsync'
  | 'C_EncryptInit'
  | 'C_EncryptAsync'
  | 'C_SignInit'
  | 'C_SignAsync'
  | 'C_VerifyInit'
  | 'C_VerifyAsync'
  | 'close'
>;

/** Test seams; production code passes nothing. */
export interface Pkcs11Internals {
  /** Replaces how the module is loaded (default: pkcs11js, loaded on first use). */
  loadModule?: (modulePath: string) => Promise<Pkcs11Module>;
}

export type TokenSelector = Pkcs11CustodyConfig['token'];

/** Loads `modulePath` through pkcs11js, imported only now so the default install needs neither. */
export async function loadPkcs11js(modulePath: string): Promise<Pkcs11Module> {
  let lib: typeof import('pkcs11js');
  try {
    lib = (await import('pkcs11js')).default;
  } catch (e) {
    throw new BrokerError('custody_unavailable', 'pkcs11: the optional dependency pkcs11js is not installed or not built', { cause: e });
  }
  const mod = new lib.PKCS11();
  try {
    mod.load(modulePath);
  } catch (e) {
    throw new BrokerError('custody_unavailable', `pkcs11: cannot load the module ${modulePath}`, { cause: e });
  }
  return mod;
}

export class Pkcs11Library {
  #owned = false;

  private constructor(
    readonly mod: Pkcs11Module,
    readonly modulePath: string,
  ) {}

  static async open(modulePath: string, internals: Pkcs11Internals = {}): Promise<Pkcs11Library> {
    const mod = await (internals.loadModule ?? loadPkcs11js)(modulePath);
    const lib = new Pkcs11Library(mod, modulePath);
    try {
      lib.initialize();
    } catch (e) {
      lib.#unload();
      throw e;
    }
    return lib;
  }

  /**
   * C_Initialize with CKF_OS_LOCKING_OK. Without that flag (pkcs11js passes zero flags by
   * default) SoftHSM disables its locking, yet the *Async calls run on libuv worker threads.
   */
  initialize(): void {
    try {
      this.mod.C_Initialize({ flags: CKF.OS_LOCKING_OK });
      this.#owned = true;
    } catch (e) {
      if (!isCkr(e, CKR.CRYPTOKI_ALREADY_INITIALIZED)) throw custodyError('C_Initialize', e);
    }
  }

  /** Finalize and initialize again, to recover from a removed device or a lost library state. */
  reinitialize(): void {
    this.#finalize();
    this.initialize();
  }

  /** The slot holding the configured token; fails closed when it is absent or ambiguous. */
  findSlot(token: TokenSelector): Handle {
    let slots: Handle[];
    try {
      slots = this.mod.C_GetSlotList(true);
    } catch (e) {
      throw custodyError('C_GetSlotList', e);
    }
    if ('slot' in token) {
      const slot = slots.find((s) => slotIdOf(s) === BigInt(token.slot));
      if (!slot) throw new BrokerError('custody_unavailable', `pkcs11: no token present in slot ${token.slot} of ${this.modulePath}`);
      return slot;
    }
    const matches = slots.filter((s) => {
      try {
        return this.mod.C_GetTokenInfo(s).label.trimEnd() === token.label;
      } catch {
        return false; // an unrecognised or vanishing token in another slot is not ours
      }
    });
    if (matches.length === 0) throw new BrokerError('custody_unavailable', `pkcs11: no token labelled "${token.label}" in ${this.modulePath}`);
    if (matches.length > 1) {
      throw new BrokerError('custody_unavailable', `pkcs11: ${matches.length} tokens are labelled "${token.label}"; select one by slot`);
    }
    return matches[0]!;
  }

  openSession(slot: Handle): Handle {
    try {
      return this.mod.C_OpenSession(slot, CKF.SERIAL_SESSION | CKF.RW_SESSION);
    } catch (e) {
      throw custodyError('C_OpenSession', e);
    }
  }

  /**
   * Logs the user in. Login state is per token and shared by all of this application's sessions,
   * so CKR_USER_ALREADY_LOGGED_IN is success. A refused PIN throws PinRefusedError, which
   * callers must not retry: every attempt counts towards the token's PIN lockout.
   */
  login(session: Handle, pin: Secret): void {
    try {
      this.mod.C_Login(session, CKU_USER, pin.reveal());
    } catch (e) {
      if (isCkr(e, CKR.USER_ALREADY_LOGGED_IN)) return;
      if (isPinFatal(e)) throw new PinRefusedError(failureName(e), e);
      throw custodyError('C_Login', e);
    }
  }

  /** Best effort: the session may already be gone with the device. */
  closeSession(session: Handle): void {
    try {
      this.mod.C_CloseSession(session);
    } catch {
      /* already closed */
    }
  }

  /** Finalizes if this instance initialized the library, then unloads it. */
  release(): void {
    if (this.#owned) this.#finalize();
    this.#unload();
  }

  #finalize(): void {
    try {
      this.mod.C_Finalize();
    } catch {
      /* not initialized: nothing to end */
    }
    this.#owned = false;
  }

  #unload(): void {
    try {
      this.mod.close();
    } catch {
      /* already unloaded */
    }
  }
}

/** The token refused the PIN. The PIN itself is never part of the error. */
export class PinRefusedError extends BrokerError {
  constructor(ckr: string, cause: unknown) {
    super('custody_unavailable', `pkcs11: the token refused the user PIN (${ckr}); not retrying, to avoid locking the token`, { cause });
  }
}

/** A slot handle is a CK_SLOT_ID in native byte order (8 bytes on LP64, 4 on Windows). */
export function slotIdOf(slot: Handle): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0));
}
