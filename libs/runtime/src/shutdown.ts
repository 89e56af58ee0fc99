import { constants } from 'node:os';
import { errorMessage } from './errors';
import type { Logger } from './logger';

/** Cleanup run once on shutdown, e.g. closing a server or removing a route. */
export type ShutdownHandler = (reason: string) => void | Promise<void>;

/** What signals come from: `process`, or an EventEmitter in tests. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(event: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface SignalHandlerOptions {
  logger: Logger;
  /**
   * Time from the first signal until the process exits 1 if shutdown has not finished
   * (default 25 s, inside Kubernetes' default 30 s termination grace period).
   */
  timeoutMs?: number;
  /** Signals that start a shutdown (default SIGTERM and SIGINT). */
  signals?: readonly NodeJS.Signals[];
  /** Where signals come from (default `process`). */
  process?: SignalSource;
  /** Ends the process (default `process.exit`). */
  exit?: (code: number) => void;
}

export interface InstalledSignalHandlers {
  /** Aborted as soon as shutdown starts; pass it to long-running loops, watches and requests. */
  signal: AbortSignal;
  /** Removes the signal listeners (the shutdown state stays). */
  uninstall(): void;
}

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 25_000;

/**
 * Coordinates a graceful shutdown: an AbortSignal for loops plus cleanup handlers that run once,
 * in reverse registration order (like Go's defer), after the main function (when `runMain` tracks
 * it) has returned. Use the process-wide `onShutdown`/`installSignalHandlers`, or an instance in tests.
 */
export class ShutdownManager {
  private readonly controller = new AbortController();
  private readonly handlers: { name: string; fn: ShutdownHandler }[] = [];
  private running: Promise<boolean> | undefined;
  private main: Promise<unknown> | undefined;
  private reason: string | undefined;
  private logger: Logger | undefined;
  private timeoutMs: number | undefined;
  private exit: ((code: number) => void) | undefined;
  private registered = 0;

  /** Aborted when shutdown starts. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why shutdown started (`SIGTERM`, `main returned`, …), or undefined while running normally. */
  get shutdownReason(): string | undefined {
    return this.reason;
  }

  /** True once `trackMain` was called: then the caller (runMain), not the signal handler, exits. */
  get tracksMain(): boolean {
    return this.main !== undefined;
  }

