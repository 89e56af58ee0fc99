// Long-running `bridge` processes for the flooder: FDB changes as they happen (`bridge monitor
// fdb`) and entries appended through one `bridge -force -batch -`, so a lease costs no process.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { errorMessage, silentLogger, type Logger } from '@knet/runtime';
import { ZERO_MAC } from '@knet/host-net';
import { isIPv4, isMac, normalizeMac } from './ipv4';

/** One line of `bridge monitor fdb`. */
export interface FdbEvent {
  deleted: boolean;
  mac: string;
  dev: string;
  dst?: string;
}

/**
 * `02:00:5e:00:53:01 dev vxlan0 dst 192.0.2.10 self` (learned), `Deleted …`, `00:00:00:00:00:00 dev
 * vxlan0 dst 192.0.2.10 self permanent` → an event; anything else → undefined.
 */
export function parseFdbMonitorLine(line: string): FdbEvent | undefined {
  const words = line.trim().split(/\s+/);
  const deleted = words[0] === 'Deleted';
  if (deleted) words.shift();
  const [mac] = words;
  const dev = words[words.indexOf('dev') + 1];
  if (!mac || !isMac(mac) || !words.includes('dev') || !dev) return undefined;
  const i = words.indexOf('dst');
  const dst = i >= 0 ? words[i + 1] : undefined;
  return { deleted, mac: normalizeMac(mac), dev, ...(dst && isIPv4(dst) ? { dst } : {}) };
}

/** FDB changes as they happen, and appends without a process each. */
export interface FdbWatcher {
  /** Starts watching; `onEvent` gets every change of every device; `onExit` if it stops working. */
  start(onEvent: (e: FdbEvent) => void, onExit: (why: string) => void): Promise<void>;
  /** Queues `bridge fdb append 00:00:00:00:00:00 dev DEV dst DST`; done when its event arrives. */
  appendFlood(dev: string, dst: string): void;
  stop(): Promise<void>;
}

/** {@link FdbWatcher} on `bridge monitor fdb` and `bridge -force -batch -` (iproute2). */
export class BridgeFdbWatcher implements FdbWatcher {
  private monitor: ChildProcess | undefined;
  private batch: ChildProcess | undefined;
  private stopping = false;
  private readonly logger: Logger;
  private readonly bridge: string;

  /** `bridge`: the iproute2 binary (default `bridge` on PATH). */
  constructor(options: { logger?: Logger; bridge?: string } = {}) {
    this.logger = options.logger ?? silentLogger;
    this.bridge = options.bridge ?? 'bridge';
  }

  async start(onEvent: (e: FdbEvent) => void, onExit: (why: string) => void): Promise<void> {
    this.stopping = false;
    const exited = (name: string) => (code: number | null, signal: string | null) => {
      if (!this.stopping) onExit(`${name} exited (${signal ?? `code ${String(code)}`})`);
    };
    const monitor = spawn(this.bridge, ['monitor', 'fdb'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const batch = spawn(this.bridge, ['-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    this.monitor = monitor;
    this.batch = batch;
    for (const [name, p] of [
      ['bridge monitor fdb', monitor],
      ['bridge -batch', batch],
    ] as const) {
      p.on('error', (err) => {
        if (!this.stopping) onExit(`${name}: ${errorMessage(err)}`);
      });
      p.on('exit', exited(name));
    }
    batch.stdin?.on('error', () => undefined);
    batch.stderr?.setEncoding('utf8');
    batch.stderr?.on('data', (text: string) => {
      // "RTNETLINK answers: File exists" for an entry that is there already is expected.
      if (!/File exists/.test(text)) this.logger.warn({ stderr: text.trim() }, 'dhcp: bridge -batch said');
    });
    if (monitor.stdout) {
      createInterface({ input: monitor.stdout }).on('line', (line) => {
        const e = parseFdbMonitorLine(line);
        if (e) onEvent(e);
      });
    }
    // Both are running once spawned; a missing binary is reported through 'error' (onExit).
    await Promise.all(
      [monitor, batch].map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            p.once('spawn', () => resolve());
            p.once('error', reject);
          }),
      ),
    );
  }

  appendFlood(dev: string, dst: string): void {
    this.batch?.stdin?.write(`fdb append ${ZERO_MAC} dev ${dev} dst ${dst} self permanent\n`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const procs = [this.monitor, this.batch].filter((p): p is ChildProcess => p !== undefined);
    this.monitor = undefined;
    this.batch = undefined;
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
          }),
      ),
    );
  }
}
