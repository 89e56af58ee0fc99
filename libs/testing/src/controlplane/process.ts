import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';

/** A child process of the test bed, in its own process group, killed if the test process dies. */
export class ManagedProcess {
  private exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolve(this.exitCode);
      });
    });
    live.add(this);
  }

  /**
   * Starts `cmd args` with stdout+stderr appended to `logFile`. `setpriv --pdeathsig SIGKILL`
   * makes the kernel kill the child when this process exits for any reason, even SIGKILL.
   */
  static start(
    name: string,
    cmd: string,
    args: string[],
    logFile: string,
    env?: NodeJS.ProcessEnv,
  ): ManagedProcess {
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', cmd, ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env ?? process.env,
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    child.unref();
    return new ManagedProcess(name, child, logFile);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The last `lines` lines of the process's log, to explain a failure. */
  tail(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5000): Promise<void> {
    live.delete(this);
    if (!this.running) return;
    signalGroup(this.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGKILL to the process group (a crash, as a test's fault injection). */
  async kill(): Promise<void> {
    live.delete(this);
    if (!this.running) return;
    signalGroup(this.pid, 'SIGKILL');
    await this.exited;
  }

  /** Resolves with the exit code once the process exits. */
  wait(): Promise<number | null> {
    return this.exited;
  }
}

const live = new Set<ManagedProcess>();

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

process.once('exit', () => {
  for (const p of live) if (p.running) signalGroup(p.pid, 'SIGKILL');
});
