/**
 * The policy high-water mark: the highest signed-bundle version this broker (or, with a shared
 * store, any replica) has accepted, and the digest of that bundle's manifest. It is what makes a
 * rollback to an older bundle, or a different bundle under an accepted version number, refusable.
 *
 * Backends: a file in the state directory (until the SQL store lands) and the state store.
 */
export interface PolicyMark {
  version: number;
  /** SHA-256 (lowercase hex) of the canonical manifest of the accepted bundle. */
  manifestSha256: string;
}

export type AdvanceResult = 'ok' | 'rollback' | 'conflict';

export interface PolicyHighWater {
  /** The highest accepted bundle, or undefined when none was ever accepted. */
  get(): Promise<PolicyMark | undefined>;
  /**
   * Records `mark` as accepted, atomically (compare-and-set across processes and replicas):
   * - 'ok'       when mark.version is above the stored one (it becomes the new mark), or equal to it
   *              with the same manifest digest (nothing changes);
   * - 'rollback' when mark.version is below the stored one (nothing changes);
   * - 'conflict' when mark.version equals the stored one with a different digest (nothing changes).
   */
  advance(mark: PolicyMark): Promise<AdvanceResult>;
}
