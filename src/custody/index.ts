import type { Config } from '../config.js';
import type { KeyCustodian } from './custodian.js';
import { SoftwareCustodian } from './software.js';
import { loadOrCreateSoftwareKek } from './softwareKek.js';

export type { KeyCustodian, KeyRef, WrappedKey } from './custodian.js';

/**
 * Builds the custodian named by `config.custody.kind`. Backend-only dependencies (pkcs11js) load
 * lazily inside their backend, so the default install needs none of them.
 */
export async function createCustodian(config: Pick<Config, 'custody' | 'stateDir'>, opts: { create: boolean }): Promise<KeyCustodian> {
  const c = config.custody;
  switch (c.kind) {
    case 'software': {
      const kek = loadOrCreateSoftwareKek(config.stateDir, opts);
      try {
        return new SoftwareCustodian(kek);
      } finally {
        kek.fill(0);
      }
    }
    case 'pkcs11': {
      const { createPkcs11Custodian } = await import('./pkcs11/index.js');
      return createPkcs11Custodian(c);
    }
  }
}
