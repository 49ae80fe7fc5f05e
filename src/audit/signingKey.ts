/**
 * The audit signing key a store's checkpoints are signed with. The store records its id
 * (`meta.audit_key_id`) the first time one is used, like the KEK's: a key is made only for a store
 * that records none; afterwards a missing key, or another one, is refused, and nothing is made.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import { openAuditSigner, type AuditSigner } from '../custody/auditSigner.js';
import type { KeyCustodian } from '../custody/custodian.js';
import { AUDIT_KEY_FILE } from '../custody/softwareAuditKey.js';
import { META, getMeta, metaOnce } from '../store/meta.js';
import type { StateStore } from '../store/stateStore.js';

export class AuditKeyError extends Error {
  constructor(
    readonly code: 'audit_key_missing' | 'audit_key_mismatch',
    message: string,
  ) {
    super(message);
    this.name = 'AuditKeyError';
  }
}

const where = (config: Pick<Config, 'custody' | 'stateDir'>) =>
  config.custody.kind === 'software' ? `${config.stateDir}/${AUDIT_KEY_FILE}` : `the key pair labelled "${config.custody.auditKeyLabel}" on the token`;

/** The store's audit signer; made (and recorded) when the store has none yet and `create` allows. */
export async function storeAuditSigner(config: Pick<Config, 'custody' | 'stateDir'>, store: StateStore, custodian: KeyCustodian, create: boolean): Promise<AuditSigner> {
  const recorded = await getMeta(store.read, META.auditKeyId);
  const signer = await openAuditSigner(config, custodian, { create: create && recorded === undefined });
  if (!signer) {
    throw new AuditKeyError('audit_key_missing', recorded
      ? `the audit signing key (${where(config)}) is missing, and this store's checkpoints are signed by key ${recorded}: restore it from backup (nothing was created)`
      : `this store has no audit signing key yet (${where(config)}): start the broker once (keyanchor serve) to make it`);
  }
  const stands = recorded ?? (await store.transaction((tx) => metaOnce(tx, META.auditKeyId, signer.keyId)));
  if (stands !== signer.keyId) {
    throw new AuditKeyError('audit_key_mismatch', `this store's audit checkpoints are signed by key ${stands}, but ${where(config)} is key ${signer.keyId}: configure the right key (restore it from backup)`);
  }
  return signer;
}

/** The store's audit id, made once. */
export async function auditStoreId(store: StateStore): Promise<string> {
  const existing = await getMeta(store.read, META.auditStoreId);
  if (existing) return existing;
  return store.transaction((tx) => metaOnce(tx, META.auditStoreId, randomBytes(12).toString('base64url')));
}
