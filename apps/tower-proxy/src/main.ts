import { hostname } from 'node:os';
import { LeaderElector, checkApiServer, loadKubeConfig, serverOf } from '@knet/k8s';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { TUNNEL_PATH } from '@knet/tunnel';
import { KubeClusterStore } from './cluster-store';
import { ClusterController } from './controller';
import { ClusterListeners } from './listeners';
import { createProxyMetrics } from './metrics';
import { program } from './options';
import { Serving } from './serving';
import { SessionRegistry } from './sessions';
import { loadOrCreateCa, loadOrCreateHostKey, publishProxyInfo } from './state';
import { TunnelServer, agentPortHttpLimits } from './tunnel-server';
import { VERSION } from './version';

void runMain('tower-proxy', async () => {
  const opts = parseOptions(program);
  const app = startApp('tower-proxy', opts);
  const { logger, signal } = app;

  const { kc, source } = loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  const { gitVersion } = await checkApiServer(kc);
  logger.info(
    { server: serverOf(kc), credentials: source, kubernetes: gitVersion, version: VERSION },
    'connected to the host cluster',
  );

  const hostKey = await loadOrCreateHostKey(kc, opts.namespace, opts.hostKeySecret);
  const ca = await loadOrCreateCa(
    kc,
    opts.namespace,
    opts.caSecret,
    opts.caCert && opts.caKey ? { cert: opts.caCert, key: opts.caKey } : undefined,
  );
  logger.info(
    { fingerprint: hostKey.fingerprint },
    `SSH host key fingerprint ${hostKey.fingerprint} (agents pin it with --fingerprint)`,
  );
  await publishProxyInfo(kc, opts.namespace, opts.infoConfigMap, { hostKey, ca, version: VERSION });

  const metrics = createProxyMetrics(app.registry);
  const sessions = new SessionRegistry();
  const listeners = new ClusterListeners(sessions, metrics, logger, opts.listenAddress, {
    maxConnections: opts.listenerMaxConnections,
    maxConnectionsPerSource: opts.listenerMaxConnectionsPerSource,
    idleTimeoutMs: opts.listenerIdleTimeout,
    handshakeTimeoutMs: opts.listenerHandshakeTimeout,
  });
  const serviceNamespace = opts.serviceNamespace ?? opts.namespace;
  const store = new KubeClusterStore(kc, { serviceNamespace, logger });
  const controller = new ClusterController({
    store,
    ca,
    registry: sessions,
    listeners,
    metrics,
    logger,
    serviceNamespace,
    serviceSelector: opts.serviceSelector,
    ...(opts.publishServiceAddress ? { publishAddress: opts.publishServiceAddress } : {}),
    portRange: opts.portRange,
    agentGracePeriodMs: opts.agentGracePeriod,
  });
  await controller.start();

  const tunnel: TunnelServer = new TunnelServer({
    hostKey,
    registry: sessions,
    authorize: (h) => controller.authorize(h),
    isServing: () => serving.serving,
    logger,
    metrics,
    version: VERSION,
    keepaliveMs: opts.keepalive,
    handshakeTimeoutMs: opts.handshakeTimeout,
    maxHandshakes: opts.maxHandshakes,
    maxHandshakesPerSource: opts.maxHandshakesPerSource,
  });
  // Agents, /healthz, /readyz, /metrics and /version on one port.
  const server = await app.serve({
    listen: { host: opts.host, port: opts.port },
    // Ready: serving (the leader) with the Cluster and Service watches up, not only listed.
    readiness: { serving: () => serving.serving, synced: () => store.synced },
    routes: {
      '/version': (_req, res) => {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ version: VERSION, fingerprint: hostKey.fingerprint }) + '\n');
      },
    },
    onUpgrade: (req, socket, head) => tunnel.handleUpgrade(req, socket, head),
    // The handshake deadline and the caps count from the TCP accept.
    onConnection: (socket) => tunnel.handleConnection(socket),
    limits: agentPortHttpLimits(opts.handshakeTimeout),
    ...(opts.metricsPort === undefined ? {} : { metricsListen: { host: opts.host, port: opts.metricsPort } }),
  });
  const port = server?.port;
  logger.info({ host: opts.host, port }, `accepting agents on ${opts.host}:${port}${TUNNEL_PATH}`);

  // Exiting on a lost Lease lets the pod restart clean as a follower.
  const serving: Serving = new Serving({ controller, tunnel, listeners }, () => {
    if (!signal.aborted) process.kill(process.pid, 'SIGTERM');
  });
  const elector = opts.leaderElect
    ? new LeaderElector({
        kc,
        namespace: opts.namespace,
        name: opts.leaseName,
        identity: opts.identity ?? hostname(),
        logger,
        // A Lease won back while shutting down (after a loss) is not served.
        onStartedLeading: () => {
          if (!signal.aborted) serving.start();
        },
        onStoppedLeading: () => serving.lost(),
      })
    : undefined;
  if (elector) elector.start();
  else serving.start();

  // Runs before the server closes (registered after serve()).
  app.onShutdown(async () => {
    serving.stop();
    tunnel.close();
    await listeners.closeAll();
    await controller.stop();
    await elector?.stop();
  }, 'tower-proxy');
  await app.untilShutdown();
});
