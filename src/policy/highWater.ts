/**
 * The policy high-water mark: the highest signed-bundle version this broker (or, with a shared
 * store, any replica) has accepted, and the digest of that bundle's manifest. It is what makes a
 * rollback to an older bundle, or a different bundle under an accepted version number, refusable.
 *
 * Backend: the state store (store/highWater.ts; SQLite in the state directory, or PostgreSQL shared
 * by every replica). A backend
 * passes test/contract/policyHighWater.contract.ts.
 */
export interface PolicyMark {
  version: number;
  /** SHA-256 (lowercase hex) of the canonical manifest of the accepted bundle. */
  manifestSha256: string;
  /**
   * The trust root in force once that bundle was accepted (opaque text for the backend: stored
   * and returned as given, at most 64 KiB). A bundle may rotate the root; storing the result with
   * the mark, in one atomic step, keeps a restart or another replica from trusting the old keys
   * again. Absent when no bundle has rotated the root pinned in the config.
   */
  root?: string;
}

export type AdvanceResult = 'ok' | 'rollback' | 'conflict';

export interface PolicyHighWater {
  /** The highest accepted bundle, or undefined when none was ever accepted. */
  get(): Promise<PolicyMark | undefined>;
  /**
   * Records `mark` as accepted, atomically (compare-and-set across processes and replicas):
   * - 'ok'       when mark.version is above the stored one (it becomes the new mark, root included),
   *              or equal to it with the same manifest digest (nothing changes);
   * - 'rollback' when mark.version is below the stored one (nothing changes);
   * - 'conflict' when mark.version equals the stored one with a different digest (nothing changes).
   */
  advance(mark: PolicyMark): Promise<AdvanceResult>;
}

/** Throws when a mark is not one a backend may store (a programming error, not input). */
export function checkMark(mark: PolicyMark): void {
  if (!Number.isSafeInteger(mark.version) || mark.version < 1) throw new TypeError(`policy mark version ${mark.version} is not a positive integer`);
  if (!/^[0-9a-f]{64}$/.test(mark.manifestSha256)) throw new TypeError('policy mark manifestSha256 is not 64 lowercase hex digits');
  if (mark.root !== undefined && (typeof mark.root !== 'string' || mark.root.length > 65_536)) throw new TypeError('policy mark root is not a string of at most 64 KiB');
}

/** The compare-and-set rule, for backends that read the stored mark and decide in one transaction. */
export function decideAdvance(stored: PolicyMark | undefined, mark: PolicyMark): AdvanceResult | 'write' {
  if (!stored || mark.version > stored.version) return 'write';
  if (mark.version < stored.version) return 'rollback';
  return mark.manifestSha256 === stored.manifestSha256 ? 'ok' : 'conflict';
}
