/**
 * Between a verified bundle and the policy in force: which root verifies it (the pinned one, or
 * the one a rotation left with the high-water mark), and the version rule against the mark —
 * checked before the work of loading, and enforced by the mark's compare-and-set when recording.
 */
import path from 'node:path';
import { displayPath } from '../files.js';
import type { PolicyHighWater, PolicyMark } from '../highWater.js';
import { BUNDLE_FILE } from './dsse.js';
import { canonicalJson, RootSchema } from './manifest.js';
import { bundleProblem, PolicyRefusal } from './refusals.js';
import { trustRoot, type TrustRoot } from './trustRoot.js';
import type { BundleFacts } from './verifyBundle.js';

/** What the mark stores as its `root`: the rotated root, and which pinned root it descends from. */
interface StoredTrust {
  root: unknown;
  pinned: string;
}

/**
 * The root that verifies the next bundle: the rotated root stored with the mark, when the root
 * pinned in the config is still the one the rotation started from; else the pinned root (an
 * operator who pins a new root in the config overrides what the state remembers).
 */
export function trustInForce(pinned: TrustRoot, mark: PolicyMark | undefined): { root: TrustRoot; ignoredRotation: boolean } {
  if (!mark?.root) return { root: pinned, ignoredRotation: false };
  let stored: StoredTrust;
  try {
    stored = JSON.parse(mark.root) as StoredTrust;
  } catch {
    throw new Error('the root stored with the policy high-water mark is not JSON');
  }
  if (stored.pinned !== pinned.id) return { root: pinned, ignoredRotation: true };
  return { root: trustRoot(RootSchema.parse(stored.root)), ignoredRotation: false };
}

/** The `root` to store with the mark of an accepted bundle: only when the root differs from the pinned one. */
export const storedRoot = (facts: BundleFacts, pinned: TrustRoot): string | undefined =>
  facts.root.id === pinned.id ? undefined : canonicalJson({ root: facts.root.data, pinned: pinned.id });

function versionRefusal(dir: string, mark: PolicyMark, facts: BundleFacts, result: 'rollback' | 'conflict'): PolicyRefusal {
  const where = displayPath(path.join(dir, BUNDLE_FILE));
  return result === 'rollback'
    ? new PolicyRefusal('policy_rollback', [bundleProblem(where, 'policy_rollback', `version ${facts.version} is below version ${mark.version}, the highest accepted before`)])
    : new PolicyRefusal('policy_version_conflict', [
        bundleProblem(where, 'policy_version_conflict', `version ${facts.version} was accepted before with manifest ${mark.manifestSha256.slice(0, 16)}…; this one is ${facts.manifestSha256.slice(0, 16)}…`),
      ]);
}

/** Refuses a bundle the mark makes a rollback or a conflict, without recording anything. */
export function checkVersion(dir: string, mark: PolicyMark | undefined, facts: BundleFacts): void {
  if (!mark || facts.version > mark.version) return;
  if (facts.version < mark.version) throw versionRefusal(dir, mark, facts, 'rollback');
  if (facts.manifestSha256 !== mark.manifestSha256) throw versionRefusal(dir, mark, facts, 'conflict');
}

/** Records the bundle as accepted; a replica that got there first can still make it a rollback or conflict. */
export async function recordAccepted(dir: string, hw: PolicyHighWater, facts: BundleFacts, pinned: TrustRoot): Promise<void> {
  const root = storedRoot(facts, pinned);
  const mark: PolicyMark = { version: facts.version, manifestSha256: facts.manifestSha256, ...(root ? { root } : {}) };
  const result = await hw.advance(mark);
  if (result === 'ok') return;
  const now = (await hw.get()) ?? mark;
  throw versionRefusal(dir, now, facts, result);
}
