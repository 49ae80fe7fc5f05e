/**
 * The broker's audit parts, built together: the signing key and the checkpointer with its
 * witnesses, the search indexer, the tally of admin authentication failures, and the readiness
 * check (this writer's checkpoints sign, and a record can be written now).
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { KeyCustodian } from '../custody/custodian.js';
import type { Logger } from '../log.js';
import type { PolicySnapshot } from '../policy/runtime.js';
import { probeAuditWrite } from '../store/audit.js';
import { lastAnchor, logEntry } from '../store/auditCheckpoints.js';
import type { StateStore } from '../store/stateStore.js';
import { entryDigest, parseEntry } from './checkpoint.js';
import { Checkpointer } from './checkpointer.js';
import { AuditIndexer } from './indexer.js';
import { auditStoreId, storeAuditSigner } from './signingKey.js';
import { RefusalTally } from './unauthenticated.js';
import { createWitnesses } from './witness/index.js';
import { newestWitnessed } from './witness/fileWitness.js';

export class AuditWitnessMismatch extends Error {
  readonly code = 'audit_witness_mismatch';
}

/**
 * At start, the store must hold the newest entry each file witness has (or have retired it behind
 * a prune anchor): a store that does not was replaced, emptied or rolled back since, and the broker
 * does not start on it silently.
 */
async function checkFileWitnesses(config: Config, store: StateStore): Promise<void> {
  for (const w of config.audit.witnesses) {
    if (w.kind !== 'file') continue;
    const newest = await newestWitnessed(w.path);
    if (!newest) continue;
    const held = await logEntry(store.read, newest.log);
    if (held?.text === newest.text) continue;
    const anchor = await lastAnchor(store.read);
    const a = anchor && parseEntry(anchor.text);
    const r = a?.kind === 'anchor' ? a.retired : undefined;
    if (r && (newest.log < r.log || (newest.log === r.log && entryDigest(newest.text) === r.digest))) continue; // pruned behind an anchor
    throw new AuditWitnessMismatch(
      `the store ${store.where} does not hold checkpoint-log entry ${newest.log}, the newest the witness ${w.path} has: the store was replaced, emptied or rolled back since. ` +
        `Check with \`keyanchor audit verify --key audit.pub --against ${w.path}\`; to start on this store anyway, move the witness file aside`,
    );
  }
}

/** How often the search index catches up with the trail (a search catches up first anyway; larger batches cost less per record). */
const INDEX_INTERVAL_MS = 5000;

export interface BrokerAudit {
  checkpointer: Checkpointer;
  /** The search index, kept a few seconds behind the trail at most. */
  indexer: AuditIndexer;
  /** Admin API authentication failures (401), counted per source and window. */
  adminUnauthenticated: RefusalTally;
  /** For readiness: throws while checkpoints fail or a record cannot be written. */
  check(): Promise<void>;
  close(): Promise<void>;
}

export async function startBrokerAudit(
  d: { config: Config; store: StateStore; custodian: KeyCustodian; clock: Clock; log: Logger; policy: () => PolicySnapshot },
  failed: (what: string, e: unknown) => void,
): Promise<BrokerAudit> {
  const { config, store, clock, log } = d;
  await checkFileWitnesses(config, store);
  const signer = await storeAuditSigner(config, store, d.custodian, true);
  const checkpointer = new Checkpointer({
    store, signer, clock, storeId: await auditStoreId(store),
    policy: () => {
      const s = d.policy();
      return { version: s.version, manifestSha256: s.manifestSha256 };
    },
    everyRecords: config.audit.checkpoint.everyRecords,
    everyMs: config.audit.checkpoint.everySeconds * 1000,
    sweepMs: config.audit.checkpoint.sweepSeconds * 1000,
    witnesses: createWitnesses(config.audit.witnesses, { clock, log }),
    onError: failed,
  });
  checkpointer.start();
  log.info({ keyId: signer.keyId, custody: signer.kind, witnesses: config.audit.witnesses.map((w) => w.kind) }, 'audit checkpoints signed with this key');
  const indexer = new AuditIndexer(store, (e) => log.warn({ err: String(e) }, 'audit search index: could not catch up (searches may miss the newest records)'));
  indexer.start(INDEX_INTERVAL_MS);
  const adminUnauthenticated = new RefusalTally(store, clock, { windowMs: config.audit.unauthenticatedWindowSeconds * 1000, maxSources: config.audit.unauthenticatedMaxSources }, (e) => failed('recording admin authentication failures', e), 'admin.unauthenticated');
  return {
    checkpointer,
    indexer,
    adminUnauthenticated,
    check: async () => {
      checkpointer.health();
      await probeAuditWrite((fn) => store.transaction(fn), clock.now());
    },
    close: async () => {
      await adminUnauthenticated.close();
      await indexer.stop();
      await checkpointer.close();
    },
  };
}
