/**
 * Key lifecycle over the keystore and the custodian: create, rotate, enable/disable, destroy,
 * and the lookup that a release uses. Metadata only ever leaves here; key bytes never do.
 */
import type { Clock } from '../clock.js';
import type { KeyCustodian, KeyRef } from '../custody/custodian.js';
import { BrokerError } from '../errors.js';
import type { RecipientJwk, ReleasedKey } from '../protocol.js';
import type { Keystore } from './keystore.js';
import type { KeyRecord, KeyState, KeystoreData, KeyVersion } from './keystoreFile.js';
import type { AuditEvent, AuditLog, ReleaseRecord } from '../audit/auditLog.js';

export interface KeyVersionInfo {
  version: number;
  state: KeyState;
  createdAt: string;
  createdBy: string;
  changedAt?: string;
  changedBy?: string;
  /** From the audit trail: how often this version was released, when last, to which node. */
  releases?: ReleaseRecord;
}
export interface KeyInfo {
  name: string;
  createdAt: string;
  createdBy: string;
  versions: KeyVersionInfo[];
}

const info = (r: KeyRecord, releases?: ReadonlyMap<number, ReleaseRecord>): KeyInfo => ({
  name: r.name,
  createdAt: r.createdAt,
  createdBy: r.createdBy,
  versions: r.versions.map(({ wrapped: _w, ...v }) => {
    const rel = releases?.get(v.version);
    return rel ? { ...v, releases: rel } : v;
  }),
});

export class KeyService {
  constructor(
    private readonly keystore: Keystore,
    private readonly custodian: KeyCustodian,
    private readonly clock: Clock,
    private readonly audit?: AuditLog,
  ) {}

  list(): KeyInfo[] {
    return Object.values(this.keystore.read().keys)
      .map((r) => info(r, this.audit?.releases(r.name)))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  show(name: string): KeyInfo {
    const rec = this.keystore.read().keys[name];
    if (!rec) throw new BrokerError('key_unknown', `no key ${name}`);
    return info(rec, this.audit?.releases(name));
  }

  has(name: string): boolean {
    return Object.hasOwn(this.keystore.read().keys, name);
  }

  /*
   * Lifecycle changes are recorded in the audit trail under the keystore lock, before the new
   * keystore is written: a crash in between leaves a record of an attempt that did not land, never
   * a change (a destroy, say) that the trail does not mention. An unwritable trail stops the change.
   */
  async create(name: string, actor: string): Promise<KeyInfo> {
    const out = await this.keystore.update(async (data) => {
      if (Object.hasOwn(data.keys, name)) throw new BrokerError('key_exists', `key ${name} exists`);
      const now = this.#now();
      const v = await this.#newVersion({ name, version: 1 }, actor, now);
      const rec: KeyRecord = { name, createdAt: now, createdBy: actor, versions: [v] };
      data.keys[name] = rec;
      await this.#audit({ event: 'key.create', actor, key: name, version: 1 });
      return info(rec);
    });
    return out;
  }

  async rotate(name: string, actor: string): Promise<KeyInfo> {
    return this.keystore.update(async (data) => {
      const rec = data.keys[name];
      if (!rec) throw new BrokerError('key_unknown', `no key ${name}`);
      const next = Math.max(...rec.versions.map((v) => v.version)) + 1;
      rec.versions.push(await this.#newVersion({ name, version: next }, actor, this.#now()));
      await this.#audit({ event: 'key.rotate', actor, key: name, version: next });
      return info(rec);
    });
  }

  /** enable ↔ disable; destroyed is final and erases the wrapped blob (crypto-shredding). */
  async setState(name: string, version: number, to: KeyState, actor: string): Promise<KeyInfo> {
    return this.keystore.update(async (data) => {
      const rec = data.keys[name];
      const v = rec?.versions.find((x) => x.version === version);
      if (!rec || !v) throw new BrokerError('key_unknown', `no key ${name}@${version}`);
      if (v.state === 'destroyed' || v.state === to) {
        throw new BrokerError('key_state_invalid', `${name}@${version} is ${v.state}, cannot become ${to}`);
      }
      v.state = to;
      v.changedAt = this.#now();
      v.changedBy = actor;
      if (to === 'destroyed') delete v.wrapped;
      await this.#audit({ event: 'key.state', actor, key: name, version, state: to });
      return info(rec);
    });
  }

  /** The keystore as stored (wrapped blobs only), for backup: useless without the KEK. */
  async exportWrapped(actor: string): Promise<Readonly<KeystoreData>> {
    const data = this.keystore.read();
    await this.#audit({ event: 'keystore.export', actor, keys: Object.keys(data.keys).length });
    return data;
  }

  async #audit(e: AuditEvent): Promise<void> {
    if (!this.audit) return;
    try {
      await this.audit.record(e);
    } catch (err) {
      throw new BrokerError('audit_unavailable', `could not record ${e.event} of ${String(e.key ?? '')}`, { cause: err });
    }
  }

  /**
   * Picks the version to release: the one asked for (or pinned by policy) if it is enabled,
   * else the newest enabled version.
   */
  resolve(name: string, version?: number): { ref: KeyRef; version: KeyVersion } {
    const rec = this.keystore.read().keys[name];
    if (!rec) throw new BrokerError('key_unknown', `no key ${name}`);
    const candidates = rec.versions.filter((v) => v.state === 'enabled' && v.wrapped);
    const v =
      version === undefined
        ? candidates.reduce<KeyVersion | undefined>((best, x) => (!best || x.version > best.version ? x : best), undefined)
        : candidates.find((x) => x.version === version);
    if (!v) throw new BrokerError('key_unknown', `no enabled version of ${name}${version ? `@${version}` : ''}`);
    return { ref: { name, version: v.version }, version: v };
  }

  async releaseTo(name: string, version: number | undefined, recipient: RecipientJwk): Promise<ReleasedKey> {
    const { ref, version: v } = this.resolve(name, version);
    const w = v.wrapped!;
    return this.custodian.releaseTo(ref, { alg: w.alg, kekId: w.kekId, blob: Buffer.from(w.blob, 'base64') }, recipient);
  }

  async #newVersion(ref: KeyRef, actor: string, now: string): Promise<KeyVersion> {
    const w = await this.custodian.generate(ref);
    return {
      version: ref.version,
      state: 'enabled',
      createdAt: now,
      createdBy: actor,
      wrapped: { alg: w.alg, kekId: w.kekId, blob: w.blob.toString('base64') },
    };
  }

  #now(): string {
    return new Date(this.clock.now()).toISOString();
  }
}
