import { inspect } from 'node:util';
import { CleanExit, ExitCode, UsageError, errorMessage } from './errors';
import { isAbortError, processShutdown, type ShutdownManager } from './shutdown';

export interface RunMainOptions {
  /** Shutdown manager whose handlers run after main (default: the process-wide one). */
  shutdown?: ShutdownManager;
  /** Ends the process (default `process.exit`). */
  exit?: (code: number) => void;
  /** Where the error line goes (default `process.stderr`). */
  stderr?: { write(chunk: string): unknown };
  /** Read for `LOG_LEVEL` (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Searched for `--log-level debug|trace` (default `process.argv`). */
  argv?: readonly string[];
  /** Report uncaught exceptions and unhandled rejections as one line and exit 1 (default true). */
  catchUncaught?: boolean;
}

/**
 * Runs a command's async main function and ends the process:
 *
 * - when `fn` settles, the shutdown handlers run (reverse order), then the process exits;
 *   SIGTERM/SIGINT (see `installSignalHandlers`) abort the shutdown signal, and once `fn` returns
 *   the handlers run the same way. A daemon's `fn` must therefore run until its signal aborts;
 * - exit code 0 on success (an `AbortError` thrown after shutdown started counts as success),
 *   2 for a `UsageError` (bad flags, env vars, config), 1 for any other error or a failed handler;
 * - an error is printed as ONE line on stderr, `<name>: <first line of message>`
 *   (`<name>: error: <message>` for usage errors), with the stack and causes only when
 *   `LOG_LEVEL` (or `--log-level`) is debug or trace.
 *
 * Resolves to the exit code (useful when `exit` is injected).
 */
export async function runMain(
  name: string,
  fn: () => void | Promise<void>,
  options: RunMainOptions = {},
): Promise<number> {
  const shutdown = options.shutdown ?? processShutdown;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const stderr = options.stderr ?? process.stderr;
  const verbose = wantsVerbose(options.env ?? process.env, options.argv ?? process.argv);
  const report = (err: unknown): void => {
    stderr.write(formatError(name, err, verbose) + '\n');
  };
  const onUncaught = (err: unknown): void => {
    report(err);
    exit(ExitCode.Failure);
  };
  const catchUncaught = options.catchUncaught ?? true;
  if (catchUncaught) {
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
  }

  const main = Promise.resolve().then(fn);
  shutdown.trackMain(main);
  let code: number = ExitCode.Ok;
  try {
    await main;
  } catch (err) {
    if (err instanceof CleanExit) {
      code = ExitCode.Ok;
    } else if (shutdown.signal.aborted && isAbortError(err)) {
      code = ExitCode.Ok;
    } else {
      code = err instanceof UsageError ? ExitCode.Usage : ExitCode.Failure;
      report(err);
    }
  }
  const handlersOk = await shutdown.shutdown('main returned');
  if (!handlersOk && code === ExitCode.Ok) code = ExitCode.Failure;
  exit(code);
  if (catchUncaught) {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
  return code;
}

/**
 * The one-line report of an error: `<name>: <first line of message>`, or
 * `<name>: error: <message>` for a UsageError; with `verbose`, the stack and causes follow.
 */
export function formatError(name: string, err: unknown, verbose = false): string {
  const message = firstLine(err);
  const line = err instanceof UsageError ? `${name}: error: ${message}` : `${name}: ${message}`;
  if (!verbose) return line;
  return `${line}\n${inspect(err, { depth: 4 })}`;
}

function firstLine(err: unknown): string {
  const first = errorMessage(err)
    .split('\n')
    .find((l) => l.trim() !== '');
  return first?.trim() || 'unknown error';
}

function wantsVerbose(env: NodeJS.ProcessEnv, argv: readonly string[]): boolean {
  const debugLevel = (v: string | undefined) =>
    v !== undefined && ['debug', 'trace'].includes(v.toLowerCase());
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--log-level') return debugLevel(argv[i + 1]);
    if (a.startsWith('--log-level=')) return debugLevel(a.slice('--log-level='.length));
  }
  return debugLevel(env['LOG_LEVEL']);
}
