/**
 * What the admin API says about a key: an allow-list of metadata fields, copied one by one, so a
 * field later added to the keystore (a wrapped blob, a check value) never reaches a response by
 * default. The keystore export is the one response that carries wrapped blobs, and it is not this.
 */
import type { KeyInfo } from '../keys/keyService.js';
import type { KeyState } from '../keys/keystoreFile.js';
import type { ReleaseStats } from '../store/keys.js';

export interface AdminKeyVersion {
  version: number;
  state: KeyState;
  createdAt: string;
  createdBy: string;
  changedAt?: string;
  changedBy?: string;
  /** Release statistics, when this version was ever released. */
  releases?: ReleaseStats;
}

export interface AdminKey {
  name: string;
  createdAt: string;
  createdBy: string;
  versions: AdminKeyVersion[];
}

export function adminKeyView(k: KeyInfo): AdminKey {
  return {
    name: k.name,
    createdAt: k.createdAt,
    createdBy: k.createdBy,
    versions: k.versions.map((v) => ({
      version: v.version,
      state: v.state,
      createdAt: v.createdAt,
      createdBy: v.createdBy,
      ...(v.changedAt !== undefined ? { changedAt: v.changedAt } : {}),
      ...(v.changedBy !== undefined ? { changedBy: v.changedBy } : {}),
      ...(v.releases
        ? { releases: { count: v.releases.count, lastAt: v.releases.lastAt, lastNode: v.releases.lastNode, lastSoftware: [...v.releases.lastSoftware] } }
        : {}),
    })),
  };
}
