import { parseRateLimitReset, serverWaitMs } from './rate-limit';

const NOW = Date.parse('2026-03-02T10:00:00Z');

function headers(h: Record<string, string>): Headers {
  return new Headers(h);
}

describe('parseRateLimitReset', () => {
  it.each<[string | undefined, number | undefined]>([
    [undefined, undefined],
    ['12', 12_000],
    ['0', 0],
    [String(NOW / 1000 + 45), 45_000],
    [String(NOW / 1000 - 10), 0],
    ['1000000000', 0],
    ['999999999', 999_999_999_000],
    ['later', undefined],
  ])('%p → %p ms', (value, expected) => {
    expect(parseRateLimitReset(value, NOW)).toBe(expected);
  });
});

describe('serverWaitMs', () => {
  it.each<[string, number, Record<string, string>, number | undefined]>([
    ['429 with Retry-After', 429, { 'Retry-After': '5' }, 5000],
    ['429 with a reset in seconds', 429, { 'X-RateLimit-Reset': '9' }, 9000],
    ['429 with both: Retry-After', 429, { 'Retry-After': '5', 'X-RateLimit-Reset': '9' }, 5000],
    [
      '429 with an unreadable Retry-After: the reset',
      429,
      { 'Retry-After': 'soon', 'X-RateLimit-Reset': '9' },
      9000,
    ],
    ['429 without either', 429, { 'X-RateLimit-Remaining': '0' }, undefined],
    ['503 with Retry-After', 503, { 'Retry-After': '3', 'X-RateLimit-Reset': '600' }, 3000],
    ['503 with only the rate window', 503, { 'X-RateLimit-Reset': '600' }, undefined],
    ['200 with quota left', 200, { 'X-RateLimit-Remaining': '3', 'X-RateLimit-Reset': '60' }, undefined],
    ['200 with the quota spent', 200, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '60' }, 60_000],
    ['404 with the quota spent', 404, { 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': '2' }, 2000],
    ['429 asking for years: an hour at most', 429, { 'X-RateLimit-Reset': '999999999' }, 3_600_000],
    ['429 with a Retry-After of a day: an hour at most', 429, { 'Retry-After': '86400' }, 3_600_000],
  ])('%s', (_what, status, h, expected) => {
    expect(serverWaitMs(status, headers(h), NOW)).toBe(expected);
  });
});
