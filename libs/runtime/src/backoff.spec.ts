import { Backoff, parseRetryAfter } from './backoff';

describe('Backoff', () => {
  it('grows by the factor up to the cap, with jitter below the ceiling, and starts over after reset()', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, factor: 2, jitter: 0.5, random: () => 1 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([
      50, 100, 200, 400, 500, 500,
    ]);
    b.reset();
    expect(b.next()).toBe(50);
    const none = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    expect([none.next(), none.next()]).toEqual([100, 200]);
  });

  it('refuses settings that make no sense', () => {
    expect(() => new Backoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 10, maxMs: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(RangeError);
    expect(() => new Backoff({ jitter: 2 })).toThrow(RangeError);
  });
});

describe('parseRetryAfter', () => {
  const NOW = Date.parse('2026-03-02T10:00:00Z');
  it.each<[string | null | undefined, number | undefined]>([
    [undefined, undefined],
    [null, undefined],
    ['', undefined],
    ['7', 7000],
    [' 120 ', 120_000],
    [' 0 ', 0],
    ['1.5', 1500],
    ['Mon, 02 Mar 2026 10:00:30 GMT', 30_000],
    ['Mon, 02 Mar 2026 09:59:00 GMT', 0],
    ['-3', undefined],
    ['soon', undefined],
    ['2026-03-02T10:00:30Z', undefined],
  ])('%p → %p ms', (value, expected) => {
    expect(parseRetryAfter(value, NOW)).toBe(expected);
  });
});
