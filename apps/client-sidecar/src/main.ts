import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '@knet/k8s';
import { createClientContext, discoverFacts, loadConfig, planClient } from '@knet/podgw';
import {
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  installSignalHandlers,
  parseOptions,
  runMain,
} from '@knet/runtime';
import { createClientMetrics } from './metrics';
import { program } from './options';
import { superviseClient, type OwnPod } from './supervisor';
import { Watchdog } from './watchdog';

void runMain('client-sidecar', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const logger = createLogger({ name: 'client-sidecar', level: opts.logLevel });
  for (const w of config.warnings) logger.warn(w);
  const { signal: shutdown } = installSignalHandlers({ logger, timeoutMs: opts.shutdownTimeout });

  // Short attempts with fast retransmission: a restarting gateway is back within seconds, and an
  // attempt against the old, dead gateway (its DNS record not yet updated) must not hold us long.
  const ctx = createClientContext(opts, config, logger, {
    timeoutMs: Math.min(opts.dhcpTimeout, 2000),
    timeouts: { initialRetransmitMs: 250, maxRetransmitMs: 1000 },
  });
  const { nat } = ctx;
  const facts = await discoverFacts(ctx);
  const plan = planClient(config.settings, nat, facts);

  const registry = createMetricsRegistry();
  const metrics = createClientMetrics(registry);
  const watchdog = new Watchdog(ctx, plan, facts, {
    intervalMs: opts.checkInterval,
    retryMs: opts.retryInterval,
    onRouted: metrics.onRouted,
    onRecovered: metrics.onRecovered,
  });
  if (opts.metricsPort !== undefined) {
    const server = createObservabilityServer({
      port: opts.metricsPort,
      host: opts.metricsHost,
      registry,
      logger,
      shutdownSignal: shutdown,
    });
    server.addReadinessCheck('routed', () => metrics.routed);
    await server.listen();
  }

  const pod =
    opts.podName && opts.podNamespace
      ? ownPod(opts.podName, opts.podNamespace, opts.containerName, opts.podPollInterval, opts.kubeconfig)
      : undefined;
  await superviseClient(watchdog, pod, logger, shutdown);
});

/** This pod through the API server, as its service account (or `kubeconfig`) may read it. */
function ownPod(
  name: string,
  namespace: string,
  containerName: string,
  pollIntervalMs: number,
  kubeconfig: string | undefined,
): OwnPod {
  const { kc } = loadKubeConfig(kubeconfig ? { kubeconfig } : {});
  const api = kc.makeApiClient(CoreV1Api);
  return {
    id: `${namespace}/${name}`,
    read: () => api.readNamespacedPod({ name, namespace }),
    containerName,
    pollIntervalMs,
  };
}
