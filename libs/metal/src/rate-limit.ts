/**
 * Reading the waits the Metal API asks for. Its answers carry `X-RateLimit-Limit`,
 * `X-RateLimit-Remaining` and `X-RateLimit-Reset` (packngo, Equinix's first Go client, reads the
 * reset as Unix seconds), and a 429 or 503 may carry the standard `Retry-After` (delta-seconds or
 * an HTTP date). The spec itself documents none of them, so both spellings of a reset are taken:
 * a large number is an epoch, a small one seconds from now.
 */
import { parseRetryAfter } from '@knet/runtime';

/** A reset at or above this many seconds is a Unix time (2001-09-09), below it a delay in seconds. */
export const EPOCH_SECONDS_THRESHOLD = 1_000_000_000;

/** The longest wait taken from a header: a broken or hostile value must not stop the client for good. */
export const MAX_SERVER_WAIT_MS = 60 * 60 * 1000;

/** The headers the waits are read from (a fetch `Headers` satisfies it). */
export interface HeaderReader {
  get(name: string): string | null;
}

/**
 * The milliseconds until an `X-RateLimit-Reset`: a Unix time in seconds (at or above
 * `EPOCH_SECONDS_THRESHOLD`; one in the past is 0) or seconds from now; undefined when absent or
 * unreadable.
 */
export function parseRateLimitReset(value: string | null | undefined, now: number): number | undefined {
  const text = value?.trim();
  if (!text || !/^\d+(\.\d+)?$/.test(text)) return undefined;
  const n = Number(text);
  if (n >= EPOCH_SECONDS_THRESHOLD) return Math.max(0, Math.round(n * 1000 - now));
  return Math.round(n * 1000);
}

/**
 * How long an answer asks every request to hold off, in milliseconds, or undefined when it does
 * not say: a 429 by `Retry-After`, else by `X-RateLimit-Reset` (Retry-After is the instruction for
 * this answer; the reset only describes the rate window); a 503 by `Retry-After` only (its reset
 * is the rate window's, not the outage's); any other answer only when `X-RateLimit-Remaining` is
 * 0, until the reset. At most `MAX_SERVER_WAIT_MS`.
 */
export function serverWaitMs(status: number, headers: HeaderReader, now: number): number | undefined {
  const wait = askedWaitMs(status, headers, now);
  return wait === undefined ? undefined : Math.min(wait, MAX_SERVER_WAIT_MS);
}

function askedWaitMs(status: number, headers: HeaderReader, now: number): number | undefined {
  const retryAfter = parseRetryAfter(headers.get('retry-after'), now);
  if (status === 503) return retryAfter;
  const reset = parseRateLimitReset(headers.get('x-ratelimit-reset'), now);
  if (status === 429) return retryAfter ?? reset;
  return headers.get('x-ratelimit-remaining')?.trim() === '0' ? reset : undefined;
}
