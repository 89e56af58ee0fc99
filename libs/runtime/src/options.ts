import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { CleanExit, UsageError, errorMessage } from './errors';
import { LOG_LEVELS, type LogLevel } from './logger';

/**
 * A default written the way a user would type it (`'10s'`, `9090`, `false`, `['a', 'b']`); it is
 * turned into a string and parsed by the option's schema exactly like a flag or env value.
 */
export type RawDefault = string | number | boolean | readonly string[];

/** One command-line option, declared once: flag, env fallback, help text, schema, default. */
export interface OptionSpec<S extends z.ZodType = z.ZodType> {
  /** Commander flags: `--keepalive <duration>`, `-p, --port <port>`, or a switch `--dry-run`. */
  flag: string;
  /** Environment variable used when the flag is absent; an empty value counts as unset. */
  env?: string;
  /** Help text; `(env: X, default: Y)` is appended. */
  description: string;
  /**
   * Parses the raw string (or `undefined` when the option is unset and has no default; make the
   * schema `.optional()` to allow that). See `schemas` for common kinds.
   */
  schema: S;
  default?: RawDefault;
  /** Never echo the value in errors or help (tokens, passwords). */
  secret?: boolean;
  /**
   * Former names that keep working, listed in the help as aliases: long flags (`--health-port`,
   * taking the same value as `flag`) and env vars, read after `flag` and `env`. Giving the flag
   * and an alias flag together is a usage error; `env` wins over an alias env var.
   */
  aliases?: { flags?: readonly string[]; env?: readonly string[] };
  /**
   * The flag may be given several times; the values are joined with commas (`--cidr a --cidr b`
   * = `--cidr a,b`), for a `schemas.list` option whose re-built tool repeats it (Go's StringSlice).
   */
  repeatable?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

/** The typed result of `parseOptions`: each key holds its schema's output. */
export type ParsedOptions<S extends OptionSpecs> = { -readonly [K in keyof S]: z.output<S[K]['schema']> };

/** A commander `Command` plus the option specs it was built from. */
export interface OptionsProgram<S extends OptionSpecs> {
  readonly command: Command;
  readonly specs: S;
  /**
   * Cross-field checks `parseOptions` runs after the schemas; see `ProgramConfig.validate`. (A
   * method, so any program is an `OptionsProgram<OptionSpecs>`.)
   */
  validate?(opts: ParsedOptions<S>, ctx: Parameters<ValidateOptions<S>>[1]): ParsedOptions<S> | void;
}

/**
 * Checks (and may normalise) the parsed options as a whole: throw to refuse them — a `UsageError`,
 * or any error, which `parseOptions` turns into a one-line `UsageError` (exit 2) — and return a
 * changed copy to normalise values (a URL, a fingerprint), or nothing to keep them.
 * `ctx.name(key)` is how errors name an option: `--pod-name (POD_NAME)`.
 */
export type ValidateOptions<S extends OptionSpecs> = (
  opts: ParsedOptions<S>,
  ctx: { name(key: keyof S & string): string },
) => ParsedOptions<S> | void;

export interface ProgramConfig<S extends OptionSpecs> {
  name: string;
  description?: string;
  /** Adds `-V, --version`. */
  version?: string;
  options: S;
  /** Cross-field checks and normalisation, run by `parseOptions` after every schema passed. */
  validate?: ValidateOptions<S>;
  /**
   * The exit codes `--help` lists, when the command's differ from runMain's three (0, 1, 2): e.g.
   * `{ ...DEFAULT_EXIT_CODES, 130: 'interrupted' }`.
   */
  exitCodes?: Readonly<Record<number, string>>;
}

/** Identity helper that type-checks one option spec where it is written. */
export function option<S extends z.ZodType>(spec: OptionSpec<S>): OptionSpec<S> {
  return spec;
}

/** Creates a commander program with the given options; see `addOptions`. */
export function createProgram<const S extends OptionSpecs>(config: ProgramConfig<S>): OptionsProgram<S> {
  const command = new Command(config.name);
  if (config.description) command.description(config.description);
  if (config.version) command.version(config.version, '-V, --version', 'print the version and exit');
  const program = addOptions(command, config.options);
  if (config.exitCodes) exitCodes.set(command, config.exitCodes);
  return config.validate ? { ...program, validate: config.validate } : program;
}

/** The exit codes of a command run by `runMain` (see `ExitCode`), as `--help` lists them. */
export const DEFAULT_EXIT_CODES: Readonly<Record<number, string>> = {
  0: 'success, or graceful shutdown on SIGTERM/SIGINT',
  1: 'runtime error, failed cleanup or shutdown timeout',
  2: 'invalid flag, environment variable or configuration',
};

/** Per command: its own exit codes (`ProgramConfig.exitCodes`). */
const exitCodes = new WeakMap<Command, Readonly<Record<number, string>>>();

function exitCodesHelp(codes: Readonly<Record<number, string>>): string {
  const width = Math.max(...Object.keys(codes).map((c) => c.length));
  const lines = Object.entries(codes).map(([code, what]) => `  ${code.padEnd(width)}  ${what}`);
  return `\nExit codes:\n${lines.join('\n')}`;
}

/** An option's commander attribute and long flag (and those of its alias flags). */
interface OptionNames {
  attribute: string;
  long: string;
  aliases: { attribute: string; long: string }[];
}

/** Per command: option key → its names. */
const optionNames = new WeakMap<Command, Map<string, OptionNames>>();

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LONG_FLAG = /^--[A-Za-z0-9][A-Za-z0-9-]*$/;

/**
 * Adds `specs` to an existing commander command: every option's help line shows its env var and
 * default; commander errors and `--help` become exceptions (`UsageError`, `CleanExit`) instead of
 * `process.exit`, so `runMain` decides the exit code.
 */
export function addOptions<const S extends OptionSpecs>(command: Command, specs: S): OptionsProgram<S> {
  const first = !optionNames.has(command);
  const names = optionNames.get(command) ?? new Map<string, OptionNames>();
  optionNames.set(command, names);
  for (const [key, spec] of Object.entries(specs)) {
    for (const env of [spec.env, ...(spec.aliases?.env ?? [])]) {
      if (env !== undefined && !ENV_NAME.test(env)) {
        throw new Error(`option ${key}: env var name ${JSON.stringify(env)} is not valid`);
      }
    }
    const opt = new Option(spec.flag, describe(spec));
    if (spec.repeatable) {
      opt.argParser((value: string, previous: unknown) =>
        typeof previous === 'string' && previous !== '' ? `${previous},${value}` : value,
      );
    }
    if (!opt.long) throw new Error(`option ${key}: flag ${JSON.stringify(spec.flag)} needs a --long name`);
    if (opt.negate) throw new Error(`option ${key}: use a boolean schema instead of a --no-* flag`);
    command.addOption(opt);
    // An alias flag takes the same value as the flag: `--health-port` → `--health-port <port>`.
    const value = /\s[<[].*$/.exec(spec.flag.trim())?.[0] ?? '';
    const aliases = (spec.aliases?.flags ?? []).map((alias) => {
      if (!LONG_FLAG.test(alias)) {
        throw new Error(`option ${key}: alias ${JSON.stringify(alias)} must be a long flag like --old-name`);
      }
      const hidden = new Option(`${alias}${value}`).hideHelp();
      command.addOption(hidden);
      return { attribute: hidden.attributeName(), long: alias };
    });
    names.set(key, { attribute: opt.attributeName(), long: opt.long, aliases });
  }
  if (first) {
    command.exitOverride();
    command.configureOutput({ outputError: () => undefined });
    command.addHelpText('after', () => exitCodesHelp(exitCodes.get(command) ?? DEFAULT_EXIT_CODES));
  }
  return { command, specs };
}

/**
 * Parses `argv` (as `process.argv`: node, script, args…) and `env` into a typed object.
 * Each value comes from its flag, else its env var, else its default, and is parsed by its schema.
 * Throws `UsageError` with ONE line naming the flag and env var, e.g.
 * `--keepalive (KEEPALIVE): must be a duration like 10s, got "abc"` (all problems, `; `-separated),
 * and `CleanExit` after printing `--help` or `--version`.
 */
export function parseOptions<S extends OptionSpecs>(
  program: OptionsProgram<S>,
  argv: readonly string[] = process.argv,
  env: NodeJS.ProcessEnv = process.env,
): ParsedOptions<S> {
  const { command, specs } = program;
  try {
    command.parse([...argv], { from: 'node' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) throw new CleanExit(err.code);
      throw new UsageError(oneLine(err.message.replace(/^error:\s*/, '')), { cause: err });
    }
    throw err;
  }
  const result: Record<string, unknown> = {};
  const problems: string[] = [];
  const named = new Map<string, OptionNames>();
  for (const [key, spec] of Object.entries(specs)) {
    const names = optionNames.get(command)?.get(key);
    if (!names) throw new Error(`option ${key} was not added with addOptions/createProgram`);
    named.set(key, names);
    const given = [names, ...names.aliases].filter(
      (n) => command.getOptionValueSource(n.attribute) === 'cli',
    );
    const envName = [spec.env, ...(spec.aliases?.env ?? [])].find(
      (e) => e !== undefined && env[e] !== undefined && env[e] !== '',
    );
    let raw: string | undefined;
    let where = spec.env === undefined ? names.long : `${names.long} (${spec.env})`;
    if (given.length > 1) {
      problems.push(`${given.map((n) => n.long).join(' and ')} are the same option: give ${names.long} only`);
      continue;
    } else if (given[0]) {
      raw = toRaw(command.getOptionValue(given[0].attribute) as RawDefault);
      if (given[0] !== names) where = given[0].long;
    } else if (envName !== undefined) {
      raw = env[envName];
      where = `${names.long} (${envName})`;
    } else if (spec.default !== undefined) {
      raw = toRaw(spec.default);
    }
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) {
      result[key] = parsed.data;
      continue;
    }
    if (raw === undefined) {
      problems.push(`${where}: required`);
      continue;
    }
    const issue = parsed.error.issues[0];
    const at = issue && issue.path.length > 0 ? `item ${describePath(issue.path)}: ` : '';
    const got = spec.secret ? '' : `, got ${JSON.stringify(raw)}`;
    problems.push(`${where}: ${at}${oneLine(issue?.message ?? 'invalid value')}${got}`);
  }
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  const opts = result as ParsedOptions<S>;
  if (!program.validate) return opts;
  const name = (key: string): string => {
    const names = named.get(key);
    if (!names) throw new Error(`validate: no option ${JSON.stringify(key)}`);
    const env = specs[key]?.env;
    return env === undefined ? names.long : `${names.long} (${env})`;
  };
  try {
    return program.validate(opts, { name }) ?? opts;
  } catch (err) {
    if (err instanceof UsageError && !err.message.includes('\n')) throw err;
    throw new UsageError(oneLine(errorMessage(err)), { cause: err });
  }
}

function describe(spec: OptionSpec): string {
  const extra: string[] = [];
  if (spec.env !== undefined) extra.push(`env: ${spec.env}`);
  if (spec.default !== undefined && toRaw(spec.default) !== '') {
    const shown = typeof spec.default === 'number' || typeof spec.default === 'boolean';
    const text = shown ? String(spec.default) : JSON.stringify(toRaw(spec.default));
    extra.push(`default: ${spec.secret ? '<hidden>' : text}`);
  } else if (spec.default === undefined && !spec.schema.safeParse(undefined).success) {
    extra.push('required');
  }
  const aliases = [...(spec.aliases?.flags ?? []), ...(spec.aliases?.env ?? [])];
  const notes = [extra.join(', '), aliases.length > 0 ? `aliases: ${aliases.join(', ')}` : '']
    .filter(Boolean)
    .join('; ');
  return notes ? `${spec.description} (${notes})` : spec.description;
}

function toRaw(value: RawDefault): string {
  return typeof value === 'string' ? value : Array.isArray(value) ? value.join(',') : String(value);
}

function describePath(path: readonly PropertyKey[]): string {
  const [first, ...rest] = path;
  const head = typeof first === 'number' ? String(first + 1) : String(first);
  return [head, ...rest.map(String)].join('.');
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Schemas for common option kinds. Each takes the raw string (trimmed first) and produces a value.

class Invalid {
  constructor(readonly message: string) {}
}

function fail(message: string): never {
  throw new Invalid(message);
}

/** A schema from a parse function over the trimmed string that calls `fail(message)` on bad input. */
function fromString<T>(parse: (s: string) => T): z.ZodType<T, string> {
  return z.string().transform((s, ctx) => {
    try {
      return parse(s.trim());
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      ctx.addIssue(err.message);
      return z.NEVER;
    }
  });
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a Go-style duration (`500ms`, `10s`, `1.5m`, `1h30m`; bare `0` allowed) to milliseconds,
 * rounded to a whole number. Throws on anything else.
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  if (!/^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|s|m|h))+$/.test(s)) {
    throw new Error(
      `invalid duration ${JSON.stringify(text)}: use a number and unit like 500ms, 10s, 5m, 1h`,
    );
  }
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)/g)) {
    ms += Number(m[1]) * (DURATION_UNITS[m[2] ?? ''] ?? 0);
  }
  return Math.round(ms);
}

