import type { Cleanup, Result } from '@knet/testing';

/** What each part of `npm run bench -- podgw` gets from bench/podgw/main.ts. */
export interface BenchContext {
  /** One result line on stdout (`bench: "gateway"` is added). */
  emit: (r: Result) => void;
  /** Progress on stderr. */
  log: (msg: string) => void;
  /** Stop steps registered here run at the end, also on failure or Ctrl-C. */
  cleanup: Cleanup;
  /** `--seconds`: how long each timed measurement runs. */
  seconds: number;
  /** `--keep`: keep logs and temp dirs. */
  keep: boolean;
}
