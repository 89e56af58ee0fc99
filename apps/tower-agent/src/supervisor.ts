import { type Backoff, errorMessage, type Logger } from '@knet/runtime';
import { FingerprintMismatchError, RefusedError } from '@knet/tunnel';
import type { AgentMetrics } from './metrics';

/** One connection attempt as the supervisor sees it: AgentConnection, or a fake in tests. */
export interface Attempt {
  /** Resolves once the proxy has accepted the agent; rejects when the attempt fails. */
  readonly established: Promise<void>;
  /** Resolves when the connection is over, with why (undefined: closed on purpose). */
  readonly closed: Promise<Error | undefined>;
  close(): void;
}

export interface SupervisorOptions {
  /** Starts one attempt. */
  connect: () => Attempt;
  /** Consecutive failed attempts before giving up (0: never). */
  maxRetry: number;
  /** Delays between attempts; reset once an accepted connection has lasted `stableMs`. */
  backoff: Backoff;
  /**
   * How long an accepted connection must stay up before the backoff starts over: a proxy that
   * accepts the agent and drops it at once is retried with a growing delay, not in a tight loop.
   */
  stableMs: number;
  /** The clock of `disconnectedMs()` (ms; default `performance.now`). */
  now?: () => number;
  /** Aborted on shutdown: the open connection is closed and `run` returns. */
  signal: AbortSignal;
  logger: Logger;
  metrics: Pick<AgentMetrics, 'connected' | 'reconnects' | 'connectionFailures'>;
}

/** How long an accepted connection must last before the backoff starts over. */
export const STABLE_CONNECTION_MS = 30_000;

/** How a failed attempt is handled: the end of the agent, or a retry counted under `reason`. */
export type Failure = { fatal: true } | { fatal: false; reason: string };

/**
 * Which failures end the agent: only a proxy whose host key is not the pinned one (another proxy,
 * or a man in the middle; retrying cannot help and would keep dialling it). A refusal (bad token,
 * unknown cluster, not the leader…) and any network or SSH failure are retried.
 */
export function classify(e: unknown): Failure {
  if (e instanceof FingerprintMismatchError) return { fatal: true };
  if (e instanceof RefusedError) return { fatal: false, reason: e.reason };
  return { fatal: false, reason: 'connect' };
}

/**
 * Keeps the agent connected: one attempt after another, with backoff between failures (reset once
 * a connection the proxy accepted has been up for `stableMs`), `wake()` (SIGHUP) to skip the wait,
 * and an end on a fatal failure, after `maxRetry` consecutive failures, or on shutdown.
 */
export class Supervisor {
  private current: Attempt | undefined;
  private wakeUp: (() => void) | undefined;
  private live = false;
  private readonly now: () => number;
  /** When the agent last had an accepted connection (or started). */
  private lastLive: number;

  constructor(private readonly o: SupervisorOptions) {
    this.now = o.now ?? (() => performance.now());
    this.lastLive = this.now();
    o.signal.addEventListener('abort', () => {
      this.current?.close();
      this.wakeUp?.();
    });
  }

  /** True while a connection the proxy accepted is up (readiness). */
  get connected(): boolean {
    return this.live;
  }

  /**
   * How long the agent has been without an accepted connection (since it started, or since its
   * last connection ended); 0 while connected. Liveness: an agent that stays disconnected much
   * longer than its backoff allows is wedged, and a restart is what helps.
   */
  disconnectedMs(): number {
    return this.live ? 0 : this.now() - this.lastLive;
  }

  /** Liveness: false once the agent has been disconnected for `timeoutMs` (0: never false). */
  connectedWithin(timeoutMs: number): boolean {
    return timeoutMs === 0 || this.disconnectedMs() < timeoutMs;
  }

  /** Ends the wait between attempts now (SIGHUP). */
  wake(): void {
    this.wakeUp?.();
  }

  /**
   * Runs until shutdown (resolves) or until the agent must end (rejects with one line: the
   * fingerprint mismatch, or the last error after `maxRetry` failures).
   */
  async run(): Promise<void> {
    const { signal, logger, metrics } = this.o;
    let failures = 0;
    for (let attempt = 0; !signal.aborted; attempt++) {
      if (attempt > 0) metrics.reconnects.inc();
      const conn = this.o.connect();
      this.current = conn;
      let stable: NodeJS.Timeout | undefined;
      try {
        await conn.established;
        this.setLive(true);
        failures = 0;
        if (this.o.stableMs > 0) stable = setTimeout(() => this.o.backoff.reset(), this.o.stableMs);
        else this.o.backoff.reset();
        const lost = await conn.closed;
        if (!signal.aborted) {
          metrics.connectionFailures.inc({ reason: 'lost' });
          logger.warn({ err: lost?.message }, 'connection to the proxy lost');
        }
      } catch (e) {
        const failure = classify(e);
        if (failure.fatal) throw e;
        metrics.connectionFailures.inc({ reason: failure.reason });
        if (!signal.aborted)
          logger.warn({ reason: failure.reason, err: errorMessage(e) }, 'could not connect to the proxy');
        failures++;
        if (this.o.maxRetry > 0 && failures >= this.o.maxRetry) {
          throw new Error(
            `gave up after ${failures} failed attempts (--max-retry ${this.o.maxRetry}); last error: ${errorMessage(e)}`,
          );
        }
      } finally {
        clearTimeout(stable);
        this.setLive(false);
        conn.close();
      }
      if (signal.aborted) break;
      const delay = this.o.backoff.next();
      logger.info({ retryInMs: delay }, 'reconnecting after backoff (SIGHUP retries at once)');
      await this.wait(delay);
    }
  }

  private setLive(live: boolean): void {
    if (this.live || live) this.lastLive = this.now();
    this.live = live;
    this.o.metrics.connected.set(live ? 1 : 0);
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}