/** Formats milliseconds as the shortest duration `parseDuration` reads back: `1h30m`, `10s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

const HOSTNAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function parsePort(s: string, allowZero: boolean): number {
  const min = allowZero ? 0 : 1;
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= min && n <= 65535)) fail(`must be a port number from ${min} to 65535`);
  return n;
}

function ipVersionName(version: 4 | 6 | undefined): string {
  return version === 4 ? 'an IPv4 address' : version === 6 ? 'an IPv6 address' : 'an IP address';
}

/** A host and port, as parsed by `schemas.hostPort`. `host` has no brackets (`::1`, not `[::1]`). */
export interface HostPort {
  host: string;
  port: number;
}

/** Zod schemas for option kinds knet commands share; each accepts the raw flag/env string. */
export const schemas = {
  /** `500ms`, `10s`, `5m`, `1h`, `1h30m` → milliseconds, optionally bounded (in ms). */
  duration(bounds: { min?: number; max?: number } = {}): z.ZodType<number, string> {
    return fromString((s) => {
      let ms: number;
      try {
        ms = parseDuration(s);
      } catch {
        return fail('must be a duration like 10s');
      }
      if (bounds.min !== undefined && ms < bounds.min) fail(`must be at least ${formatDuration(bounds.min)}`);
      if (bounds.max !== undefined && ms > bounds.max) fail(`must be at most ${formatDuration(bounds.max)}`);
      return ms;
    });
  },

  /** A TCP/UDP port, 1–65535 (0 too with `allowZero`, meaning "any free port"). */
  port(options: { allowZero?: boolean } = {}): z.ZodType<number, string> {
    return fromString((s) => parsePort(s, options.allowZero ?? false));
  },

  /** A decimal integer, optionally bounded. */
  integer(bounds: { min?: number; max?: number } = {}): z.ZodType<number, string> {
    return fromString((s) => {
      const n = /^[+-]?\d+$/.test(s) ? Number(s) : NaN;
      if (!Number.isSafeInteger(n)) fail('must be an integer');
      if (bounds.min !== undefined && n < bounds.min) fail(`must be at least ${bounds.min}`);
      if (bounds.max !== undefined && n > bounds.max) fail(`must be at most ${bounds.max}`);
      return n;
    });
  },

  /** An IPv4 or IPv6 address (or only one family with `version`). */
  ipAddress(options: { version?: 4 | 6 } = {}): z.ZodType<string, string> {
    return fromString((s) => {
      const v = isIP(s);
      if (v === 0 || (options.version !== undefined && v !== options.version)) {
        fail(`must be ${ipVersionName(options.version)}`);
      }
      return s;
    });
  },

  /** A CIDR such as `10.0.0.0/8` or `fd00::/64` (or only one family with `version`). */
  cidr(options: { version?: 4 | 6 } = {}): z.ZodType<string, string> {
    const example =
      options.version === 6 ? 'fd00::/64' : options.version === 4 ? '10.0.0.0/8' : '10.0.0.0/8 or fd00::/64';
    return fromString((s) => {
      const [address = '', prefix, ...extra] = s.split('/');
      const v = isIP(address);
      const bits = prefix !== undefined && /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
      if (
        v === 0 ||
        extra.length > 0 ||
        address.includes('%') ||
        (options.version !== undefined && v !== options.version) ||
        !(bits >= 0 && bits <= (v === 4 ? 32 : 128))
      ) {
        fail(`must be a CIDR like ${example}`);
      }
      return s;
    });
  },

  /** `host:port`, `1.2.3.4:80` or `[fd00::1]:443` → `{ host, port }`; `defaultPort` allows a bare host. */
  hostPort(options: { defaultPort?: number } = {}): z.ZodType<HostPort, string> {
    const message = 'must be host:port like example.com:443 or [fd00::1]:443';
    return fromString((s) => {
      let host: string;
      let port: string | undefined;
      const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
      if (bracketed) {
        host = bracketed[1] ?? '';
        port = bracketed[2];
        if (isIP(host) !== 6) fail(message);
      } else {
        const colons = s.split(':').length - 1;
        if (colons > 1) fail('must be host:port; put IPv6 addresses in brackets like [fd00::1]:443');
        [host = '', port] = s.split(':');
        const numeric = /^[\d.]+$/.test(host);
        if (numeric ? isIP(host) !== 4 : !HOSTNAME.test(host)) fail(message);
      }
      if (port === undefined) {
        if (options.defaultPort === undefined) fail(message);
        return { host, port: options.defaultPort };
      }
      return { host, port: parsePort(port, false) };
    });
  },

  /** A path to an existing, readable regular file (returned as given). Checked when parsed. */
  existingFile(): z.ZodType<string, string> {
    return fromString((s) => {
      if (s === '') fail('must be a file path');
      const st = statSync(s, { throwIfNoEntry: false });
      if (!st) fail('file does not exist');
      if (!st.isFile()) fail('must be a file, not a directory or device');
      try {
        accessSync(s, fsConstants.R_OK);
      } catch {
        fail('file is not readable');
      }
      return s;
    });
  },

  /** `true/false`, `1/0`, `yes/no` (any case) → boolean; a switch flag given on the command line is `true`. */
  bool(): z.ZodType<boolean, string> {
    return fromString((s) => {
      const v = s.toLowerCase();
      if (['true', '1', 'yes'].includes(v)) return true;
      if (['false', '0', 'no'].includes(v)) return false;
      return fail('must be true or false (or 1/0, yes/no)');
    });
  },

  /** Comma-separated values (trimmed, empty entries dropped), each parsed by `item` (default: any string). */
  list<I extends z.ZodType<unknown, string> = z.ZodString>(
    item?: I,
    bounds: { min?: number } = {},
  ): z.ZodType<z.output<I>[], string> {
    const each = (item ?? z.string()) as z.ZodType<z.output<I>, string>;
    let array = z.array(each);
    if (bounds.min !== undefined) {
      array = array.min(bounds.min, `must list at least ${bounds.min} comma-separated value(s)`);
    }
    return z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((x) => x.trim())
          .filter((x) => x !== ''),
      )
      .pipe(array);
  },

  /** An absolute URL with one of `protocols` (default http and https), returned as given. */
  url(options: { protocols?: readonly string[] } = {}): z.ZodType<string, string> {
    const protocols = options.protocols ?? ['http', 'https'];
    return fromString((s) => {
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        return fail(`must be a URL like ${protocols[0] ?? 'https'}://example.com:8443/path`);
      }
      const scheme = u.protocol.replace(/:$/, '');
      if (!protocols.includes(scheme)) fail(`must be a ${protocols.join(' or ')} URL`);
      return s;
    });
  },

  /** A pino log level (any case): fatal, error, warn, info, debug, trace, silent. */
  logLevel(): z.ZodType<LogLevel, string> {
    return fromString((s) => {
      const v = s.toLowerCase();
      if (!(LOG_LEVELS as readonly string[]).includes(v)) fail(`must be one of ${LOG_LEVELS.join(', ')}`);
      return v as LogLevel;
    });
  },
};

