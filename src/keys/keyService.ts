/**
 * Key lifecycle over the state store and the custodian: create, rotate, enable/disable, destroy,
 * export and import, and the lookups a release and the admin API use. Each change is one store
 * transaction that also writes its audit record, so a change and its record land together or not
 * at all. Metadata only ever leaves here; key bytes never do (only wrapped blobs, for backup).
 *
 * A new version's data key is made by custody before the transaction (it is bound to its
 * `name@version`); if another writer took that version number meanwhile, the insert finds it
 * taken and the rotation is tried again with the next number.
 */
import type { Clock } from '../clock.js';
import type { KeyCustodian, KeyRef } from '../custody/custodian.js';
import { BrokerError } from '../errors.js';
import type { RecipientJwk, ReleasedKey } from '../protocol.js';
import { appendAudit, type AuditEvent } from '../store/audit.js';
import { bumpChange } from '../store/changes.js';
import {
  insertKey, insertVersion, keyExists, lockVersion, newestVersion, readKeys, readReleaseStats, resolveVersions, setVersionState,
  type ReleaseStats, type StoredKey, type StoredVersion,
} from '../store/keys.js';
import type { StateStore } from '../store/stateStore.js';
import type { TxSql } from '../store/sql.js';
import type { KeyState, KeystoreData } from './keystoreFile.js';
import { toKeystoreFile } from './keystoreFile.js';

/** A version's metadata (never its blob), and how often it was released, when last, to which node and software. */
export type KeyVersionInfo = Omit<StoredVersion, 'wrapped'> & { releases?: ReleaseStats };
export interface KeyInfo {
  name: string;
  createdAt: string;
  createdBy: string;
  versions: KeyVersionInfo[];
}

/** How many times a rotation that lost a race for its version number is tried again. */
const ROTATE_ATTEMPTS = 32;

const info = (k: StoredKey, stats?: ReadonlyMap<number, ReleaseStats>): KeyInfo => ({
  name: k.name,
  createdAt: k.createdAt,
  createdBy: k.createdBy,
  versions: k.versions.map(({ wrapped: _w, ...v }) => {
    const rel = stats?.get(v.version);
    return rel ? { ...v, releases: rel } : v;
  }),
});

export class KeyService {
  constructor(
    private readonly store: StateStore,
    /** Absent for commands that only read metadata (listing never needs the HSM). */
    private readonly custodian: KeyCustodian | undefined,
    private readonly clock: Clock,
  ) {}

  async list(): Promise<KeyInfo[]> {
    const [keys, stats] = await Promise.all([readKeys(this.store.read), readReleaseStats(this.store.read)]);
    return keys.map((k) => info(k, stats.get(k.name)));
  }

  async show(name: string): Promise<KeyInfo> {
    const [k] = await readKeys(this.store.read, { names: [name] });
    if (!k) throw new BrokerError('key_unknown', `no key ${name}`);
    return info(k, (await readReleaseStats(this.store.read, [name])).get(name));
  }

  has(name: string): Promise<boolean> {
    return keyExists(this.store.read, name);
  }

  async create(name: string, actor: string): Promise<KeyInfo> {
    const at = this.#now();
    const v = await this.#newVersion({ name, version: 1 }, actor, at);
    const rec: StoredKey = { name, createdAt: at, createdBy: actor, versions: [v] };
    await this.store.transaction(async (tx) => {
      if (!(await insertKey(tx, rec))) throw new BrokerError('key_exists', `key ${name} exists`);
      await insertVersion(tx, name, v);
      await this.#changed(tx, { event: 'key.create', actor, key: name, version: 1 });
    });
    return info(rec);
  }

  async rotate(name: string, actor: string): Promise<KeyInfo> {
    for (let attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
      const newest = await newestVersion(this.store.read, name);
      if (newest === undefined) throw new BrokerError('key_unknown', `no key ${name}`);
      const v = await this.#newVersion({ name, version: newest + 1 }, actor, this.#now());
      // The key as this rotation left it, read in its transaction: its version is the newest (a
      // rotation that lands after it cannot be in the answer, so each racer reports its own).
      const landed = await this.store.transaction(async (tx) => {
        if (!(await insertVersion(tx, name, v))) return undefined;
        await this.#changed(tx, { event: 'key.rotate', actor, key: name, version: v.version });
        const [k] = await readKeys(tx, { names: [name] });
        return info(k!, (await readReleaseStats(tx, [name])).get(name));
      });
      if (landed) return landed;
    }
    throw new BrokerError('store_unavailable', `rotating ${name}: ${ROTATE_ATTEMPTS} other rotations took the next version first`);
  }

