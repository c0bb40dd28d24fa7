import { jest } from '@jest/globals';
import { backoffDelay, DEFAULT_RECONNECT } from '../../src/session/session.js';
import { seeded } from '../support/prng.js';

/** A random source that always returns `value`. */
const fixed = (value: number) => () => value;

const schedule = { initialDelay: 100, maxDelay: 2000, factor: 2 };

describe('backoffDelay: the wait before a reconnect attempt (exponential backoff, full jitter)', () => {
  it('the ceiling grows by factor with each consecutive failure: initialDelay × factor^failures', () => {
    const top = fixed(0.5);
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(n, schedule, top))).toEqual([50, 100, 200, 400, 800]);
  });

  it('honours the factor: 3 triples each step, 1 keeps the delay flat', () => {
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, { ...schedule, factor: 3 }, fixed(0.5)))).toEqual([50, 150, 450, 1000]);
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, { ...schedule, factor: 1 }, fixed(0.5)))).toEqual([50, 50, 50, 50]);
  });

  it('is capped by maxDelay: once initialDelay × factor^failures passes it, the ceiling stays at maxDelay (also where the power overflows to Infinity)', () => {
    const top = fixed(0.5);
    expect(backoffDelay(5, schedule, top)).toBe(1000); // 100 × 32 = 3,200 → 2,000
    expect(backoffDelay(50, schedule, top)).toBe(1000);
    expect(backoffDelay(5000, schedule, top)).toBe(1000); // 2^5000 is Infinity
    expect(backoffDelay(3, { ...schedule, maxDelay: 250 }, top)).toBe(125);
    const nearlyOne = fixed(1 - Number.EPSILON);
    for (let n = 0; n < 100; n++) expect(backoffDelay(n, schedule, nearlyOne)).toBeLessThanOrEqual(schedule.maxDelay);
  });

  it('is never negative, and 0 only when the random draw is 0 (or initialDelay / maxDelay is 0)', () => {
    const random = seeded(1);
    for (let n = 0; n < 200; n++) expect(backoffDelay(n % 40, schedule, random)).toBeGreaterThanOrEqual(0);
    expect(backoffDelay(3, schedule, fixed(0))).toBe(0);
    expect(backoffDelay(3, { ...schedule, initialDelay: 0 }, fixed(0.9))).toBe(0);
    expect(backoffDelay(3, { ...schedule, maxDelay: 0 }, fixed(0.9))).toBe(0);
  });

  it('full jitter: the delay is random × ceiling, so the draws spread over the whole of [0, ceiling)', () => {
    const ceiling = 800; // failures 3
    expect(backoffDelay(3, schedule, fixed(0))).toBe(0);
    expect(backoffDelay(3, schedule, fixed(0.25))).toBe(200);
    expect(backoffDelay(3, schedule, fixed(1 - Number.EPSILON))).toBeCloseTo(ceiling, 6);
    // 2,000 seeded draws: every tenth of the range is hit, none outside it.
    const random = seeded(42);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 2000; i++) {
      const d = backoffDelay(3, schedule, random);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(ceiling);
      buckets[Math.floor((d / ceiling) * 10)]++;
    }
    for (const count of buckets) expect(count).toBeGreaterThan(100); // 200 expected each
  });

  it('draws from Math.random unless a source is given', () => {
    const spy = jest.spyOn(Math, 'random').mockReturnValue(0.75);
    try {
      expect(backoffDelay(2, DEFAULT_RECONNECT)).toBe(300); // 0.75 × 100 × 2²
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
  });
});