/** `--log-level` / `LOG_LEVEL`, default info: add it to every program. */
export const logLevelOption = option({
  flag: '--log-level <level>',
  env: 'LOG_LEVEL',
  description: `minimum level of log lines: ${LOG_LEVELS.join(', ')}`,
  schema: schemas.logLevel(),
  default: 'info',
});

/** `--shutdown-timeout` / `SHUTDOWN_TIMEOUT`, default 25s: pass to `installSignalHandlers({ timeoutMs })`. */
export const shutdownTimeoutOption = option({
  flag: '--shutdown-timeout <duration>',
  env: 'SHUTDOWN_TIMEOUT',
  description: 'time allowed for a graceful shutdown before exiting 1',
  schema: schemas.duration({ min: 1 }),
  default: '25s',
});

/**
 * `--kubeconfig` / `KUBECONFIG`: the credentials of the Kubernetes API (unset: the app's default,
 * usually the pod's service account). Spread it with your own `description` when the app says more.
 */
export const kubeconfigOption = option({
  flag: '--kubeconfig <path>',
  env: 'KUBECONFIG',
  description: "kubeconfig file of the Kubernetes API (default: the pod's service account)",
  schema: z.string().optional(),
});

/** What port 0 of the metrics endpoint means: no endpoint, or any free port (tests, several instances). */
export type MetricsPortZero = 'off' | 'any';

