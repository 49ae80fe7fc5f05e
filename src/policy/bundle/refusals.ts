/**
 * Why a policy bundle was refused: one stable code per reason, in logs, metrics, the reload API's
 * problem list and `keyanchor policy check` output. docs/policy.md explains each.
 */
import type { PolicyProblem } from '../problems.js';

export const REFUSAL_CODES = [
  /** A root is pinned and the directory has no envelope (policy.dsse). */
  'policy_unsigned',
  /** The envelope or its manifest cannot be read: not DSSE, not canonical JSON, wrong fields. */
  'policy_bundle_malformed',
  /** Fewer valid signatures by trusted keys than the root's threshold. */
  'policy_below_threshold',
  /** Short of the threshold, and signatures by keys the root does not trust (or the manifest does not list). */
  'policy_unknown_signer',
  /** Short of the threshold, and a trusted key's signature does not verify (altered manifest?). */
  'policy_signature_invalid',
  /** A file's content differs from the digest signed in the manifest. */
  'policy_file_altered',
  /** A file is in the directory but not in the manifest. */
  'policy_file_added',
  /** A file in the manifest is missing from the directory. */
  'policy_file_removed',
  /** The bundle's `expires` has passed (a freeze attack, or a bundle not refreshed in time). */
  'policy_expired',
  /** A lower version than the highest one accepted before. */
  'policy_rollback',
  /** The version accepted before, with different content. */
  'policy_version_conflict',
  /** A new root that is not signed by the threshold of both the old and the new root, or is unusable. */
  'policy_rotation_invalid',
  /** The policy files themselves are invalid (schema, references, hostile files). */
  'policy_invalid',
  /** The high-water mark could not be read or written: nothing can be accepted safely. */
  'policy_state_unavailable',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

export class PolicyRefusal extends Error {
  constructor(
    readonly code: RefusalCode,
    readonly problems: PolicyProblem[],
  ) {
    super(`${code} (${problems.length} problem(s))`);
    this.name = 'PolicyRefusal';
  }
}

/** A problem about the bundle as a whole, at the envelope (or the file concerned). */
export const bundleProblem = (file: string, code: RefusalCode, message: string): PolicyProblem => ({
  file,
  line: 1,
  col: 1,
  path: '(bundle)',
  message: `${code}: ${message}`,
});
