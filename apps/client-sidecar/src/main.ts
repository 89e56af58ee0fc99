import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '@knet/k8s';
import { createClientContext, discoverFacts, loadConfig, planClient } from '@knet/podgw';
import {
  Counter,
  Gauge,
  Histogram,
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  installSignalHandlers,
  parseOptions,
  runMain,
} from '@knet/runtime';
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
  const routedGauge = new Gauge({
    name: 'podgw_client_routed',
    help: '1 while this pod is routed through a gateway that answers',
    registers: [registry],
  });
  const reconnects = new Counter({
    name: 'podgw_client_reconnects_total',
    help: 'tunnel rebuilds (start, gateway lost, lease lost)',
    registers: [registry],
  });
  const recovery = new Histogram({
    name: 'podgw_client_recovery_seconds',
    help: 'time from deciding to rebuild to being routed again',
    buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30, 60],
    registers: [registry],
  });
  let routed = false;
  const watchdog = new Watchdog(ctx, plan, facts, {
    intervalMs: opts.checkInterval,
    retryMs: opts.retryInterval,
    onRouted: (r) => {
      routed = r;
      routedGauge.set(r ? 1 : 0);
    },
    onRecovered: (ms) => {
      reconnects.inc();
      recovery.observe(ms / 1000);
    },
  });
  if (opts.metricsPort !== undefined) {
    const server = createObservabilityServer({
      port: opts.metricsPort,
      host: opts.metricsHost,
      registry,
      logger,
      shutdownSignal: shutdown,
    });
    server.addReadinessCheck('routed', () => routed);
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
