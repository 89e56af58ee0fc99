import { inspect } from 'node:util';

/** Process exit codes of every knet command. */
export const ExitCode = {
  /** Finished, or shut down gracefully on SIGTERM/SIGINT. */
  Ok: 0,
  /** Runtime error, failed shutdown handler or shutdown timeout. */
  Failure: 1,
  /** Bad command line, environment variable or configuration. */
  Usage: 2,
} as const;

/**
 * A usage or configuration error: `runMain` prints it as `<name>: error: <message>` and exits 2.
 * `parseOptions` throws it for unknown flags, missing arguments and invalid values.
 */
export class UsageError extends Error {
  readonly exitCode = ExitCode.Usage;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/**
 * Not a failure: the program already did what was asked (printed `--help` or `--version`) and
 * should exit 0 without running. `runMain` exits 0 silently.
 */
export class CleanExit extends Error {
  readonly exitCode = ExitCode.Ok;

  constructor(message = 'exit requested') {
    super(message);
    this.name = 'CleanExit';
  }
}

/**
 * The message of anything thrown, for logs and one-line errors: an `Error`'s (or error-like
 * object's) message, falling back to its name when empty; a string as it is; anything else
 * inspected on one line. Use it instead of `(e as Error).message`, which is `undefined` for
 * strings and plain objects thrown by callbacks.
 */
export function errorMessage(e: unknown): string {
  if (typeof e === 'string') return e;
  if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') {
    const { message, name } = e as { message: string; name?: unknown };
    return message || (typeof name === 'string' && name) || 'Error';
  }
  return inspect(e, { breakLength: Infinity });
}
