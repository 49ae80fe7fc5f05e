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
 *
 * At the edges: there are no fixed windows that reset at a boundary; the state slides with time.
 * Over any span of length t, at most `limit + ⌊t · limit / periodMs⌋` requests pass: the burst,
 * then what refills meanwhile. So within one period up to `2 · limit − 1` can pass (a full burst
 * at its start and the refill during it), and `limit` per period sustained; a request exactly at
 * the instant a slot frees up passes, one a millisecond earlier is refused.
 */
/** How far behind a request's time may be (see gcra) before the stored state is taken for a clock stepped back. */
export const CLOCK_STEP_MS = 60_000;

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
    // A stored TAT is at most one period ahead of the time it was charged at. `now` may be a little
    // older than that (taken when its request began, charged after requests that began later and
    // got the lock first; replicas' clocks differ by a few ms): that only makes this decision
    // stricter. A TAT further ahead than CLOCK_STEP_MS beyond the period means the clock was stepped
    // back: the window counts as idle rather than locked out for as long as the step (a step back
    // grants at most one extra burst).
    const kept = stored.get(w.key);
    const tat = Math.max(tats.get(w.key) ?? (kept === undefined || kept > now + w.periodMs + CLOCK_STEP_MS ? now : kept), now);
    const next = tat + cost * interval;
    const allowAt = next - w.periodMs;
    if (allowAt > now) {
      const retryAfterMs = Math.ceil(allowAt - now);
      if (!refusal || retryAfterMs > refusal.retryAfterMs) refusal = { key: w.key, retryAfterMs };
    } else tats.set(w.key, next);
  }
  return refusal ? { allowed: false, ...refusal } : { allowed: true, tats };
}
