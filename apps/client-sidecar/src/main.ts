import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '@knet/k8s';
import { createClientContext, discoverFacts, loadConfig, planClient } from '@knet/podgw';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { createClientMetrics } from './metrics';
import { program } from './options';
import { superviseClient, type OwnPod } from './supervisor';
import { Watchdog } from './watchdog';

void runMain('client-sidecar', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const app = startApp('client-sidecar', opts);
  for (const w of config.warnings) app.logger.warn(w);

  // Short attempts with fast retransmission: a restarting gateway is back within seconds, and an
  // attempt against the old, dead gateway (its DNS record not yet updated) must not hold us long.
  const ctx = createClientContext(opts, config, app.logger, {
    timeoutMs: Math.min(opts.dhcpTimeout, 2000),
    timeouts: { initialRetransmitMs: 250, maxRetransmitMs: 1000 },
  });
  const facts = await discoverFacts(ctx);
  const plan = planClient(config.settings, ctx.nat, facts);
  const metrics = createClientMetrics(app.registry);
  const watchdog = new Watchdog(ctx, plan, facts, {
    intervalMs: opts.checkInterval,
    retryMs: opts.retryInterval,
    onRouted: metrics.onRouted,
    onRecovered: metrics.onRecovered,
  });
  await app.serve({ readiness: { routed: () => metrics.routed } });
  await superviseClient(watchdog, ownPod(opts), app.logger, app.signal);
});

/** This pod through the API server as its service account (or --kubeconfig) may read it, if named. */
function ownPod(opts: {
  podName?: string | undefined;
  podNamespace?: string | undefined;
  containerName: string;
  podPollInterval: number;
  kubeconfig?: string | undefined;
}): OwnPod | undefined {
  const { podName: name, podNamespace: namespace } = opts;
  if (!name || !namespace) return undefined;
  const { kc } = loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  const api = kc.makeApiClient(CoreV1Api);
  return {
    id: `${namespace}/${name}`,
    read: () => api.readNamespacedPod({ name, namespace }),
    containerName: opts.containerName,
    pollIntervalMs: opts.podPollInterval,
  };
}
