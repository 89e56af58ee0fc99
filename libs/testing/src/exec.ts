import { spawn, spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { descendants } from './bench';

/** Result of a command run by the lab. */
export interface LabExecResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the command was killed because it reached its time limit (the limit, in ms). */
  timedOutAfterMs?: number;
}

/**
 * How a command ended, for messages: `exit 2`, `killed by SIGTERM`, or
 * `killed by SIGKILL after 60 s (time limit)` — never a bare 128.
 */
export function describeExit(result: Pick<LabExecResult, 'exitCode' | 'signal' | 'timedOutAfterMs'>): string {
  if (result.timedOutAfterMs !== undefined) {
    return `killed by ${result.signal ?? 'SIGKILL'} after ${formatSeconds(result.timedOutAfterMs)} (time limit)`;
  }
  if (result.signal) return `killed by ${result.signal}`;
  return `exit ${result.exitCode ?? '?'}`;
}

/** `0.3 s`, `60 s`: a time limit in messages. */
export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** A lab command that failed; the message is one line (command, status, trimmed stderr). */
export class NetLabCommandError extends Error {
  override readonly name = 'NetLabCommandError';
  constructor(
    readonly argv: readonly string[],
    readonly result: LabExecResult | undefined,
    reason?: string,
  ) {
    super(
      `${argv.join(' ')} failed (${reason ?? (result ? describeExit(result) : 'exit ?')})${
        result?.stderr.trim() ? `: ${oneLine(result.stderr)}` : ''
      }`,
    );
  }
}

export function oneLine(text: string): string {
  const s = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');
  return s.length > 500 ? `${s.slice(0, 499)}…` : s;
}

export interface LabExecOptions {
  input?: string;
  /**
   * Kill the command (SIGKILL) after this long; `Infinity` for no limit. A command killed this
   * way is reported as "killed by SIGKILL after N s (time limit)".
   */
  timeoutMs?: number;
  /** Called with each chunk of output as it arrives (e.g. to show progress); output is still collected. */
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
  /** Throw {@link NetLabCommandError} on a non-zero exit (default true). */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Runs argv to completion (node:child_process, not execa, so the test bed also loads as plain
 * CommonJS, e.g. the testbed CLI under tsx). A missing binary is a one-line NetLabCommandError.
 */
export function execArgv(argv: readonly string[], options: LabExecOptions = {}): Promise<LabExecResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.reject(new Error('execArgv: empty argv'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    // Our own timer (spawn's `timeout` leaks its timer when the binary is missing).
    const limitMs = options.timeoutMs ?? 30_000;
    let timedOut = false;
    const timer = Number.isFinite(limitMs)
      ? setTimeout(() => {
          timedOut = true;
          // The whole tree: a grandchild (`sh -c '…; sleep'`, go's compilers) would keep our pipes
          // open, and the call would wait for it past the limit.
          const tree = child.pid === undefined ? [] : descendants(child.pid);
          child.kill('SIGKILL');
          for (const pid of tree) killQuietly(pid);
        }, limitMs)
      : undefined;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const { onOutput } = options;
    child.stdout?.on('data', (c: Buffer) => {
      out.push(c);
      onOutput?.(c.toString('utf8'), 'stdout');
    });
    child.stderr?.on('data', (c: Buffer) => {
      err.push(c);
      onOutput?.(c.toString('utf8'), 'stderr');
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new NetLabCommandError(
          argv,
          undefined,
          e.code === 'ENOENT' ? `${file}: command not found` : e.message,
        ),
      );
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      const result: LabExecResult = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode,
        signal,
        ...(timedOut ? { timedOutAfterMs: limitMs } : {}),
      };
      if ((options.check ?? true) && exitCode !== 0) reject(new NetLabCommandError(argv, result));
      else resolve(result);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/**
 * Synchronous variant for exit handlers; never throws, returns null when the binary is missing.
 * A command still running at `timeoutMs` is killed and reported with `timedOutAfterMs`.
 */
export function execArgvSync(argv: readonly string[], timeoutMs = 10_000): LabExecResult | null {
  const [file, ...args] = argv;
  if (!file) return null;
  const r = spawnSync(file, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (r.error && !timedOut) return null;
  return {
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    exitCode: r.status,
    signal: r.signal,
    ...(timedOut ? { timedOutAfterMs: timeoutMs } : {}),
  };
}

/** What a command (kubectl, helm, go…) printed, without the final newline, and how it exited. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** The exit code; 128 + the signal's number when a signal ended it (as a shell reports it). */
  exitCode: number;
  /** The signal that ended the command, if one did. */
  signal: NodeJS.Signals | null;
}

/**
 * Runs a command to completion (time limit 60 s unless `timeoutMs` says otherwise; `Infinity` for
 * none). Never throws on a non-zero exit; throws a one-line {@link NetLabCommandError} when the
 * binary is missing or the command was killed at its time limit ("killed by SIGKILL after 60 s
 * (time limit)"), so a slow machine fails with its reason instead of a bare exit code.
 */
export async function run(
  cmd: string,
  args: readonly string[],
  options: Omit<LabExecOptions, 'check'> = {},
): Promise<RunResult> {
  const argv = [cmd, ...args];
  const r = await execArgv(argv, { timeoutMs: 60_000, ...options, check: false });
  if (r.timedOutAfterMs !== undefined) throw new NetLabCommandError(argv, r);
  return {
    stdout: r.stdout.replace(/\n$/, ''),
    stderr: r.stderr.replace(/\n$/, ''),
    exitCode: r.exitCode ?? (r.signal ? 128 + (osConstants.signals[r.signal] ?? 0) : 128),
    signal: r.signal,
  };
}

/** Whether process `pid` exists (EPERM: it does, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
