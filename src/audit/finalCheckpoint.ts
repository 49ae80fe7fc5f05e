/**
 * The checkpoint a command-line writer (`keys create`, `audit import`, `audit prune`…) signs of
 * its own chain before it exits, as a broker does at shutdown. The command's change is already
 * committed, so a checkpoint that cannot be signed is only reported (a later sweep covers the
 * chain): it never turns a completed command into a failed one.
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { KeyCustodian } from '../custody/custodian.js';
import type { StateStore } from '../store/stateStore.js';
import { Checkpointer } from './checkpointer.js';
import { auditStoreId, storeAuditSigner } from './signingKey.js';

export async function finalCheckpoint(config: Pick<Config, 'custody' | 'stateDir' | 'audit'>, store: StateStore, custodian: KeyCustodian, clock: Clock, warn: (msg: string) => void): Promise<void> {
  if (store.committedHeads().length === 0) return;
  try {
    const signer = await storeAuditSigner(config, store, custodian, true);
    const cp = new Checkpointer({
      store, signer, clock, storeId: await auditStoreId(store), policy: () => null,
      everyRecords: config.audit.checkpoint.everyRecords, everyMs: config.audit.checkpoint.everySeconds * 1000, sweepMs: 0, witnesses: [],
      onError: (what, e) => warn(`${what}: ${e instanceof Error ? e.message : String(e)}`),
    });
    await cp.close();
  } catch (e) {
    warn(`could not sign a checkpoint of this command's audit records (a later sweep covers them): ${(e as { code?: string }).code ?? ''} ${e instanceof Error ? e.message : String(e)}`);
  }
}
