/**
 * A token that refuses the recipient key (here: one larger than it supports) gives
 * `400 recipient_invalid`, never a 500, and a failing device stays `503 custody_unavailable`.
 * SoftHSM2 takes every key that passes validateRecipient, so the refusal is injected: a proxy
 * around the real module (named as the one fake here) makes the RSA-OAEP C_WrapKey or the
 * recipient's C_CreateObject throw pkcs11js's own error with the chosen CK_RV.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyRef, WrappedKey } from '../../../src/custody/custodian.js';
import { CKM, CKR, ckrName } from '../../../src/custody/pkcs11/constants.js';
import { createPkcs11Custodian, hsmInit } from '../../../src/custody/pkcs11/index.js';
import { loadPkcs11js, type Pkcs11Module } from '../../../src/custody/pkcs11/library.js';
import { agentKey } from '../../contract/agentSide.js';
import { expectBrokerError } from '../../contract/custodian.contract.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../../helpers/softhsm.js';

const require = createRequire(import.meta.url);

describe.skipIf(!softhsmAvailable())('pkcs11 custody: the token refusing the recipient', () => {
  const Pkcs11Error = (require('pkcs11js') as { Pkcs11Error: new (message: string, code: number, method: string) => Error }).Pkcs11Error;
  let hsm: SoftHsm;
  let c: Awaited<ReturnType<typeof createPkcs11Custodian>>;
  const fault: { call?: string; rv?: number } = {};
  const ref: KeyRef = { name: 'team/db', version: 1 };
  let wrapped: WrappedKey;
  const agent = agentKey('RSA');

  const faultyModule = (real: Pkcs11Module): Pkcs11Module =>
    new Proxy(real, {
      get(target, prop) {
        const value = Reflect.get(target, prop) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const isRecipientCall =
            (prop === 'C_WrapKeyAsync' && (args[1] as { mechanism: number }).mechanism === CKM.RSA_PKCS_OAEP) || prop === 'C_CreateObject';
          if (isRecipientCall && prop === fault.call && fault.rv !== undefined) throw new Pkcs11Error(`${ckrName(fault.rv)}:${fault.rv}`, fault.rv, String(prop));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });

  beforeAll(async () => {
    hsm = createSoftHsm();
    await hsmInit(softhsmCustodyConfig(hsm));
    c = await createPkcs11Custodian(softhsmCustodyConfig(hsm), { loadModule: async (p) => faultyModule(await loadPkcs11js(p)) });
    wrapped = await c.generate(ref);
  });
  afterAll(async () => {
    await c?.close();
    hsm?.cleanup();
  });

  it.each([
    ['C_WrapKeyAsync', CKR.KEY_SIZE_RANGE],
    ['C_WrapKeyAsync', CKR.WRAPPING_KEY_SIZE_RANGE],
    ['C_WrapKeyAsync', CKR.WRAPPING_KEY_TYPE_INCONSISTENT],
    ['C_CreateObject', CKR.ATTRIBUTE_VALUE_INVALID],
    ['C_CreateObject', CKR.TEMPLATE_INCONSISTENT],
  ])('%s failing with %i: 400 recipient_invalid', async (call, rv) => {
    Object.assign(fault, { call, rv });
    try {
      await expectBrokerError(c.releaseTo(ref, wrapped, agent.jwk), 'recipient_invalid', 400);
    } finally {
      delete fault.rv;
    }
  });

  it('a general failure of the wrap stays 503 custody_unavailable, and the next release works', async () => {
    Object.assign(fault, { call: 'C_WrapKeyAsync', rv: CKR.GENERAL_ERROR });
    try {
      await expectBrokerError(c.releaseTo(ref, wrapped, agent.jwk), 'custody_unavailable', 503);
    } finally {
      delete fault.rv;
    }
    await expect(c.releaseTo(ref, wrapped, agent.jwk)).resolves.toMatchObject({ form: 'cek' });
  });
});
