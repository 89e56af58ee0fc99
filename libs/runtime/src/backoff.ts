/**
 * Capped exponential backoff with jitter: delay n is a random value in
 * [base·factorⁿ·(1−jitter), base·factorⁿ] capped at `max`, so many clients that lost the same server
 * do not come back in lock-step. `reset()` after a success.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly opts: {
      baseMs?: number;
      maxMs?: number;
      factor?: number;
      jitter?: number;
      random?: () => number;
    } = {},
  ) {
    const { baseMs = 250, maxMs = 120_000, factor = 2, jitter = 0.5 } = opts;
    if (baseMs <= 0 || maxMs < baseMs) throw new RangeError('Backoff: need 0 < baseMs <= maxMs');
    if (factor < 1) throw new RangeError('Backoff: factor must be >= 1');
    if (jitter < 0 || jitter > 1) throw new RangeError('Backoff: jitter must be within [0, 1]');
  }

  /** The delay before the next attempt, growing with each call. */
  next(): number {
    const { baseMs = 250, maxMs = 120_000, factor = 2, jitter = 0.5, random = Math.random } = this.opts;
    const ceiling = Math.min(maxMs, baseMs * factor ** this.attempt);
    if (ceiling < maxMs) this.attempt++;
    return Math.round(ceiling * (1 - jitter * random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * The milliseconds a `Retry-After` header asks for: delta-seconds (fractions allowed) or an HTTP
 * date (one in the past is 0); undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // HTTP dates (IMF-fixdate, RFC 850, asctime) start with the day's name.
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
