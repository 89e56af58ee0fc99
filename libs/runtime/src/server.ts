import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import { errorMessage } from './errors';
import type { Logger } from './logger';

/**
 * A health check: passes when it returns (or resolves) anything but `false`; fails when it returns
 * `false`, throws, rejects or does not settle within the server's `checkTimeoutMs`.
 */
export type HealthCheck = () => void | boolean | Promise<void | boolean>;

export type HealthCheckKind = 'liveness' | 'readiness';

export interface ObservabilityServerOptions {
  /** TCP port; 0 picks a free one (`listen()` returns it). */
  port: number;
  /** Address to bind. Default: all interfaces (`::` when IPv6 is available, else `0.0.0.0`). */
  host?: string;
  /** Registry served on `/metrics`. */
  registry: Registry;
  logger: Logger;
  /** Time one check may take before it counts as failed (default 1000 ms, kubelet's default probe timeout). */
  checkTimeoutMs?: number;
  /**
   * When given, a readiness check named `shutdown` fails as soon as the signal aborts, so the pod
   * leaves Service endpoints while it shuts down (like kube-apiserver's `[-]shutdown`).
   */
  shutdownSignal?: AbortSignal;
  /** Extra GET/HEAD routes by exact path (e.g. `/version`), answered before the built-in ones. */
  routes?: Record<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>;
  /** Handles HTTP upgrade requests (e.g. WebSocket); without it, upgrades are refused with 404. */
  onUpgrade?: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  /**
   * Sees every accepted TCP connection before a byte of it is parsed (to time or count connections
   * from their accept, e.g. unauthenticated ones on a public port).
   */
  onConnection?: (socket: Socket) => void;
  /** Bounds for slow or idle clients; see `HttpLimits` for the defaults. */
  limits?: HttpLimits;
  /**
   * Which built-in endpoints to serve (default both): `health` = `/healthz`, `/readyz`; `metrics` =
   * `/metrics`. An app that must not show its metrics on a public port serves them on a second
   * server (`serve({ metricsListen })`).
   */
  endpoints?: { health?: boolean; metrics?: boolean };
}

/**
 * What one HTTP client may take: a client that sends its request head byte by byte (slow-loris), or
 * never finishes its body, is cut off. The defaults suit probes and scrapes, which send a short
 * request at once.
 */
export interface HttpLimits {
  /** Time from the accept (or the previous response) to the end of the request head. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time for a whole request, body included. Default 30 s (not below `headersTimeoutMs`). */
  requestTimeoutMs?: number;
  /** Idle time of a keep-alive connection between requests. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** Size of the request head (request line and headers). Default 16 KiB; larger heads get 431. */
  maxHeaderSize?: number;
  /**
   * Open connections at once; more are closed at accept, before a byte is read (Node's
   * `server.maxConnections`). Default: no cap, because some servers carry long-lived
   * connections on this port (tower-proxy's agent tunnels, a thousand of them); a port that only
   * answers probes and scrapes on the host network (kilo-agent's :1107) sets one.
   */
  maxConnections?: number;
}

/** The limits `createObservabilityServer` applies when a field of `HttpLimits` is not given. */
export const DEFAULT_HTTP_LIMITS: Required<HttpLimits> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderSize: 16 * 1024,
  maxConnections: Number.POSITIVE_INFINITY,
};

/** Serves `/healthz`, `/readyz` and `/metrics`; see `createObservabilityServer`. */
export interface ObservabilityServer {
  /** Registers a liveness check, shown on `/healthz?verbose` and served alone on `/healthz/<name>`. */
  addLivenessCheck(name: string, check: HealthCheck): void;
  /** Registers a readiness check, shown on `/readyz?verbose` and served alone on `/readyz/<name>`. */
  addReadinessCheck(name: string, check: HealthCheck): void;
  /** Starts listening; resolves to the bound port. */
  listen(): Promise<number>;
  /** Stops accepting connections and resolves once the server is closed. Safe to call twice. */
  close(): Promise<void>;
  /** The bound port while listening, else undefined. */
  readonly port: number | undefined;
}

interface NamedCheck {
  name: string;
  check: HealthCheck;
}

interface CheckResult {
  name: string;
  ok: boolean;
  excluded: boolean;
  reason?: string;
}

const CHECK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const TEXT = 'text/plain; charset=utf-8';
const PATHS: Record<string, HealthCheckKind> = { healthz: 'liveness', readyz: 'readiness' };

/**
 * Creates the HTTP server every daemon exposes for kubelet probes and Prometheus:
 *
 * - `GET /healthz` liveness: 200 `ok` unless a liveness check fails (then 500 with the check list);
 * - `GET /readyz` readiness: 200 `ok` only when every readiness check passes;
 *   `?verbose` lists each check as `[+]name ok` / `[-]name failed: reason withheld`, as kube-apiserver
 *   does, and `?exclude=name` (repeatable) skips checks; `/healthz/<name>` and `/readyz/<name>`
 *   run one check. Failure reasons are logged (when a check starts or stops failing), not served;
 * - `GET /metrics`: the registry in Prometheus text format with its Content-Type;
 * - anything else 404, methods other than GET/HEAD 405.
 */
