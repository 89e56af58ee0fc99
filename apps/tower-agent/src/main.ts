import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import {
  Backoff,
  UsageError,
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  installSignalHandlers,
  onShutdown,
  parseOptions,
  runMain,
} from '@knet/runtime';
import { normalizeFingerprint, tunnelUrl } from '@knet/tunnel';
import { AgentConnection, FingerprintMismatchError, RefusedError } from './connection';
import { createAgentMetrics } from './metrics';
import { program } from './options';
import { ApiServerProxy, inClusterUpstream, type Upstream } from './upstream';
import { VERSION } from './version';

void runMain('tower-agent', async () => {
  const opts = parseOptions(program);
  let url: string;
  let fingerprint: string;
  try {
    url = tunnelUrl(opts.proxyServer);
    fingerprint = normalizeFingerprint(opts.fingerprint);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const logger = createLogger({ name: 'tower-agent', level: opts.logLevel });
  const { signal } = installSignalHandlers({ logger, timeoutMs: opts.shutdownTimeout });

  const upstream = await chooseUpstream(opts);
  logger.info({ apiserver: upstream.server.host, proxy: url, cluster: opts.name }, 'starting');

  const registry = createMetricsRegistry();
  const metrics = createAgentMetrics(registry);
  const apiBytes = {
    up: metrics.bytes.labels({ target: 'kubernetes', direction: 'up' }),
    down: metrics.bytes.labels({ target: 'kubernetes', direction: 'down' }),
  };
  const apiServer = new ApiServerProxy(upstream, logger, (dir, n) => apiBytes[dir].inc(n));
  const server = createObservabilityServer({
    host: opts.metricsHost,
    port: opts.metricsPort,
    registry,
    logger,
    shutdownSignal: signal,
  });
  let connected = false;
  server.addReadinessCheck('connected', () => connected);
  await server.listen();

  let current: AgentConnection | undefined;
  let wake: (() => void) | undefined;
  const onHup = () => {
    logger.info('SIGHUP: reconnecting now');
    wake?.();
  };
  process.on('SIGHUP', onHup);
  onShutdown(async () => {
    process.off('SIGHUP', onHup);
    current?.close();
    apiServer.close();
    await server.close();
  }, 'tower-agent');
  signal.addEventListener('abort', () => {
    current?.close();
    wake?.();
  });

  const backoff = new Backoff({ baseMs: 500, maxMs: opts.maxRetryInterval, factor: 2, jitter: 0.5 });
  let failures = 0;
  for (let attempt = 0; !signal.aborted; attempt++) {
    if (attempt > 0) metrics.reconnects.inc();
    const conn = new AgentConnection({
      url,
      cluster: opts.name,
      token: opts.token,
      agent: opts.agentId ?? hostname(),
      agentVersion: VERSION,
      fingerprint,
      keepaliveMs: opts.keepalive,
      ...(opts.proxyCa ? { proxyCa: readFileSync(opts.proxyCa, 'utf8') } : {}),
      apiServer,
      ...(opts.kubesphereService === 'none' ? {} : { kubesphere: opts.kubesphereService }),
      logger,
      metrics,
    });
    current = conn;
    try {
      await conn.established;
      connected = true;
      metrics.connected.set(1);
      failures = 0;
      backoff.reset();
      const lost = await conn.closed;
      if (!signal.aborted) {
        metrics.connectionFailures.inc({ reason: 'lost' });
        logger.warn({ err: lost?.message }, 'connection to the proxy lost');
      }
    } catch (e) {
      if (e instanceof FingerprintMismatchError) throw e; // never retried: exit non-zero
      const reason = e instanceof RefusedError ? e.reason : 'connect';
      metrics.connectionFailures.inc({ reason });
      if (!signal.aborted)
        logger.warn({ reason, err: (e as Error).message }, 'could not connect to the proxy');
      failures++;
      if (opts.maxRetry > 0 && failures >= opts.maxRetry) {
        throw new Error(
          `gave up after ${failures} failed attempts (--max-retry ${opts.maxRetry}); last error: ${(e as Error).message}`,
        );
      }
    } finally {
      connected = false;
      metrics.connected.set(0);
      conn.close();
    }
    if (signal.aborted) break;
    const delay = backoff.next();
    logger.info({ retryInMs: delay }, 'reconnecting after backoff (SIGHUP retries at once)');
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, delay);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    wake = undefined;
  }
});

async function chooseUpstream(opts: {
  kubeconfig?: string;
  serviceAccountDir: string;
  kubernetesService?: { host: string; port: number };
}): Promise<Upstream> {
  if (opts.kubeconfig) {
    // Loaded only here (see kubeconfig.ts): in a cluster the service-account files are all the
    // agent needs.
    const { kubeconfigFileUpstream } = await import('./kubeconfig');
    return kubeconfigFileUpstream(opts.kubeconfig);
  }
  const host = opts.kubernetesService?.host ?? process.env['KUBERNETES_SERVICE_HOST'];
  const port = String(opts.kubernetesService?.port ?? process.env['KUBERNETES_SERVICE_PORT'] ?? '443');
  if (!host) {
    throw new UsageError(
      'not running in a cluster (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig or --kubernetes-service',
    );
  }
  try {
    return inClusterUpstream(opts.serviceAccountDir, host, port);
  } catch (e) {
    throw new Error(
      `in-cluster credentials in ${opts.serviceAccountDir} unusable: ${(e as Error).message}; pass --kubeconfig outside a cluster`,
    );
  }
}
