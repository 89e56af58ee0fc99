import { errorMessage, sleep } from '@knet/runtime';
import { formatSeconds, oneLine } from './exec';

/** The one `sleep` of the workspace (`@knet/runtime`'s): `await sleep(200)`; with a signal it stops early. */
export { sleep };

export interface UntilOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Time between attempts (default 100 ms). */
  intervalMs?: number;
}

/** What `until` resolves to: the first value that is not undefined, null or false. */
export type UntilValue<T> = Exclude<Awaited<T>, undefined | null | false>;

/**
 * Polls `fn` until it returns (or resolves to) something other than undefined, null or false, and
 * resolves to that value: a predicate (`() => proc.running`) or a lookup (`() => findLease(mac)`).
 * An attempt that throws counts as "not yet". After `timeoutMs` (default 10 s; a number as the
 * third argument is that) it rejects with one line naming `what` was awaited and the last error:
 * `timed out after 10 s waiting for the lease of 02:00:5e:00:53:01 (last error: ECONNREFUSED)`.
 * An attempt still running at the deadline is not waited for.
 *
 * ```ts
 * const lease = await until('a DHCP lease', () => server.leaseOf(mac), 5000);
 * await until(() => `the proxy to serve (output: ${proc.output()})`, async () => (await fetch(url)).ok);
 * ```
 */
export async function until<T>(
  what: string | (() => string),
  fn: () => T | PromiseLike<T>,
  options: UntilOptions | number = {},
): Promise<UntilValue<T>> {
  const { timeoutMs = 10_000, intervalMs = 100 } =
    typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let failed = false;
  const timedOut = (): Error => {
    const waited = `timed out after ${formatSeconds(timeoutMs)} waiting for ${typeof what === 'string' ? what : what()}`;
    return new Error(failed ? `${waited} (last error: ${oneLine(errorMessage(lastError))})` : waited);
  };
  for (;;) {
    const left = deadline - Date.now();
    const outcome = await attempt(fn, Math.max(left, 0));
    if (outcome.kind === 'value') {
      const v = outcome.value;
      if (v !== undefined && v !== null && v !== false) return v as UntilValue<T>;
      failed = false;
    } else if (outcome.kind === 'error') {
      lastError = outcome.error;
      failed = true;
    } else {
      throw timedOut();
    }
    const rest = deadline - Date.now();
    if (rest <= 0) throw timedOut();
    await sleep(Math.min(intervalMs, rest));
  }
}

type Outcome<T> = { kind: 'value'; value: Awaited<T> } | { kind: 'error'; error: unknown } | { kind: 'late' };

/** One call of `fn`, given up on (not cancelled) when it takes longer than `ms`. */
function attempt<T>(fn: () => T | PromiseLike<T>, ms: number): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ kind: 'late' }), ms);
    Promise.resolve()
      .then(fn)
      .then(
        (value) => resolve({ kind: 'value', value: value as Awaited<T> }),
        (error: unknown) => resolve({ kind: 'error', error }),
      )
      .finally(() => clearTimeout(timer));
  });
}
