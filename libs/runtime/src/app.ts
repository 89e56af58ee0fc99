import type pino from 'pino';
import type { Registry } from 'prom-client';
import { createLogger, type LogLevel, type PinoLogger } from './logger';
import { createMetricsRegistry, type MetricsRegistryOptions } from './metrics';
import {
  createObservabilityServer,
  type HealthCheck,
  type ObservabilityServer,
  type ObservabilityServerOptions,
} from './server';
import {
  processShutdown,
  untilAborted,
  type ShutdownHandler,
  type ShutdownManager,
  type SignalSource,
} from './shutdown';

/** The parsed options `startApp` reads: `daemonOptions()` (or at least `logLevelOption`) spread in. */
export interface AppOptions {
  logLevel: LogLevel;
  /** `shutdownTimeoutOption`; default 25 s. */
  shutdownTimeout?: number;
  /** `metricsOptions()`: where `serve()` listens. */
  metricsHost?: string;
  /** `metricsOptions()`: undefined (with `zero: 'off'`) means `serve()` serves nothing. */
  metricsPort?: number | undefined;
}

/** Seams for tests; a main.ts passes none of them. */
export interface StartAppOptions {
  /** Shutdown manager (default: the process-wide one `runMain` uses). */
  shutdown?: ShutdownManager;
  /** Where SIGTERM/SIGINT come from (default `process`). */
  process?: SignalSource;
  /** Ends the process on a shutdown timeout or a second signal (default `process.exit`). */
  exit?: (code: number) => void;
  /** Where log lines go (default stdout). */
  logDestination?: pino.DestinationStream;
  /** Options of the metrics registry (default: with the process metrics). */
  metrics?: MetricsRegistryOptions;
}

/** What `serve()` exposes besides the defaults. */
export interface ServeOptions {
  /** Where to listen (default: the options' `metricsHost`/`metricsPort`). Port 0 picks a free port. */
  listen?: { host?: string; port: number };
  /** Readiness checks by name: `/readyz` passes only while each passes (besides `shutdown`). */
  readiness?: Record<string, HealthCheck>;
  /** Liveness checks by name (`/healthz`). */
  liveness?: Record<string, HealthCheck>;
  /** Extra GET routes (`/version`). */
  routes?: ObservabilityServerOptions['routes'];
  /** HTTP upgrades (a WebSocket endpoint on the same port). */
  onUpgrade?: ObservabilityServerOptions['onUpgrade'];
  /** Sees every accepted TCP connection first (e.g. to bound unauthenticated ones). */
  onConnection?: ObservabilityServerOptions['onConnection'];
  /** Bounds for slow or idle HTTP clients (default `DEFAULT_HTTP_LIMITS`). */
  limits?: ObservabilityServerOptions['limits'];
  /** Time one check may take (default 1 s). */
  checkTimeoutMs?: number;
  /**
   * Serve `/metrics` on this address instead (a second server with only `/metrics`), e.g. to keep
   * it off a public port; `listen` then answers 404 there. Port 0 picks a free port.
   */
  metricsListen?: { host?: string; port: number };
}

/** What `serve()` started: the endpoint, and the metrics server when `metricsListen` asked for one. */
export type ServedEndpoint = ObservabilityServer & { readonly metrics?: ObservabilityServer };

/** A started app: its logger, shutdown signal, metrics registry and endpoint. See `startApp`. */
export interface App {
  readonly name: string;
  /** JSON lines at `opts.logLevel`. */
  readonly logger: PinoLogger;
  /** Aborted on SIGTERM/SIGINT: pass it to loops, watches and requests. */
  readonly signal: AbortSignal;
  /** Register the app's metrics here; `/metrics` serves it. */
  readonly registry: Registry;
  /**
   * Starts `/healthz`, `/readyz` (with a `shutdown` check that fails once `signal` aborts) and
   * `/metrics` on `listen` or the options' metrics address; closed on shutdown, after the handlers
   * registered later. Resolves to the server, or undefined when the metrics port is off.
   */
  serve(options?: ServeOptions): Promise<ServedEndpoint | undefined>;
  /** Cleanup run on shutdown (after main returned), last registered first. */
  onShutdown(handler: ShutdownHandler, name?: string): () => void;
  /** Resolves when shutdown starts, keeping the process alive until then. */
  untilShutdown(): Promise<void>;
}

