import { hostname } from 'node:os';
import pino from 'pino';

/** The logger every knet process uses: pino, JSON lines on stdout. */
export type Logger = pino.Logger;

/** Levels from most to least severe; `silent` turns logging off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names whose values never reach the logs (at the top level and two levels down). */
export const DEFAULT_REDACTED_KEYS: readonly string[] = [
  'token',
  'accessToken',
  'refreshToken',
  'bearerToken',
  'password',
  'passwd',
  'secret',
  'clientSecret',
  'key',
  'apiKey',
  'privateKey',
  'presharedKey',
  'keyPem',
  'authorization',
  'Authorization',
  'cookie',
];

/** The value redacted fields are replaced with. */
export const REDACTED = '[REDACTED]';

/** `DEFAULT_REDACTED_KEYS` as pino redact paths: `key`, `*.key` and `*.*.key` for each. */
export const DEFAULT_REDACT_PATHS: readonly string[] = redactPathsForKeys(DEFAULT_REDACTED_KEYS);

export interface LoggerOptions {
  /** Process or component name, logged as `name` on every line. */
  name: string;
  /** Minimum level to log (default `info`). */
  level?: LogLevel;
  /**
   * Redact paths (pino/fast-redact syntax, e.g. `spec.token`, `*.password`) replacing the defaults,
   * or `false` to turn redaction off. Default: `DEFAULT_REDACT_PATHS`.
   */
  redact?: readonly string[] | false;
  /** Paths redacted in addition to `redact` (or the defaults). */
  additionalRedactPaths?: readonly string[];
  /** Where JSON lines go. Default: stdout (synchronous, so nothing is lost on exit). */
  destination?: pino.DestinationStream;
  /** Fields logged on every line besides name, pid and hostname. */
  bindings?: Record<string, unknown>;
}

/**
 * Creates a JSON logger: one object per line with `level` as a label ("info"), ISO `time`,
 * `name`, `pid`, `hostname` and `msg`; errors under `err` with type, message and stack.
 */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(
      `createLogger: unknown log level ${JSON.stringify(level)}; use one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  const paths =
    options.redact === false
      ? [...(options.additionalRedactPaths ?? [])]
      : [...(options.redact ?? DEFAULT_REDACT_PATHS), ...(options.additionalRedactPaths ?? [])];
  const pinoOptions: pino.LoggerOptions = {
    name: options.name,
    level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    ...(paths.length > 0 ? { redact: { paths, censor: REDACTED } } : {}),
  };
  if (options.bindings) pinoOptions.base = { pid: process.pid, hostname: hostname(), ...options.bindings };
  return pino(pinoOptions, options.destination ?? pino.destination({ dest: 1, sync: true }));
}

/** A child logger that adds `component` (and any other bindings) to every line. */
export function childLogger(
  parent: Logger,
  component: string,
  bindings: Record<string, unknown> = {},
): Logger {
  return parent.child({ component, ...bindings });
}

/** Redact paths covering `key` at the top level and one or two objects down, for each key. */
export function redactPathsForKeys(keys: readonly string[]): string[] {
  return keys.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
}
