import type { Pkcs11CustodyConfig } from '../../config.js';
import { BrokerError } from '../../errors.js';
import type { KeyCustodian } from '../custodian.js';

/** Placeholder until the PKCS#11 backend lands: fails closed, never falls back to software. */
export async function createPkcs11Custodian(_c: Pkcs11CustodyConfig): Promise<KeyCustodian> {
  throw new BrokerError('custody_unavailable', 'the pkcs11 custody backend is not built yet');
}