export interface MetricsOptionsConfig<Z extends MetricsPortZero> {
  /** Prefix of the env vars: `TOWER` → `TOWER_METRICS_PORT`, `TOWER_METRICS_HOST`; `''` → `METRICS_PORT`. */
  envPrefix: string;
  /** The port when none is given (a chart's containerPort). */
  defaultPort: number;
  /** `'off'`: 0 serves nothing (`metricsPort` parses to undefined); `'any'`: 0 picks a free port. */
  zero: Z;
  /** The address when none is given (default `0.0.0.0`). */
  defaultHost?: string;
  /** When this app is ready, for the help: `ready while connected`. */
  readiness?: string;
  /**
   * The word of the app's former flags and env vars, kept as aliases: `'health'` makes
   * `--health-port`, `--health-host`, `<PREFIX>_HEALTH_PORT` and `<PREFIX>_HEALTH_HOST` keep working.
   */
  formerName?: string;
}

/** The port `metricsOptions` parses: undefined means "serve nothing" when 0 is 'off'. */
export type MetricsPort<Z extends MetricsPortZero> = Z extends 'off' ? number | undefined : number;

/**
 * The listen address of `/healthz`, `/readyz` and `/metrics`, the same in every daemon:
 * `metricsHost` (`--metrics-host`, `<PREFIX>_METRICS_HOST`) and `metricsPort` (`--metrics-port`,
 * `<PREFIX>_METRICS_PORT`). `App.serve()` reads them. What differs per app is the parameter.
 */
