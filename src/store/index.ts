import type { Config } from '../config.js';
import { MemoryNonceStore } from './memoryNonceStore.js';
import type { NonceStore } from './nonceStore.js';

export type { NonceStore, ConsumeResult, IssueResult } from './nonceStore.js';

/** Builds the nonce store named by `config.store.kind`. */
export function createNonceStore(config: Pick<Config, 'store' | 'nonce'>): NonceStore {
  switch (config.store.kind) {
    case 'memory':
      return new MemoryNonceStore(config.nonce.maxOutstanding, config.nonce.ttlSeconds * 1000);
  }
}
