/**
 * How the measurement checks report failure. Each step throws `Rejected` with a log-only reason;
 * `settle` turns a run of steps into a `Verdict` and never lets anything else escape, so a
 * malformed input (bad DER, garbage certificate, a library throwing) is a refusal, not a fault.
 */

/** The outcome of a signature check. `reason` is for the broker's log, never for the client. */
export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Receives the reason a signature was refused, for logging. */
export type OnReject = (reason: string) => void;

class Rejected extends Error {
  override name = 'Rejected';
}

/** Refuse with a reason for the log. */
export function reject(reason: string): never {
  throw new Rejected(reason);
}

const ACCEPTED: Verdict = Object.freeze({ ok: true });

/** Run the steps; any throw becomes a refusal. */
export function settle(steps: () => void): Verdict {
  try {
    steps();
    return ACCEPTED;
  } catch (e) {
    if (e instanceof Rejected) return { ok: false, reason: e.message };
    const detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return { ok: false, reason: `malformed input (${detail})` };
  }
}

/** Collapse a verdict to a boolean, telling `onReject` why when it is a refusal. */
export function report(verdict: Verdict, onReject: OnReject | undefined): boolean {
  if (verdict.ok) return true;
  if (onReject) {
    try {
      onReject(verdict.reason);
    } catch {
      // A failing logger must not turn a refusal into an exception in the release path.
    }
  }
  return false;
}
