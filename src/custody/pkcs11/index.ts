/**
 * The PKCS#11 custody backend. Loaded only through a dynamic import (custody/index.ts, and the
 * `keyanchor hsm` command), and it loads pkcs11js itself only when called, so nothing else in
 * the broker depends on the native module. It never falls back to software custody: when the
 * HSM cannot serve, calls fail with custody_unavailable.
 */
import type { Pkcs11CustodyConfig } from '../../config.js';
import type { KeyCustodian } from '../custodian.js';
import { Pkcs11Custodian } from './custodian.js';
import type { Pkcs11Internals } from './library.js';
import { SessionPool } from './sessions.js';

export { hsmInit, hsmStatus, type HsmInitResult, type HsmStatus } from './admin.js';
export type { KekAttributes } from './kek.js';
export type { Pkcs11Internals, Pkcs11Module } from './library.js';

/**
 * Connects to the configured token (session pool logged in, KEK found and checked) and returns
 * the custodian. Throws BrokerError('custody_unavailable') when the module, token, PIN or KEK is
 * not right. A token that is reachable but cannot release (a mechanism or OAEP hash it refuses)
 * still gives a custodian, whose health() says why (the readiness probe runs once here, then every
 * `probeIntervalSeconds`). `internals` is for tests only.
 */
export async function createPkcs11Custodian(config: Pkcs11CustodyConfig, internals?: Pkcs11Internals): Promise<KeyCustodian & { readonly kekId: string }> {
  const pool = await SessionPool.open(config, internals);
  const custodian = new Pkcs11Custodian(pool, config);
  await custodian.probe();
  custodian.probeEvery(config.probeIntervalSeconds * 1000);
  return custodian;
}