export function createObservabilityServer(options: ObservabilityServerOptions): ObservabilityServer {
  const checks: Record<HealthCheckKind, NamedCheck[]> = {
    liveness: [{ name: 'ping', check: () => true }],
    readiness: [{ name: 'ping', check: () => true }],
  };
  const lastOk = new Map<string, boolean>();
  const timeoutMs = options.checkTimeoutMs ?? 1000;
  const { logger, registry } = options;
  const limits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };
  const serveHealth = options.endpoints?.health ?? true;
  const serveMetrics = options.endpoints?.metrics ?? true;
  const requestTimeout = Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs);
  const serverOptions: http.ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderSize,
    // Node checks the two timeouts above only this often (30 s by default): a quarter of the
    // shorter one, so a slow client is cut off within 1.25x its limit.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
  };
  const server = http.createServer(serverOptions, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err, path: req.url }, 'observability request failed');
      if (!res.headersSent) send(res, req, 500, TEXT, 'internal server error\n');
      else res.destroy();
    });
  });
  if (Number.isFinite(limits.maxConnections)) server.maxConnections = limits.maxConnections;
  if (options.onConnection) server.on('connection', options.onConnection);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (options.onUpgrade) options.onUpgrade(req, socket, head);
    else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  let port: number | undefined;

  function addCheck(kind: HealthCheckKind, name: string, check: HealthCheck): void {
    if (!CHECK_NAME.test(name)) {
      throw new Error(`${kind} check name ${JSON.stringify(name)} must match ${CHECK_NAME.source}`);
    }
    if (checks[kind].some((c) => c.name === name))
      throw new Error(`${kind} check "${name}" is already registered`);
    checks[kind].push({ name, check });
  }

  async function runCheck(kind: HealthCheckKind, { name, check }: NamedCheck): Promise<CheckResult> {
    let reason: string | undefined;
    try {
      const result = await withTimeout(Promise.resolve().then(check), timeoutMs);
      if (result === false) reason = 'check returned false';
    } catch (err) {
      reason = errorMessage(err);
    }
    const ok = reason === undefined;
    const key = `${kind}/${name}`;
    const before = lastOk.get(key);
    if (!ok && before !== false) logger.warn({ check: name, kind, reason }, `${kind} check failing`);
    if (ok && before === false) logger.info({ check: name, kind }, `${kind} check passing again`);
    lastOk.set(key, ok);
    return { name, ok, excluded: false, ...(reason === undefined ? {} : { reason }) };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, req, 405, TEXT, 'method not allowed\n');
      return;
    }
    const route = options.routes?.[url.pathname];
    if (route) {
      route(req, res);
      return;
    }
    if (url.pathname === '/metrics' && serveMetrics) {
      const body = await registry.metrics();
      send(res, req, 200, registry.contentType, body);
      return;
    }
    const [, first, one, ...rest] = url.pathname.split('/');
    const kind = first === undefined || !serveHealth ? undefined : PATHS[first];
    if (kind === undefined || rest.length > 0 || one === '') {
      send(res, req, 404, TEXT, 'not found\n');
      return;
    }
    const label = kind === 'liveness' ? 'healthz' : 'readyz';
    if (one !== undefined) {
      const only = checks[kind].find((c) => c.name === one);
      if (!only) {
        send(res, req, 404, TEXT, 'not found\n');
        return;
      }
      const result = await runCheck(kind, only);
      send(res, req, result.ok ? 200 : 500, TEXT, result.ok ? 'ok\n' : render([result], label, false));
      return;
    }
    const excluded = new Set(url.searchParams.getAll('exclude'));
    const results = await Promise.all(
      checks[kind].map((c) =>
        excluded.has(c.name) ? { name: c.name, ok: true, excluded: true } : runCheck(kind, c),
      ),
    );
    const ok = results.every((r) => r.ok);
    const verbose = url.searchParams.has('verbose');
    send(res, req, ok ? 200 : 500, TEXT, ok && !verbose ? 'ok\n' : render(results, label, ok));
  }

  if (options.shutdownSignal) {
    const signal = options.shutdownSignal;
    addCheck('readiness', 'shutdown', () => {
      if (signal.aborted) throw new Error('process is shutting down');
    });
  }

  return {
    addLivenessCheck: (name, check) => addCheck('liveness', name, check),
    addReadinessCheck: (name, check) => addCheck('readiness', name, check),
    get port() {
      return port;
    },
    listen() {
      if (server.listening) return Promise.reject(new Error('observability server is already listening'));
      return new Promise<number>((resolve, reject) => {
        const onError = (err: Error) => {
          reject(
            new Error(
              `observability server cannot listen on ${formatHostPort(options.host, options.port)}: ${err.message}`,
            ),
          );
        };
        server.once('error', onError);
        const onListening = () => {
          server.off('error', onError);
          port = (server.address() as AddressInfo).port;
          logger.info({ host: options.host ?? '*', port }, 'observability server listening');
          resolve(port);
        };
        if (options.host === undefined) server.listen(options.port, onListening);
        else server.listen(options.port, options.host, onListening);
      });
    },
    close() {
      if (!server.listening) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        // Connections still busy after a grace period (a slow scrape) are cut.
        const force = setTimeout(() => server.closeAllConnections(), 2000).unref();
        server.close((err) => {
          clearTimeout(force);
          port = undefined;
          if (err) reject(err);
          else resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

function render(results: CheckResult[], label: string, ok: boolean): string {
  const lines = results.map((r) =>
    r.excluded
      ? `[+]${r.name} excluded: ok`
      : r.ok
        ? `[+]${r.name} ok`
        : `[-]${r.name} failed: reason withheld`,
  );
  lines.push(`${label} check ${ok ? 'passed' : 'failed'}`);
  return lines.join('\n') + '\n';
}

function send(
  res: http.ServerResponse,
  req: http.IncomingMessage,
  status: number,
  contentType: string,
  body: string,
): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
  res.end(req.method === 'HEAD' ? undefined : body);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function formatHostPort(host: string | undefined, port: number): string {
  if (host === undefined) return `port ${port}`;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
