/**
 * The error model of @knet/host-net. Every failed command becomes a {@link CommandError} whose
 * `.message` is one line: the full command line, the exit status and the trimmed stderr. A missing
 * binary is the subclass {@link CommandNotFoundError}, which names the Debian package to install.
 */

/** Debian package that provides each binary this library runs. */
export const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  bridge: 'iproute2',
  tc: 'iproute2',
  ss: 'iproute2',
  iptables: 'iptables',
  'iptables-restore': 'iptables',
  'iptables-save': 'iptables',
  ip6tables: 'iptables',
  'ip6tables-restore': 'iptables',
  'ip6tables-save': 'iptables',
  wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
  sysctl: 'procps',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  ping: 'iputils-ping',
};

/**
 * What a failure means, derived from the kernel's (or tool's) stderr, so callers can branch without
 * matching strings: `exists` (File exists, address already assigned), `not-found` (no such route,
 * rule, neighbour or entry), `no-device` (the named link does not exist), `permission`,
 * `command-not-found`, `timeout`, `other`.
 */
export type CommandErrorKind =
  'exists' | 'not-found' | 'no-device' | 'permission' | 'command-not-found' | 'timeout' | 'other';

export interface CommandErrorDetails {
  /** The argv that was spawned, including any `ip netns exec` / nsenter prefix. */
  command: readonly string[];
  exitCode?: number;
  signal?: string;
  stderr?: string;
  timedOut?: boolean;
  /** The time limit the command reached (with `timedOut`), for the message. */
  timeoutMs?: number;
}

/** A command that ran and failed (non-zero exit, signal or timeout). */
export class CommandError extends Error {
  override readonly name: string = 'CommandError';
  readonly command: readonly string[];
  readonly commandLine: string;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  /** stderr, trimmed (may be several lines; `.message` folds it into one). */
  readonly stderr: string;
  readonly kind: CommandErrorKind;

  constructor(details: CommandErrorDetails, message?: string) {
    const commandLine = formatCommandLine(details.command);
    const stderr = (details.stderr ?? '').trim();
    super(message ?? describeFailure(commandLine, details, stderr));
    this.command = [...details.command];
    this.commandLine = commandLine;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.stderr = stderr;
    this.kind = details.timedOut ? 'timeout' : classifyStderr(stderr);
  }
}

/** The binary itself is missing (ENOENT), directly or behind `ip netns exec` / nsenter. */
export class CommandNotFoundError extends CommandError {
  override readonly name = 'CommandNotFoundError';
  override readonly kind = 'command-not-found';
  readonly binary: string;
  /** The Debian package that provides the binary, when known. */
  readonly debianPackage: string | undefined;

  constructor(binary: string, details: CommandErrorDetails) {
    const pkg = DEBIAN_PACKAGES[basename(binary)];
    const hint = pkg ? `install the Debian package "${pkg}"` : 'install it or fix PATH';
    super(
      details,
      `${binary}: command not found (${hint}); needed for: ${formatCommandLine(details.command)}`,
    );
    this.binary = binary;
    this.debianPackage = pkg;
  }
}

/** A command succeeded but printed something this library could not parse. */
export class OutputParseError extends Error {
  override readonly name = 'OutputParseError';
  constructor(
    readonly commandLine: string,
    reason: string,
  ) {
    super(`could not parse the output of ${commandLine}: ${oneLine(reason)}`);
  }
}

/** Joins argv into one shell-like line, quoting arguments that need it. */
export function formatCommandLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

function shellQuote(arg: string): string {
  if (arg !== '' && /^[\w@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Folds multi-line text into one line: trimmed non-empty lines joined with '; '. */
export function oneLine(text: string, max = 600): string {
  const folded = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ');
  return folded.length > max ? `${folded.slice(0, max - 1)}…` : folded;
}

function describeFailure(commandLine: string, details: CommandErrorDetails, stderr: string): string {
  let status: string;
  if (details.timedOut) {
    const limit = details.timeoutMs === undefined ? '' : ` after ${details.timeoutMs / 1000} s`;
    status = `killed by ${details.signal ?? 'SIGTERM'}${limit} (time limit)`;
  } else if (details.signal) status = `killed by ${details.signal}`;
  else status = `exit ${details.exitCode ?? '?'}`;
  const tail = stderr ? `: ${oneLine(stderr)}` : '';
  return `${commandLine} failed (${status})${tail}`;
}

/** Maps a tool's stderr to a {@link CommandErrorKind}. */
export function classifyStderr(stderr: string): CommandErrorKind {
  if (/Cannot find device|Device "[^"]*" does not exist|No such device/i.test(stderr)) return 'no-device';
  if (/File exists|already assigned|already exists/i.test(stderr)) return 'exists';
  if (
    /No such process|No such file or directory|Address not found|address not found|does a matching rule exist|does not exist/i.test(
      stderr,
    )
  ) {
    return 'not-found';
  }
  if (/Operation not permitted|Permission denied/i.test(stderr)) return 'permission';
  return 'other';
}

/** Recognises "binary not found" reported by a wrapper (`ip netns exec`, nsenter, unshare). */
export function wrappedCommandNotFound(stderr: string): string | undefined {
  const patterns = [
    /exec of "([^"]+)" failed: No such file or directory/,
    /(?:nsenter|unshare): failed to execute (\S+): No such file or directory/,
  ];
  for (const p of patterns) {
    const m = p.exec(stderr);
    if (m?.[1]) return m[1];
  }
  return undefined;
}

function basename(path: string): string {
  const i = path.lastIndexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}