  /** enable ↔ disable; destroyed is final and erases the wrapped blob (crypto-shredding). */
  async setState(name: string, version: number, to: KeyState, actor: string): Promise<KeyInfo> {
    await this.store.transaction(async (tx) => {
      const v = await lockVersion(tx, name, version);
      if (!v) throw new BrokerError('key_unknown', `no key ${name}@${version}`);
      if (v.state === 'destroyed' || v.state === to) throw new BrokerError('key_state_invalid', `${name}@${version} is ${v.state}, cannot become ${to}`);
      await setVersionState(tx, name, version, to, this.#now(), actor);
      await this.#changed(tx, { event: 'key.state', actor, key: name, version, state: to });
    });
    return this.show(name);
  }

  /** Every key with its wrapped blobs, in the keystore file format, for backup: useless without the KEK. */
  async exportWrapped(actor: string): Promise<KeystoreData> {
    const keys = await readKeys(this.store.read, { blobs: true });
    await this.store.transaction((tx) => appendAudit(tx, { event: 'keystore.export', actor, keys: keys.length }, this.clock.now()));
    return toKeystoreFile(this.#custody().kind, keys);
  }

  /**
   * Adds keys from an exported or old file keystore, in one transaction. Every blob must be wrapped
   * by this custodian's KEK; a name already in the store is refused (nothing is imported then).
   */
  async import(keys: readonly StoredKey[], actor: string, from: string): Promise<number> {
    const kekId = this.#custody().kekId;
    for (const k of keys) for (const v of k.versions) {
      if (v.wrapped && v.wrapped.kekId !== kekId) throw new BrokerError('custody_unavailable', `${k.name}@${v.version} is wrapped by ${v.wrapped.kekId}, not by this KEK ${kekId}`);
    }
    await this.store.transaction(async (tx) => {
      for (const k of keys) {
        if (!(await insertKey(tx, k))) throw new BrokerError('key_exists', `key ${k.name} is already in the store`);
        for (const v of k.versions) await insertVersion(tx, k.name, v);
      }
      await this.#changed(tx, { event: 'keystore.import', actor, from, keys: keys.length });
    });
    return keys.length;
  }

  /** The version a release would hand out: the one asked for if enabled, else the newest enabled. */
  async resolve(name: string, version?: number): Promise<{ ref: KeyRef; version: StoredVersion }> {
    const [r] = await resolveVersions(this.store.read, [{ name, ...(version !== undefined ? { version } : {}) }]);
    if (!r?.version.wrapped) throw new BrokerError('key_unknown', `no enabled version of ${name}${version ? `@${version}` : ''}`);
    return { ref: { name, version: r.version.version }, version: r.version };
  }

  /** Resolves and releases one key outside the release pipeline (tests, tools); no audit record. */
  async releaseTo(name: string, version: number | undefined, recipient: RecipientJwk): Promise<ReleasedKey> {
    const { ref, version: v } = await this.resolve(name, version);
    return this.#custody().releaseTo(ref, v.wrapped!, recipient);
  }

  async #changed(tx: TxSql, e: AuditEvent): Promise<void> {
    await appendAudit(tx, e, this.clock.now());
    await bumpChange(tx, 'keys');
  }

  async #newVersion(ref: KeyRef, actor: string, at: string): Promise<StoredVersion> {
    const wrapped = await this.#custody().generate(ref);
    return { version: ref.version, state: 'enabled', createdAt: at, createdBy: actor, wrapped };
  }

  #custody(): KeyCustodian {
    if (!this.custodian) throw new BrokerError('custody_unavailable', 'this command opened the keystore without custody');
    return this.custodian;
  }

  #now(): string {
    return new Date(this.clock.now()).toISOString();
  }
}
