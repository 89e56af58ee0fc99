import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

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
    // The child writes its log itself: no pipe, so nothing here keeps the test process alive if a
    // test forgets to stop it (jest would wait forever); the exit handler below kills it then.
    const log = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', cmd, ...args], {
        detached: true,
        stdio: ['ignore', log, log],
        env: env ?? process.env,
      });
    } finally {
      closeSync(log);
    }
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
    await this.wait();
    clearTimeout(timer);
  }

  /** SIGKILL to the process group (a crash, as a test's fault injection). */
  async kill(): Promise<void> {
    live.delete(this);
    if (!this.running) return;
    signalGroup(this.pid, 'SIGKILL');
    await this.wait();
  }

  /** Resolves with the exit code once the process exits (keeping this process alive until then). */
  async wait(): Promise<number | null> {
    this.child.ref();
    try {
      return await this.exited;
    } finally {
      this.child.unref();
    }
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
  const left = [...live].filter((p) => p.running);
  if (left.length > 0) {
    // A test that did not stop what it started (often a start-up that failed half-way).
    process.stderr.write(
      `testing: killing ${left.length} process(es) still running at exit: ${left.map((p) => `${p.name} (pid ${p.pid})`).join(', ')}\n`,
    );
  }
  for (const p of left) signalGroup(p.pid, 'SIGKILL');
});
