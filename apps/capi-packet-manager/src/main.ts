import { hostname } from 'node:os';
import { LeaderElector, checkApiServer, loadKubeConfig } from '@knet/k8s';
import { MetalClient } from '@knet/metal';
import { errorMessage, parseOptions, runMain, startApp } from '@knet/runtime';
import { BootstrapReconciler } from './bootstrap-reconciler';
import { ClusterReconciler } from './cluster-reconciler';
import { Controller } from './controller';
import { ClusterDeviceCache } from './device-cache';
import { MachineReconciler } from './machine-reconciler';
import { createAppMetrics } from './metrics';
import { program } from './options';
import { ProblemLog } from './problems';
import { KubeStore } from './store';
import { VERSION } from './version';

/** Probes and a scrape or two use the port; strangers past this many are refused at accept. */
const MAX_CONNECTIONS = 64;

// Wiring only: options → app → Metal API client, store, reconcilers, watches → serve → until shutdown.
void runMain('capi-packet-manager', async () => {
  const opts = parseOptions(program);
  const app = startApp('capi-packet-manager', opts);
  const { logger } = app;
  const metrics = createAppMetrics(app.registry);
  const { kc } = loadKubeConfig({ kubeconfig: opts.kubeconfig });
  await checkApiServer(kc);

  const metal = new MetalClient({
    token: opts.apiKey,
    apiUrl: opts.apiUrl,
    userAgent: `capi-packet-manager/${VERSION}`,
    onCall: (c) => metrics.metalCall(c.operation, c.status ?? 'none'),
    logger,
  });
  const store = new KubeStore(kc);
  const problems = new ProblemLog(logger);
  const machines = new MachineReconciler({
    store,
    metal,
    devices: new ClusterDeviceCache(metal),
    problems,
    logger,
    pollIntervalMs: opts.devicePollInterval,
  });
  const clusters = new ClusterReconciler({ store, metal, problems });
  const bootstrap = new BootstrapReconciler({ store, logger });
  const controller = new Controller({
    kc,
    namespace: opts.namespace,
    watchFilter: opts.watchFilter,
    syncPeriodMs: opts.syncPeriod,
    clusterConcurrency: opts.clusterConcurrency,
    machineConcurrency: opts.machineConcurrency,
    reconcileCluster: (ns, name) => clusters.reconcile(ns, name),
    reconcileMachine: (ns, name) => machines.reconcile(ns, name),
    reconcileBootstrap: (ns, name) => bootstrap.reconcile(ns, name),
    bootstrapConcurrency: opts.bootstrapConcurrency,
    observe: (kind, seconds, outcome) => metrics.reconciled(kind, seconds, outcome),
    logger,
  });
  // Ready: reconciling with the watches listed — or, with --leader-elect, standing by as a
  // follower (as controller-runtime's managers are), so a rolling update of several replicas
  // completes; the leader is ready once its watches have listed.
  let leading = false;
  await app.serve({
    limits: { maxConnections: MAX_CONNECTIONS },
    readiness: { reconciling: () => (opts.leaderElect && !leading) || metrics.ready },
  });

  const run = async () => {
    await controller.start();
    metrics.ready = true;
    logger.info({ apiUrl: metal.apiUrl, namespace: opts.namespace ?? '(all)' }, 'reconciling');
  };
  // Losing the Lease exits, so the pod restarts clean as a follower.
  const elector = opts.leaderElect
    ? new LeaderElector({
        kc,
        namespace: opts.leaderElectionNamespace ?? '', // validate() requires it with --leader-elect
        name: opts.leaseName,
        identity: opts.identity ?? hostname(),
        logger,
        onStartedLeading: () => {
          leading = true;
          run().catch((e: unknown) => {
            logger.error({ err: errorMessage(e) }, 'could not start reconciling');
            process.exitCode = 1;
            process.kill(process.pid, 'SIGTERM');
          });
        },
        onStoppedLeading: () => {
          metrics.ready = false;
          if (!app.signal.aborted) process.kill(process.pid, 'SIGTERM');
        },
      })
    : undefined;
  if (elector) elector.start();
  else await run();

  app.onShutdown(async () => {
    metrics.ready = false;
    await controller.stop();
    await elector?.stop();
    metal.close();
  }, 'capi-packet-manager');
  await app.untilShutdown();
});
