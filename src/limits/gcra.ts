/**
 * The generic cell rate algorithm (GCRA) over several windows, decided all at once: a pure
 * function of the windows' stored state and the time. The store runs it inside a transaction, so
 * checking and charging every window is one atomic step: if any window refuses, none is charged.
 *
 * A window allows `limit` requests per `periodMs`, with a burst of `limit`: from an idle window,
 * `limit` requests pass at once, then one every `periodMs / limit`. Its state is one number, the
 * theoretical arrival time (TAT): the instant at which the window would be idle again. A request
 * of cost c at time `now` moves it to `max(tat, now) + c · periodMs / limit` and passes when that
 * is at most `now + periodMs`. A refused request changes nothing; it may pass again after exactly
 * `retryAfterMs`.
 */
export interface LimitWindow {
  /** Identifies the window's state in the store, e.g. `zone:z1:1/s`. */
  key: string;
  limit: number;
  periodMs: number;
}

export type GcraDecision =
  | { allowed: true; /** The new TAT of every window, by key. */ tats: Map<string, number> }
  | { allowed: false; /** The window that refused (the one that frees up last). */ key: string; retryAfterMs: number };

/** A window's TAT as stored; absent (never charged, or purged) counts as idle. */
export type StoredTats = ReadonlyMap<string, number>;

export function gcra(windows: readonly LimitWindow[], stored: StoredTats, now: number, cost = 1): GcraDecision {
  const tats = new Map<string, number>();
  let refusal: { key: string; retryAfterMs: number } | undefined;
  for (const w of windows) {
    if (!(w.limit >= 1 && w.periodMs >= 1)) throw new RangeError(`window ${w.key}: limit and periodMs must be positive`);
    const interval = w.periodMs / w.limit;
    // Under a clock that only moves forward a stored TAT is at most one period ahead. One further
    // ahead means the clock was stepped back: the window counts as idle rather than locked out for
    // as long as the step (a step back grants at most one extra burst).
    const kept = stored.get(w.key);
    const tat = Math.max(tats.get(w.key) ?? (kept === undefined || kept > now + w.periodMs ? now : kept), now);
    const next = tat + cost * interval;
    const allowAt = next - w.periodMs;
    if (allowAt > now) {
      const retryAfterMs = Math.ceil(allowAt - now);
      if (!refusal || retryAfterMs > refusal.retryAfterMs) refusal = { key: w.key, retryAfterMs };
    } else tats.set(w.key, next);
  }
  return refusal ? { allowed: false, ...refusal } : { allowed: true, tats };
}
