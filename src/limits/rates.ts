/**
 * The text forms of rates and durations in policy files: a rate is `N/PERIOD` ("5/s",
 * "2000/day", "30/10m") and a duration is a count and a unit ("10s", "1m", "1h", "1d"; the count
 * may be left out in a rate: "/s" is "/1s"). One regular expression each, so the JSON Schema
 * carries them for editors, and one parser each for the broker.
 */

const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000, hour: 3_600_000, d: 86_400_000, day: 86_400_000 };
const UNITS = 's|sec|m|min|h|hour|d|day';

export const RATE_PATTERN = `^([1-9][0-9]{0,8})/([1-9][0-9]{0,5})?(${UNITS})$`;
export const DURATION_PATTERN = `^([1-9][0-9]{0,5})(${UNITS})$`;
const RATE = new RegExp(RATE_PATTERN);
const DURATION = new RegExp(DURATION_PATTERN);

export interface Rate {
  /** Requests allowed per period (and the burst from an idle window). */
  limit: number;
  periodMs: number;
  /** As written in the policy, e.g. `5/s`. */
  text: string;
}

/** `5/s` → { limit: 5, periodMs: 1000 }; undefined when the text is not a rate. */
export function parseRate(text: string): Rate | undefined {
  const m = RATE.exec(text);
  if (!m) return undefined;
  return { limit: Number(m[1]), periodMs: Number(m[2] ?? 1) * UNIT_MS[m[3]!]!, text };
}

/** `10s` → 10000; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : undefined;
}

/** A duration for messages: `90 s`, `5 min`, `2 h`, `1 day`. */
export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} day${ms === 86_400_000 ? '' : 's'}`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
