/** The custodian contract against a real PKCS#11 token: SoftHSM2, with a KEK from `hsm init`. */
import { afterAll, beforeAll, describe } from 'vitest';
import { createPkcs11Custodian, hsmInit } from '../../src/custody/pkcs11/index.js';
import { createSoftHsm, softhsmAvailable, softhsmCustodyConfig, type SoftHsm } from '../helpers/softhsm.js';
import { custodianContract } from './custodian.contract.js';

describe.skipIf(!softhsmAvailable())('pkcs11 custody on SoftHSM2', () => {
  let hsm: SoftHsm;
  beforeAll(async () => {
    hsm = createSoftHsm();
    await hsmInit(softhsmCustodyConfig(hsm));
  });
  afterAll(() => hsm?.cleanup());

  custodianContract('pkcs11', () => createPkcs11Custodian(softhsmCustodyConfig(hsm)));
});
