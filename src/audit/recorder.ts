/**
 * Records that stand alone (not part of another change's transaction): policy loads and refused
 * reloads, admin reads and refusals. Each is one transaction; a failure is reported to `onFailure`
 * (readiness probes again at once) and thrown, so a caller that must not act unrecorded does not.
 */
import type { Clock } from '../clock.js';
import { appendAudit, type AuditEvent } from '../store/audit.js';
import type { StateStore } from '../store/stateStore.js';

/** The longest text a record keeps of a field its subject chose (after authentication). */
export const FIELD_MAX = 256;

/** `s`, or its first `n` characters and its length. */
export const capText = (s: string, n = FIELD_MAX): string => (s.length <= n ? s : `${s.slice(0, n)}…(${s.length})`);

/** At most `n` entries of a list a subject influenced, each capped, and how many there were. */
export const capList = (xs: readonly string[], n = 16): string[] =>
  xs.length <= n ? xs.map((x) => capText(x)) : [...xs.slice(0, n).map((x) => capText(x)), `…(${xs.length})`];

export class AuditRecorder {
  constructor(
    private readonly store: StateStore,
    private readonly clock: Clock,
    private readonly onFailure: (what: string, e: unknown) => void,
  ) {}

  async record(e: AuditEvent): Promise<void> {
    try {
      await this.store.transaction((tx) => appendAudit(tx, e, this.clock.now()));
    } catch (err) {
      this.onFailure(`recording ${e.event}`, err);
      throw err;
    }
  }
}
