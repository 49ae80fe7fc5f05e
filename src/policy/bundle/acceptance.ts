/**
 * Between a verified bundle and the policy in force: which root verifies it (the pinned one, or
 * the one a rotation left with the high-water mark), and the version rule against the mark —
 * checked before the work of loading, and enforced by the mark's compare-and-set when recording.
 * The mark's `version` is the bundle's sequence: root version × 2^32 + bundle version.
 */
import path from 'node:path';
import { displayPath } from '../files.js';
import type { PolicyHighWater, PolicyMark } from '../highWater.js';
import { BUNDLE_FILE } from './dsse.js';
import { canonicalJson, RootSchema } from './manifest.js';
import { bundleProblem, PolicyRefusal } from './refusals.js';
import { trustRoot, type TrustRoot } from './trustRoot.js';
import { describeSequence, type BundleFacts } from './verifyBundle.js';

/** What the mark stores as its `root`: the rotated root, and which pinned root it descends from. */
interface StoredTrust {
  root: unknown;
  pinned: string;
}

/**
 * The root that verifies the next bundle: the rotated root stored with the mark, or the pinned
 * root when no rotation is stored. A stored rotation that does not descend from the pinned root
 * means the config's pin changed under the state: loads stop until an operator resolves it
 * (restore the pin, or — a deliberate trust reset — move the high-water mark aside).
 */
export function trustInForce(pinned: TrustRoot, mark: PolicyMark | undefined): TrustRoot {
  if (!mark?.root) return pinned;
  let stored: StoredTrust;
  try {
    stored = JSON.parse(mark.root) as StoredTrust;
  } catch {
    throw new Error('the root stored with the policy high-water mark is not JSON');
  }
  if (stored.pinned !== pinned.id) {
    throw new PolicyRefusal('policy_state_unavailable', [
      {
        file: 'policy.root',
        line: 0,
        col: 0,
        path: '(state)',
        message: 'policy_state_unavailable: the pinned root is not the one the stored policy state descends from (a rotation was accepted under another pin); restore that pin, or move the high-water mark aside to reset trust',
      },
    ]);
  }
  return trustRoot(RootSchema.parse(stored.root));
}

/** The `root` to store with the mark of an accepted bundle: only when the root differs from the pinned one. */
export const storedRoot = (facts: BundleFacts, pinned: TrustRoot): string | undefined =>
  facts.root.id === pinned.id ? undefined : canonicalJson({ root: facts.root.data, pinned: pinned.id });

function versionRefusal(dir: string, mark: PolicyMark, facts: BundleFacts, result: 'rollback' | 'conflict'): PolicyRefusal {
  const where = displayPath(path.join(dir, BUNDLE_FILE));
  return result === 'rollback'
    ? new PolicyRefusal('policy_rollback', [bundleProblem(where, 'policy_rollback', `${describeSequence(facts.sequence)} is below ${describeSequence(mark.version)}, the highest accepted before`)])
    : new PolicyRefusal('policy_version_conflict', [
        bundleProblem(where, 'policy_version_conflict', `${describeSequence(facts.sequence)} was accepted before with manifest ${mark.manifestSha256.slice(0, 16)}…; this one is ${facts.manifestSha256.slice(0, 16)}…`),
      ]);
}

/** Refuses a bundle the mark makes a rollback or a conflict, without recording anything. */
export function checkVersion(dir: string, mark: PolicyMark | undefined, facts: BundleFacts): void {
  if (!mark || facts.sequence > mark.version) return;
  if (facts.sequence < mark.version) throw versionRefusal(dir, mark, facts, 'rollback');
  if (facts.manifestSha256 !== mark.manifestSha256) throw versionRefusal(dir, mark, facts, 'conflict');
}

/** Records the bundle as accepted; a replica that got there first can still make it a rollback or conflict. */
export async function recordAccepted(dir: string, hw: PolicyHighWater, facts: BundleFacts, pinned: TrustRoot): Promise<void> {
  const root = storedRoot(facts, pinned);
  const mark: PolicyMark = { version: facts.sequence, manifestSha256: facts.manifestSha256, ...(root ? { root } : {}) };
  const result = await hw.advance(mark);
  if (result === 'ok') return;
  const now = (await hw.get()) ?? mark;
  throw versionRefusal(dir, now, facts, result);
}