  /**
   * Registers a cleanup handler; handlers run one at a time, last registered first. An error in
   * one is logged and the others still run (the process then exits 1). Returns an unregister function.
   */
  onShutdown(handler: ShutdownHandler, name?: string): () => void {
    this.registered += 1;
    const entry = { name: name ?? `handler #${this.registered}`, fn: handler };
    this.handlers.push(entry);
    return () => {
      const i = this.handlers.indexOf(entry);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }

  /** Makes shutdown wait for `main` to settle before running handlers (used by runMain). */
  trackMain(main: Promise<unknown>): void {
    this.main = main;
  }

  /**
   * Starts shutdown (idempotent: later calls return the first call's promise): aborts `signal`,
   * waits for the tracked main function, runs the handlers. Resolves to true when every handler
   * succeeded. With signal handlers installed, exits 1 if this takes longer than `timeoutMs`.
   */
  shutdown(reason: string): Promise<boolean> {
    this.running ??= this.run(reason);
    return this.running;
  }

  /**
   * Listens for SIGTERM/SIGINT: the first signal starts `shutdown` and, unless runMain tracks the
   * main function (it exits then), exits 0 when every handler succeeded or 1 otherwise. Exits 1
   * if shutdown takes longer than `timeoutMs`; a second signal exits immediately with 128+signo.
   */
  installSignalHandlers(options: SignalHandlerOptions): InstalledSignalHandlers {
    const source: SignalSource = options.process ?? process;
    const exit = options.exit ?? ((code: number) => process.exit(code));
    const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
    const { logger } = options;
    this.logger = logger;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
    this.exit = exit;
    let received = 0;
    const listener = (signal: NodeJS.Signals): void => {
      received += 1;
      if (received > 1) {
        const code = 128 + (constants.signals[signal] ?? 0);
        logger.warn({ signal, exitCode: code }, `received ${signal} during shutdown, exiting immediately`);
        exit(code);
        return;
      }
      if (this.running) {
        logger.info({ signal }, `received ${signal}, already shutting down`);
        return;
      }
      logger.info({ signal }, `received ${signal}, shutting down`);
      void this.shutdown(signal).then((ok) => {
        if (!this.tracksMain) exit(ok ? 0 : 1);
      });
    };
    for (const s of signals) source.on(s, listener);
    return {
      signal: this.signal,
      uninstall: () => {
        for (const s of signals) source.off(s, listener);
      },
    };
  }

  private async run(reason: string): Promise<boolean> {
    this.reason = reason;
    this.controller.abort();
    const { logger, timeoutMs, exit } = this;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined && exit) {
      timer = setTimeout(() => {
        logger?.error({ reason, timeoutMs }, `shutdown did not finish within ${timeoutMs}ms, exiting`);
        exit(1);
      }, timeoutMs);
    }
    try {
      if (this.main) await this.main.catch(() => undefined);
      const handlers = [...this.handlers].reverse();
      // Nothing to clean up (a one-shot init container): no news worth an info line, whose place on
      // stdout may be after data the command printed (gateway-init --dry-run's plan).
      const level = handlers.length > 0 ? 'info' : 'debug';
      logger?.[level]({ reason, handlers: handlers.length }, 'running shutdown handlers');
      let ok = true;
      for (const { name, fn } of handlers) {
        try {
          await fn(reason);
          logger?.debug({ handler: name }, 'shutdown handler done');
        } catch (err) {
          ok = false;
          if (logger) logger.error({ err, handler: name }, 'shutdown handler failed');
          else process.stderr.write(`shutdown handler "${name}" failed: ${firstLine(err)}\n`);
        }
      }
      logger?.[level]({ ok }, 'shutdown complete');
      return ok;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The process-wide shutdown manager used by `onShutdown`, `installSignalHandlers` and `runMain`. */
export const processShutdown = new ShutdownManager();

/** Registers a cleanup handler on the process-wide manager; see `ShutdownManager.onShutdown`. */
export function onShutdown(handler: ShutdownHandler, name?: string): () => void {
  return processShutdown.onShutdown(handler, name);
}

/** Installs SIGTERM/SIGINT handling on the process-wide manager; see `ShutdownManager.installSignalHandlers`. */
export function installSignalHandlers(options: SignalHandlerOptions): InstalledSignalHandlers {
  return processShutdown.installSignalHandlers(options);
}

/**
 * Waits `ms` or until `signal` aborts, whichever is first. Resolves true when the full time passed,
 * false when aborted; never rejects. For loops: `while (await sleep(interval, signal)) { … }`.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** How long {@link shutdownFollows} waits by default. */
export const SHUTDOWN_GRACE_MS = 1_000;

/**
 * Whether `signal` is aborted now or within `graceMs`. A signal to the whole process group (Ctrl-C
 * in a terminal, SIGTERM to the group) also reaches the commands a step runs, and on a busy
 * machine the step can fail from it before this process's own handler has run (CI saw `ip … failed
 * (killed by SIGTERM)` 18 ms before "received SIGTERM"). Loops ask this before they report a
 * failure as an error: when it resolves true, the failure was the shutdown.
 */
export async function shutdownFollows(signal: AbortSignal, graceMs = SHUTDOWN_GRACE_MS): Promise<boolean> {
  if (!signal.aborted) await sleep(graceMs, signal);
  return signal.aborted;
}

/**
 * Resolves when `signal` aborts, keeping the process alive until then (signal listeners alone do
 * not). For daemons whose work happens in servers and watches: `await untilAborted(signal)`.
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const keepAlive = setInterval(() => undefined, 1 << 30);
    signal.addEventListener(
      'abort',
      () => {
        clearInterval(keepAlive);
        resolve();
      },
      { once: true },
    );
  });
}

/** True for the errors aborted operations reject with (`AbortError`, from fetch, timers, client-node, …). */
export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

function firstLine(err: unknown): string {
  return errorMessage(err).split('\n')[0] ?? '';
}
