import { CoreV1Api } from '@kubernetes/client-node';
import { loadKubeConfig } from '@knet/k8s';
import { createClientContext, discoverFacts, loadConfig, planClient } from '@knet/podgw';
import {
  Counter,
  Gauge,
  Histogram,
  UsageError,
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  installSignalHandlers,
  parseOptions,
  runMain,
  sleep,
} from '@knet/runtime';
import { program } from './options';
import { podProgress } from './pod-status';
import { Watchdog } from './watchdog';

void runMain('client-sidecar', async () => {
  const opts = parseOptions(program);
  if (Boolean(opts.podName) !== Boolean(opts.podNamespace)) {
    throw new UsageError(
      '--pod-name (POD_NAME) and --pod-namespace (POD_NAMESPACE) go together: give both or neither',
    );
  }
  const config = loadConfig(opts);
  const logger = createLogger({ name: 'client-sidecar', level: opts.logLevel });
  for (const w of config.warnings) logger.warn(w);
  const { signal: shutdown } = installSignalHandlers({ logger });
  const done = new AbortController();
  const signal = AbortSignal.any([shutdown, done.signal]);

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
  if (opts.healthPort !== 0) {
    const server = createObservabilityServer({
      port: opts.healthPort,
      registry,
      logger,
      shutdownSignal: shutdown,
    });
    server.addReadinessCheck('routed', () => routed);
    await server.listen();
  }

  const watching = watchdog.run(signal);
  let finished = false;
  if (opts.podName && opts.podNamespace) {
    const { kc } = loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
    const api = kc.makeApiClient(CoreV1Api);
    let lastWaiting = '';
    do {
      try {
        const pod = await api.readNamespacedPod({ name: opts.podName, namespace: opts.podNamespace });
        const progress = podProgress(pod, opts.containerName);
        if (progress.finished) {
          finished = true;
          break;
        }
        const waiting = progress.waitingFor.join(', ');
        if (waiting !== lastWaiting) logger.debug({ waitingFor: progress.waitingFor }, 'pod still working');
        lastWaiting = waiting;
      } catch (e) {
        logger.warn(
          { err: (e as Error).message, pod: `${opts.podNamespace}/${opts.podName}` },
          'cannot read this pod',
        );
      }
    } while (await sleep(opts.podPollInterval, signal));
  }
  if (finished) {
    logger.info(
      { pod: `${opts.podNamespace}/${opts.podName}` },
      'the other containers have finished: exiting',
    );
    done.abort();
  }
  await watching;
  await watchdog.release();
});
