/** The backend's PKCS#11 numbers match pkcs11js, and errors are classified by CK_RV alone. */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { CK_PARAMS, CKA, CKF, CKG, CKK, CKM, CKO, CKR, CKU_USER, ckrName } from '../../../src/custody/pkcs11/constants.js';
import { ckrOf, custodyError, recoveryFor, SessionLostError } from '../../../src/custody/pkcs11/errors.js';
import { BrokerError } from '../../../src/errors.js';

const require = createRequire(import.meta.url);
let lib: Record<string, unknown> & { Pkcs11Error: new (message: string, code?: number, method?: string) => Error };
try {
  lib = require('pkcs11js');
} catch {
  /* optional dependency absent: the suite is skipped */
}

describe.skipIf(!lib!)('pkcs11 constants and error classification', () => {
  it('uses the same numbers as pkcs11js', () => {
    const groups = { CKA, CKO, CKK, CKM, CKG, CKR } as Record<string, Record<string, number>>;
    for (const [prefix, table] of Object.entries(groups)) {
      for (const [name, value] of Object.entries(table)) expect([`${prefix}_${name}`, value]).toEqual([`${prefix}_${name}`, lib[`${prefix}_${name}`]]);
    }
    for (const name of ['SERIAL_SESSION', 'RW_SESSION', 'OS_LOCKING_OK', 'TOKEN_INITIALIZED', 'USER_PIN_LOCKED'] as const) {
      expect(CKF[name]).toBe(lib[`CKF_${name}`]);
    }
    expect(CKU_USER).toBe(lib.CKU_USER);
    expect(CK_PARAMS.RSA_OAEP).toBe(lib.CK_PARAMS_RSA_OAEP);
    expect(CK_PARAMS.AES_GCM_v240).toBe(lib.CK_PARAMS_AES_GCM_v240);
  });

  it('reads the CK_RV from the code of a pkcs11js error, as thrown by both sync and async calls', () => {
    const e = new lib.Pkcs11Error('CKR_SESSION_CLOSED:176\n    at PKCS11.C_WrapKey (x.js:1:1)');
    expect(ckrOf(e)).toBe(CKR.SESSION_CLOSED);
    expect(ckrOf(new Error('CKR_SESSION_CLOSED:176'))).toBeUndefined();
    expect(ckrOf(new TypeError('Argument 1 has wrong type'))).toBeUndefined();
  });

  it('classifies recoverable failures by number', () => {
    const err = (rv: number) => new lib.Pkcs11Error(`${ckrName(rv)}:${rv}`);
    for (const rv of [CKR.SESSION_HANDLE_INVALID, CKR.SESSION_CLOSED, CKR.USER_NOT_LOGGED_IN, CKR.WRAPPING_KEY_HANDLE_INVALID, CKR.KEY_HANDLE_INVALID]) {
      expect(recoveryFor(err(rv))).toBe('session');
    }
    for (const rv of [CKR.CRYPTOKI_NOT_INITIALIZED, CKR.DEVICE_REMOVED, CKR.TOKEN_NOT_PRESENT, CKR.DEVICE_ERROR]) {
      expect(recoveryFor(err(rv))).toBe('module');
    }
    for (const rv of [CKR.GENERAL_ERROR, CKR.WRAPPED_KEY_INVALID, CKR.SIGNATURE_INVALID, CKR.PIN_INCORRECT, CKR.ARGUMENTS_BAD]) {
      expect(recoveryFor(err(rv))).toBeUndefined();
    }
    expect(recoveryFor(new SessionLostError('not logged in'))).toBe('session');
  });

  it('maps every failure to custody_unavailable naming the operation and the CKR, keeping the cause', () => {
    const cause = new lib.Pkcs11Error('CKR_DEVICE_MEMORY:49');
    const e = custodyError('C_WrapKey', cause);
    expect(e).toBeInstanceOf(BrokerError);
    expect({ code: e.code, status: e.status, reason: e.reason, cause: e.cause }).toEqual({
      code: 'custody_unavailable',
      status: 503,
      reason: 'pkcs11: C_WrapKey failed: CKR_DEVICE_MEMORY',
      cause,
    });
    const passthrough = new BrokerError('recipient_unsupported', 'EC');
    expect(custodyError('x', passthrough)).toBe(passthrough);
  });
});
