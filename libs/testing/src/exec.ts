import { spawn, spawnSync } from 'node:child_process';

/** Result of a command run by the lab. */
export interface LabExecResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
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
      `${argv.join(' ')} failed (${
        reason ?? (result?.signal ? `killed by ${result.signal}` : `exit ${result?.exitCode ?? '?'}`)
      })${result?.stderr.trim() ? `: ${oneLine(result.stderr)}` : ''}`,
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
  timeoutMs?: number;
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
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
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
      const result = {
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode,
        signal,
      };
      if ((options.check ?? true) && exitCode !== 0) reject(new NetLabCommandError(argv, result));
      else resolve(result);
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Synchronous variant for exit handlers; never throws, returns null when the binary is missing. */
export function execArgvSync(argv: readonly string[], timeoutMs = 10_000): LabExecResult | null {
  const [file, ...args] = argv;
  if (!file) return null;
  const r = spawnSync(file, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) return null;
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode: r.status, signal: r.signal };
}

/** What a command (kubectl, helm, go…) printed, without the final newline, and how it exited. */
export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs a command to completion; never throws on a non-zero exit (a missing binary still throws). */
export async function run(
  cmd: string,
  args: readonly string[],
  options: Omit<LabExecOptions, 'check'> = {},
): Promise<RunResult> {
  const r = await execArgv([cmd, ...args], { timeoutMs: 60_000, ...options, check: false });
  return {
    stdout: r.stdout.replace(/\n$/, ''),
    stderr: r.stderr.replace(/\n$/, ''),
    exitCode: r.exitCode ?? 128,
  };
}
