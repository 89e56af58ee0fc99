import { CommandError, oneLine } from './errors';
import { assertIfName } from './ip-args';
import type { CommandRunner } from './runner';

export interface PingOptions {
  /** Send from this device (`ping -I DEV`). */
  device?: string;
  /** Up to this many echo requests, one at a time, until one is answered (default 1). */
  count?: number;
  /** Seconds to wait for each answer (default 1). */
  timeoutSec?: number;
}

export interface PingResult {
  /** Whether an echo request was answered. */
  answered: boolean;
  /** Echo requests sent. */
  attempts: number;
  /** Why the last one was not answered: `no answer`, or ping's message (`ping: connect: Network is unreachable`). */
  error?: string;
}

/** ICMP echo to an address. Real: {@link ExecPinger} (`ping` from iputils); in-memory: FakePinger. */
export interface Pinger {
  ping(address: string, options?: PingOptions): Promise<PingResult>;
}

/** `ping -n -q -c 1 -W S [-I DEV] ADDRESS` (one echo request). */
export function pingArgs(address: string, options: PingOptions = {}): string[] {
  if (options.device !== undefined) assertIfName(options.device);
  const timeout = options.timeoutSec ?? 1;
  if (!Number.isInteger(timeout) || timeout < 1)
    throw new TypeError(`invalid ping timeout ${timeout}: whole seconds ≥ 1`);
  return [
    '-n',
    '-q',
    '-c',
    '1',
    '-W',
    String(timeout),
    ...(options.device !== undefined ? ['-I', options.device] : []),
    address,
  ];
}

/** What an unanswered ping said: its stderr in one line, or `no answer`. */
export function pingError(err: CommandError): string {
  return err.stderr ? oneLine(err.stderr) : 'no answer';
}

/**
 * {@link Pinger} over iputils `ping`, through the runner (so in a namespace like every other
 * command). An unanswered or failed ping is a result, not an error; a missing `ping` binary
 * (Debian package iputils-ping) throws CommandNotFoundError.
 */
export class ExecPinger implements Pinger {
  constructor(private readonly runner: CommandRunner) {}

  async ping(address: string, options: PingOptions = {}): Promise<PingResult> {
    const args = pingArgs(address, options);
    const count = options.count ?? 1;
    let error = 'no answer';
    for (let attempt = 1; attempt <= count; attempt++) {
      try {
        await this.runner.run('ping', args);
        return { answered: true, attempts: attempt };
      } catch (err) {
        if (!(err instanceof CommandError) || err.kind === 'command-not-found') throw err;
        error = pingError(err);
      }
    }
    return { answered: false, attempts: count, error };
  }
}
