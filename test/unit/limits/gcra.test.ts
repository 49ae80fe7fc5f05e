/** The GCRA decision over several windows: burst = limit, an exact retry-after, all or nothing. */
import { describe, expect, it } from 'vitest';
import { gcra, type LimitWindow } from '../../../src/limits/gcra.js';

const T = 1_000_000;
const w = (key: string, limit: number, periodMs: number): LimitWindow => ({ key, limit, periodMs });

/** Charges `ws` at `now` against `state`, applying the result like the store does. */
function charge(state: Map<string, number>, ws: LimitWindow[], now: number) {
  const d = gcra(ws, state, now);
  if (d.allowed) for (const [k, tat] of d.tats) state.set(k, tat);
  return d;
}

describe('gcra', () => {
  it('an idle window lets `limit` through at once, then one per period/limit, with the exact wait', () => {
    const s = new Map<string, number>();
    const win = w('a', 4, 1000);
    for (let i = 0; i < 4; i++) expect(charge(s, [win], T).allowed).toBe(true);
    expect(charge(s, [win], T)).toEqual({ allowed: false, key: 'a', retryAfterMs: 250 });
    expect(charge(s, [win], T + 249)).toEqual({ allowed: false, key: 'a', retryAfterMs: 1 });
    expect(charge(s, [win], T + 250).allowed).toBe(true);
    expect(charge(s, [win], T + 250)).toEqual({ allowed: false, key: 'a', retryAfterMs: 250 });
  });

  it('a window idle for a whole period is full again; never more than the burst', () => {
    const s = new Map<string, number>();
    const win = w('a', 3, 3000);
    for (let i = 0; i < 3; i++) charge(s, [win], T);
    let passed = 0;
    for (let i = 0; i < 10; i++) if (charge(s, [win], T + 60_000).allowed) passed++;
    expect(passed).toBe(3);
  });

  it('at a steady rate exactly at the limit every request passes', () => {
    const s = new Map<string, number>();
    const win = w('a', 10, 1000);
    for (let i = 0; i < 1000; i++) expect(charge(s, [win], T + i * 100).allowed).toBe(true);
  });

  it('several windows: the most restrictive decides, the wait is the longest, and a refusal charges none', () => {
    const s = new Map<string, number>();
    const perSecond = w('s', 5, 1000);
    const perHour = w('h', 6, 3_600_000);
    for (let i = 0; i < 5; i++) expect(charge(s, [perSecond, perHour], T).allowed).toBe(true);
    const before = new Map(s);
    expect(charge(s, [perSecond, perHour], T)).toEqual({ allowed: false, key: 's', retryAfterMs: 200 });
    expect(s).toEqual(before);
    expect(charge(s, [perSecond, perHour], T + 1000).allowed).toBe(true);
    // Now the hour window is spent: it refuses for its own, longer, wait; the second window is not charged.
    const spent = new Map(s);
    expect(charge(s, [perSecond, perHour], T + 2000)).toEqual({ allowed: false, key: 'h', retryAfterMs: 600_000 - 2000 });
    expect(s).toEqual(spent);
    expect(charge(s, [perSecond], T + 2000).allowed).toBe(true);
  });

  it('refuses a window with no limit or period', () => {
    expect(() => gcra([w('a', 0, 1000)], new Map(), T)).toThrow(RangeError);
    expect(() => gcra([w('a', 1, 0)], new Map(), T)).toThrow(RangeError);
  });

  it('over any span of length t at most limit + ⌊t · limit / period⌋ pass, whatever the arrival pattern', () => {
    const win = w('a', 10, 60_000);
    for (const step of [1, 700, 5_999, 6_000, 13_000]) {
      const s = new Map<string, number>();
      const passed: number[] = [];
      for (let at = T; at < T + 300_000; at += step) if (charge(s, [win], at).allowed) passed.push(at);
      for (const from of passed) {
        for (const t of [1_000, 30_000, 59_999, 60_000, 120_000]) {
          const inSpan = passed.filter((x) => x >= from && x < from + t).length;
          expect(inSpan, `step ${step}, span ${t}`).toBeLessThanOrEqual(10 + Math.floor((t * 10) / 60_000));
        }
      }
    }
  });

  it("a request timed a little before the stored state (charged after later ones) is judged, not taken for a clock step", () => {
    const s = new Map<string, number>();
    const win = w('a', 10, 60_000);
    for (let i = 0; i < 10; i++) expect(charge(s, [win], T).allowed).toBe(true);
    // Began 5 ms before the burst, got the lock after it: refused (a reset would allow a second burst).
    expect(charge(s, [win], T - 5)).toEqual({ allowed: false, key: 'a', retryAfterMs: 6005 });
    expect(charge(s, [win], T - 59_000).allowed).toBe(false);
  });

  it('a clock stepped back a day: the window counts as idle (one burst), not locked out for a day', () => {
    const s = new Map<string, number>();
    const win = w('a', 2, 1000);
    expect(charge(s, [win], T).allowed).toBe(true);
    expect(charge(s, [win], T).allowed).toBe(true);
    expect(charge(s, [win], T).allowed).toBe(false);
    const back = T - 86_400_000;
    expect(charge(s, [win], back).allowed).toBe(true);
    expect(charge(s, [win], back).allowed).toBe(true);
    expect(charge(s, [win], back)).toEqual({ allowed: false, key: 'a', retryAfterMs: 500 });
  });
});