export function metricsOptions<Z extends MetricsPortZero>(config: MetricsOptionsConfig<Z>) {
  const env = (what: string) => (config.envPrefix ? `${config.envPrefix}_${what}` : what);
  const former = config.formerName;
  const aliases = (what: 'port' | 'host') =>
    former
      ? {
          aliases: {
            flags: [`--${former}-${what}`],
            env: [env(`${former.toUpperCase()}_${what.toUpperCase()}`)],
          },
        }
      : {};
  const ready = config.readiness ? ` (${config.readiness})` : '';
  const zero = config.zero === 'off' ? '0 = off' : '0 picks a free port';
  const port = schemas.port({ allowZero: true });
  return {
    metricsHost: option({
      flag: '--metrics-host <address>',
      env: env('METRICS_HOST'),
      description: 'address of /healthz, /readyz and /metrics',
      schema: schemas.ipAddress(),
      default: config.defaultHost ?? '0.0.0.0',
      ...aliases('host'),
    }),
    metricsPort: option({
      flag: '--metrics-port <port>',
      env: env('METRICS_PORT'),
      description: `port of /healthz, /readyz${ready} and /metrics; ${zero}`,
      schema: (config.zero === 'off' ? port.transform((p) => (p === 0 ? undefined : p)) : port) as z.ZodType<
        MetricsPort<Z>,
        string
      >,
      default: config.defaultPort,
      ...aliases('port'),
    }),
  };
}

/**
 * What every daemon spreads into its options: `--log-level`, `--shutdown-timeout` and the
 * metrics endpoint (see `metricsOptions`); `startApp` reads them.
 */
export function daemonOptions<Z extends MetricsPortZero>(metrics: MetricsOptionsConfig<Z>) {
  return { logLevel: logLevelOption, shutdownTimeout: shutdownTimeoutOption, ...metricsOptions(metrics) };
}
