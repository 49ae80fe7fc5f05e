/** The per-source challenge limiter: a token bucket per address, bounded in memory, clock-step safe. */
import { describe, expect, it } from 'vitest';
import { SourceLimiter } from '../../../src/attestation/sourceLimiter.js';
import { ManualClock } from '../../../src/clock.js';

const limiter = (clock: ManualClock, maxSources = 100) => new SourceLimiter({ ratePerSecond: 10, burst: 3, maxSources }, clock);
const refusal = (f: () => void) => {
  try {
    f();
  } catch (e) {
    return { code: (e as { code: string }).code, retryAfterSeconds: (e as { retryAfterSeconds?: number }).retryAfterSeconds };
  }
  return undefined;
};

describe('SourceLimiter', () => {
  it('a burst passes, the next is rate_limited with Retry-After, and a token returns at the rate', () => {
    const clock = new ManualClock(1_000_000);
    const l = limiter(clock);
    for (let i = 0; i < 3; i++) l.take('10.0.0.1');
    expect(refusal(() => l.take('10.0.0.1'))).toEqual({ code: 'rate_limited', retryAfterSeconds: 1 });
    expect(refusal(() => l.take('10.0.0.2'))).toBeUndefined(); // another source is not affected
    clock.advance(100);
    expect(refusal(() => l.take('10.0.0.1'))).toBeUndefined();
  });

  it('a clock stepped back takes nothing away (and gives nothing)', () => {
    const clock = new ManualClock(1_000_000);
    const l = limiter(clock);
    l.take('a');
    clock.set(1_000_000 - 86_400_000);
    expect(refusal(() => l.take('a'))).toBeUndefined();
    expect(refusal(() => l.take('a'))).toBeUndefined();
    expect(refusal(() => l.take('a'))?.code).toBe('rate_limited');
  });

  it('keeps at most maxSources buckets', () => {
    const l = limiter(new ManualClock(0), 5);
    for (let i = 0; i < 50; i++) l.take(`s${i}`);
    expect(l.size).toBe(5);
  });
});
