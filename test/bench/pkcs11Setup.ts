import type { Pkcs11CustodyConfig } from '../../src/config.js';
import { hsmInit } from '../../src/custody/pkcs11/index.js';
import { Secret } from '../../src/secret.js';
import { createSoftHsm, softhsmModule } from '../helpers/softhsm.js';
import type { World } from '../helpers/world.js';

export interface HsmBench {
  /** The `custody` section for the broker config; the PIN comes from `env`. */
  custody: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  config: Pkcs11CustodyConfig;
  cleanup(): void;
}

/** A fresh SoftHSM2 token with a KEK made by `hsmInit`; undefined when SoftHSM2 is not installed. */
export async function pkcs11Setup(_w: World): Promise<HsmBench | undefined> {
  if (!softhsmModule()) return undefined;
  const hsm = createSoftHsm({ label: 'bench' });
  const config: Pkcs11CustodyConfig = {
    kind: 'pkcs11', module: hsm.module, token: { label: hsm.label }, pin: new Secret(hsm.pin),
    kekLabel: 'bench-kek', auditKeyLabel: 'bench-audit', wrapMechanism: 'AES_KEY_WRAP_PAD', oaepHash: 'SHA-1', sessions: 4, probeIntervalSeconds: 60,
  };
  await hsmInit(config);
  return {
    config,
    custody: { kind: 'pkcs11', module: hsm.module, token: { label: hsm.label }, pin: { env: 'KEYANCHOR_BENCH_PIN' }, kekLabel: 'bench-kek', oaepHash: 'SHA-1' },
    env: { KEYANCHOR_BENCH_PIN: hsm.pin },
    cleanup: () => hsm.cleanup(),
  };
}
