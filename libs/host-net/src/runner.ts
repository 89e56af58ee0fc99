import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, ExecaError } from 'execa';
import type { Logger } from '@knet/runtime';
import { CommandError, CommandNotFoundError, formatCommandLine, wrappedCommandNotFound } from './errors';

/** @knet/runtime's Logger (pino's and `RecordingLogger` satisfy it); this library logs at debug only. */
export type { Logger };

export interface RunOptions {
  /** Written to the command's stdin. Never logged (it may hold keys). */
  input?: string;
  /** Run inside this named network namespace (`ip netns exec NAME ...`). */
  namespace?: string;
  /**
   * The command leaves a daemon behind that keeps stdout/stderr open (e.g. `wireguard-go`): its
   * output goes to a temporary file instead of a pipe, so the call returns when the command exits.
   */
  daemon?: boolean;
  /** Overrides the runner's timeout for this call. */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs one command. Implementations throw {@link CommandError} / {@link CommandNotFoundError}. */
export interface CommandRunner {
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export interface ExecaRunnerOptions {
  logger?: Logger;
  /** Default namespace for every call (a call's own `namespace` wins). */
  namespace?: string;
  /**
   * Argv prepended to every command, outermost, e.g. `['nsenter', '--target=123', '--mount', '--net']`
   * to share a process's mount and network namespaces.
   */
  prefix?: readonly string[];
  /** Extra environment (merged over process.env), e.g. `{ PATH: '/usr/sbin:/usr/bin' }`. */
  env?: Record<string, string>;
  /** Per-command timeout; default 60 s. */
  timeoutMs?: number;
}

/** The real {@link CommandRunner}: spawns through execa, logs at debug, maps failures to typed errors. */
export class ExecaRunner implements CommandRunner {
  constructor(private readonly options: ExecaRunnerOptions = {}) {}

  /** A runner with the same settings that targets `namespace`. */
  inNamespace(namespace: string): ExecaRunner {
    return new ExecaRunner({ ...this.options, namespace });
  }

  /** The argv that {@link run} spawns for `cmd args` (prefix and `ip netns exec` included). */
  argv(cmd: string, args: readonly string[], options: RunOptions = {}): string[] {
    const namespace = options.namespace ?? this.options.namespace;
    const inner = namespace ? ['ip', 'netns', 'exec', namespace, cmd, ...args] : [cmd, ...args];
    return [...(this.options.prefix ?? []), ...inner];
  }

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const argv = this.argv(cmd, args, options);
    const [file, ...rest] = argv as [string, ...string[]];
    const namespace = options.namespace ?? this.options.namespace;
    this.options.logger?.debug(
      {
        command: formatCommandLine(argv),
        ...(namespace ? { namespace } : {}),
        ...(options.input !== undefined ? { input: `<${Buffer.byteLength(options.input)} bytes>` } : {}),
      },
      'host-net: run',
    );
    const timeout = options.timeoutMs ?? this.options.timeoutMs ?? 60_000;
    let outDir: string | undefined;
    let outFd: number | undefined;
    try {
      if (options.daemon) {
        outDir = mkdtempSync(join(tmpdir(), 'knet-daemon-'));
        outFd = openSync(join(outDir, 'out'), 'w+', 0o600);
      }
      const result = await execa(file, rest, {
        env: this.options.env,
        extendEnv: true,
        timeout,
        input: options.input,
        stdin: options.input === undefined ? 'ignore' : 'pipe',
        // An integer fd is handed to the child as is (execa's types only list 1 and 2).
        ...(outFd !== undefined ? { stdout: outFd as 1, stderr: outFd as 1 } : {}),
        encoding: 'utf8',
        stripFinalNewline: false,
      });
      if (outDir !== undefined) {
        const out = readFileSync(join(outDir, 'out'), 'utf8');
        return { stdout: out, stderr: '' };
      }
      return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
    } catch (err) {
      const daemonOutput = outDir !== undefined ? safeRead(join(outDir, 'out')) : undefined;
      const mapped = toCommandError(err, argv, file, daemonOutput, timeout);
      this.options.logger?.debug(
        {
          command: mapped.commandLine,
          exitCode: mapped.exitCode,
          kind: mapped.kind,
          stderr: mapped.stderr,
        },
        'host-net: command failed',
      );
      throw mapped;
    } finally {
      if (outFd !== undefined) closeSync(outFd);
      if (outDir !== undefined) rmSync(outDir, { recursive: true, force: true });
    }
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function toCommandError(
  err: unknown,
  argv: readonly string[],
  file: string,
  daemonOutput: string | undefined,
  timeoutMs: number,
): CommandError {
  if (!(err instanceof ExecaError)) {
    return new CommandError({ command: argv, stderr: err instanceof Error ? err.message : String(err) });
  }
  const stderr = daemonOutput ?? (typeof err.stderr === 'string' ? err.stderr : '');
  const details = {
    command: argv,
    exitCode: err.exitCode,
    signal: err.signal,
    stderr,
    timedOut: err.timedOut,
    ...(err.timedOut ? { timeoutMs } : {}),
  };
  if (err.code === 'ENOENT') return new CommandNotFoundError(file, details);
  const wrapped = wrappedCommandNotFound(stderr);
  if (wrapped) return new CommandNotFoundError(wrapped, details);
  return new CommandError(details);
}