/**
 * The start every knet main shares, in one call: the JSON logger at `--log-level`, SIGTERM/SIGINT
 * handling with `--shutdown-timeout` (see `installSignalHandlers`), and a metrics registry;
 * `serve()` then exposes it with the health endpoints. Use it inside `runMain`:
 *
 * ```ts
 * void runMain('gateway-sidecar', async () => {
 *   const opts = parseOptions(program);
 *   const app = startApp('gateway-sidecar', opts);
 *   const dns = new DnsServer({ logger: app.logger, registry: app.registry, … });
 *   await app.serve({ readiness: { serving: () => dns.serving } });
 *   app.onShutdown(() => dns.stop(), 'dns');
 *   await app.untilShutdown();
 * });
 * ```
 */
export function startApp(name: string, opts: AppOptions, seams: StartAppOptions = {}): App {
  const shutdown = seams.shutdown ?? processShutdown;
  const logger = createLogger({
    name,
    level: opts.logLevel,
    ...(seams.logDestination ? { destination: seams.logDestination } : {}),
  });
  const { signal } = shutdown.installSignalHandlers({
    logger,
    ...(opts.shutdownTimeout === undefined ? {} : { timeoutMs: opts.shutdownTimeout }),
    ...(seams.process ? { process: seams.process } : {}),
    ...(seams.exit ? { exit: seams.exit } : {}),
  });
  const registry = createMetricsRegistry(seams.metrics);
  let served = false;

  async function serve(options: ServeOptions = {}): Promise<ServedEndpoint | undefined> {
    if (served) throw new Error(`${name}: serve() was called twice; one endpoint per app`);
    let listen = options.listen;
    if (!listen) {
      if (!('metricsPort' in opts)) {
        throw new Error(
          `${name}: serve() needs a listen address: spread metricsOptions() into the options or pass { listen }`,
        );
      }
      if (opts.metricsPort === undefined) return undefined;
      listen = {
        port: opts.metricsPort,
        ...(opts.metricsHost === undefined ? {} : { host: opts.metricsHost }),
      };
    }
    served = true;
    const server = createObservabilityServer({
      port: listen.port,
      ...(listen.host === undefined ? {} : { host: listen.host }),
      registry,
      logger,
      shutdownSignal: signal,
      ...(options.routes ? { routes: options.routes } : {}),
      ...(options.onUpgrade ? { onUpgrade: options.onUpgrade } : {}),
      ...(options.onConnection ? { onConnection: options.onConnection } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.checkTimeoutMs === undefined ? {} : { checkTimeoutMs: options.checkTimeoutMs }),
      ...(options.metricsListen ? { endpoints: { metrics: false } } : {}),
    });
    for (const [check, fn] of Object.entries(options.readiness ?? {})) server.addReadinessCheck(check, fn);
    for (const [check, fn] of Object.entries(options.liveness ?? {})) server.addLivenessCheck(check, fn);
    await server.listen();
    shutdown.onShutdown(async () => {
      await server.close();
      logger.info('observability server closed');
    }, 'observability server');
    if (!options.metricsListen) return server;
    const metrics = createObservabilityServer({
      port: options.metricsListen.port,
      ...(options.metricsListen.host === undefined ? {} : { host: options.metricsListen.host }),
      registry,
      logger,
      endpoints: { health: false },
    });
    await metrics.listen();
    shutdown.onShutdown(() => metrics.close(), 'metrics server');
    return Object.assign(server, { metrics });
  }

  return {
    name,
    logger,
    signal,
    registry,
    serve,
    onShutdown: (handler, handlerName) => shutdown.onShutdown(handler, handlerName),
    untilShutdown: () => untilAborted(signal),
  };
}
