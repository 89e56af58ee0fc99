import { hostname } from 'node:os';
import pino from 'pino';

/**
 * What libraries and app modules log through: the four levels and `child`. pino's logger (what
 * `createLogger` returns) satisfies it, and so do `silentLogger` and `RecordingLogger`, so a library
 * takes `logger?: Logger` and never depends on pino. Both call forms work: `logger.info('msg')` and
 * `logger.info({ field }, 'msg')`; errors go under `err` (`{ err }`), which pino serialises.
 */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger;
}

/** One level of a `Logger`: fields then message, or a message alone. */
export interface LogMethod {
  (fields: object, msg?: string): void;
  (msg: string): void;
}

/** The process logger `createLogger` returns: pino, JSON lines on stdout (all of pino's API). */
export type PinoLogger = pino.Logger;

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
export function createLogger(options: LoggerOptions): PinoLogger {
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

const drop = (): void => undefined;

/** A `Logger` that drops everything: the default of every library's optional `logger`. */
export const silentLogger: Logger = {
  debug: drop,
  info: drop,
  warn: drop,
  error: drop,
  child: () => silentLogger,
};

/** One line kept by `RecordingLogger`: its level, message, fields and the bindings of its child. */
export interface RecordedLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  /** The message, '' when only fields were logged. */
  msg: string;
  /** The fields object (bindings of `child` merged under it), `{}` when only a message was logged. */
  fields: Record<string, unknown>;
}

/**
 * A `Logger` for unit tests that keeps every line in `lines` (children write to the same list), so
 * a test can assert what was logged and what never was (secrets):
 *
 * ```ts
 * const logger = new RecordingLogger();
 * await reconcile({ logger });
 * expect(logger.messages('warn')).toEqual(['gateway lost']);
 * ```
 */
export class RecordingLogger implements Logger {
  readonly debug: LogMethod = this.at('debug');
  readonly info: LogMethod = this.at('info');
  readonly warn: LogMethod = this.at('warn');
  readonly error: LogMethod = this.at('error');

  constructor(
    readonly lines: RecordedLine[] = [],
    private readonly bindings: Record<string, unknown> = {},
  ) {}

  child(bindings: Record<string, unknown>): RecordingLogger {
    return new RecordingLogger(this.lines, { ...this.bindings, ...bindings });
  }

  /** The messages logged at `level` (every level when omitted), in order. */
  messages(level?: RecordedLine['level']): string[] {
    return this.lines.filter((l) => level === undefined || l.level === level).map((l) => l.msg);
  }

  /** Every line as JSON text, to assert that something (a token) never reached the log. */
  text(): string {
    return JSON.stringify(this.lines);
  }

  private at(level: RecordedLine['level']): LogMethod {
    return (first: object | string, msg?: string) => {
      const fields = typeof first === 'string' ? {} : (first as Record<string, unknown>);
      this.lines.push({
        level,
        msg: typeof first === 'string' ? first : (msg ?? ''),
        fields: { ...this.bindings, ...fields },
      });
    };
  }
}
