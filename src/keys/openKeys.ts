/**
 * Opens the state store and custody together, and makes sure they belong together: the store
 * records the identity of the KEK that wraps its keys (`meta.kek_id`), and every command refuses
 * to run with a KEK that is missing or another one, creating nothing. A KEK is made only for a
 * new store that holds no keys.
 *
 * Modes:
 * - `serve`, `init`: may create (SQLite) and migrate the store, and make a software KEK for it if
 *   it is new (`serve` on first start, `keys create --init`);
 * - `use`: an initialised store and its KEK, with custody (lifecycle commands);
 * - `read`: an initialised store; the software KEK file is checked against the store, an HSM is
 *   not logged in to (listing metadata never needs the HSM).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { finalCheckpoint } from '../audit/finalCheckpoint.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { createCustodian } from '../custody/index.js';
import type { KeyCustodian } from '../custody/custodian.js';
import { SoftwareCustodian } from '../custody/software.js';
import { KEK_FILE, loadOrCreateSoftwareKek } from '../custody/softwareKek.js';
import { openStore, type StateStore } from '../store/index.js';
import type { Channel } from '../store/remote/protocol.js';
import { countVersions } from '../store/keys.js';
import { META, getMeta, metaOnce, setMeta } from '../store/meta.js';
import { LEGACY_KEYSTORE_FILE } from './keystoreFile.js';
import { KeyService } from './keyService.js';

export type OpenMode = 'serve' | 'init' | 'use' | 'read';

export class StateError extends Error {
  constructor(
    readonly code: 'store_uninitialised' | 'kek_missing' | 'kek_mismatch' | 'legacy_keystore',
    message: string,
  ) {
    super(message);
    this.name = 'StateError';
  }
}

export interface OpenedKeys {
  store: StateStore;
  /** Absent in `read` mode. */
  custodian: KeyCustodian | undefined;
  keys: KeyService;
  close(): Promise<void>;
}

export async function openKeys(config: Config, clock: Clock, mode: OpenMode, opts: { legacyImport?: boolean; onError?: (e: unknown) => void; writer?: Channel } = {}): Promise<OpenedKeys> {
  const creating = mode === 'serve' || mode === 'init';
  if (creating) mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  const store = await openStore(config.store, { clock, create: creating, ...(opts.onError ? { onError: opts.onError } : {}), ...(opts.writer ? { writer: opts.writer } : {}) });
  let custodian: KeyCustodian | undefined;
  try {
    const recorded = await getMeta(store.read, META.kekId);
    if (recorded === undefined) {
      if ((await countVersions(store.read)) > 0) throw new StateError('kek_missing', `the store ${store.where} holds keys but records no KEK identity`);
      if (!creating) {
        throw new StateError('store_uninitialised', `the store ${store.where} holds no keystore yet: start the broker (keyanchor serve) or run \`keyanchor keys create --init NAME\``);
      }
      const legacy = path.join(config.stateDir, LEGACY_KEYSTORE_FILE);
      if (!opts.legacyImport && existsSync(legacy)) {
        throw new StateError('legacy_keystore', `${legacy} is a keystore of an earlier version: move it into the store with \`keyanchor keys import ${legacy}\``);
      }
    }
    custodian = mode === 'read' ? undefined : await openCustody(config, recorded, creating);
    if (mode === 'read') checkSoftwareKek(config, recorded!);
    else if (recorded === undefined) {
      const kekId = custodian!.kekId;
      await store.transaction(async (tx) => {
        const stands = await metaOnce(tx, META.kekId, kekId);
        if (stands !== kekId) throw new StateError('kek_mismatch', `another process initialised ${store.where} with KEK ${stands} meanwhile`);
        await setMeta(tx, META.custody, config.custody.kind);
        await metaOnce(tx, META.createdAt, new Date(clock.now()).toISOString());
      });
    } else if (custodian!.kekId !== recorded) {
      throw new StateError('kek_mismatch', `the keys in ${store.where} are wrapped by KEK ${recorded}, but the configured ${config.custody.kind} custody has KEK ${custodian!.kekId}: configure the right KEK (restore it from backup)`);
    }
  } catch (e) {
    await custodian?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw e;
  }
  return {
    store,
    custodian,
    keys: new KeyService(store, custodian, clock),
    close: async () => {
      // A command that wrote audit records checkpoints its chain, as a broker does at shutdown (its own checkpointer).
      if (custodian && mode !== 'serve') await finalCheckpoint(config, store, custodian, clock, (msg) => process.stderr.write(`keyanchor: warning: ${msg}\n`));
      await custodian?.close();
      await store.close();
    },
  };
}

/** Custody for a store whose KEK is `recorded` (undefined: a new store, whose software KEK may be made now). */
async function openCustody(config: Config, recorded: string | undefined, creating: boolean): Promise<KeyCustodian> {
  if (config.custody.kind === 'software') {
    const file = path.join(config.stateDir, KEK_FILE);
    if (!existsSync(file) && recorded !== undefined) throw kekMissing(file, recorded);
    return createCustodian(config, { create: creating && recorded === undefined && !existsSync(file) });
  }
  return createCustodian(config, { create: false });
}

/** `read` mode: the software KEK file must be there and be the store's; an HSM is not consulted. */
function checkSoftwareKek(config: Config, recorded: string): void {
  if (config.custody.kind !== 'software') return;
  const file = path.join(config.stateDir, KEK_FILE);
  if (!existsSync(file)) throw kekMissing(file, recorded);
  const kek = loadOrCreateSoftwareKek(config.stateDir, { create: false });
  const c = new SoftwareCustodian(kek);
  kek.fill(0);
  void c.close();
  if (c.kekId !== recorded) throw new StateError('kek_mismatch', `the keys in the store are wrapped by KEK ${recorded}, but ${file} is KEK ${c.kekId}: restore the right kek.bin from backup`);
}

const kekMissing = (file: string, recorded: string) =>
  new StateError('kek_missing', `the software KEK ${file} is missing, and the store's keys are wrapped by KEK ${recorded}: restore kek.bin from backup (nothing was created)`);
