import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Backoff, parseOptions, runMain, startApp } from '@knet/runtime';
import { AgentConnection } from '@knet/tunnel';
import { egressProxyFor, redactedProxy, tunnelingAgent } from './egress-proxy';
import { createAgentMetrics } from './metrics';
import { livenessTimeoutOf, program } from './options';
import { STABLE_CONNECTION_MS, Supervisor } from './supervisor';
import { agentTargets } from './targets';
import { ApiServerProxy, chooseUpstream } from './upstream';
import { VERSION } from './version';

void runMain('tower-agent', async () => {
  const opts = parseOptions(program);
  const app = startApp('tower-agent', opts);
  const { logger } = app;

  const upstream = await chooseUpstream(opts);
  // HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as Go (and KubeSphere's agent) read them.
  const egress = egressProxyFor(opts.proxyServer);
  logger.info(
    {
      apiserver: upstream.server.host,
      proxy: opts.proxyServer,
      ...(egress ? { egressProxy: redactedProxy(egress) } : {}),
      cluster: opts.name,
    },
    'starting',
  );

  const metrics = createAgentMetrics(app.registry);
  const apiBytes = {
    up: metrics.bytes.labels({ target: 'kubernetes', direction: 'up' }),
    down: metrics.bytes.labels({ target: 'kubernetes', direction: 'down' }),
  };
  const apiServer = new ApiServerProxy(upstream, logger, (dir, n) => apiBytes[dir].inc(n));
  const supervisor = new Supervisor({
    connect: () =>
      new AgentConnection({
        url: opts.proxyServer,
        cluster: opts.name,
        token: opts.token,
        agent: opts.agentId ?? hostname(),
        agentVersion: VERSION,
        fingerprint: opts.fingerprint,
        keepaliveMs: opts.keepalive,
        // Read at each attempt: a renewed CA needs no restart.
        ...(opts.proxyCa ? { proxyCa: readFileSync(opts.proxyCa, 'utf8') } : {}),
        ...(egress ? { httpAgent: tunnelingAgent(egress, opts.proxyServer.startsWith('wss:')) } : {}),
        targets: agentTargets({
          apiServer,
          ...(opts.kubesphereService === 'none' ? {} : { kubesphere: opts.kubesphereService }),
          metrics,
        }),
        logger,
        metrics,
      }),
    maxRetry: opts.maxRetry,
    backoff: new Backoff({ baseMs: 500, maxMs: opts.maxRetryInterval, factor: 2, jitter: 0.5 }),
    stableMs: STABLE_CONNECTION_MS,
    signal: app.signal,
    logger,
    metrics,
  });
  await app.serve({
    readiness: { connected: () => supervisor.connected },
    liveness: { 'connected-recently': () => supervisor.connectedWithin(livenessTimeoutOf(opts)) },
  });

  const onHup = () => {
    logger.info('SIGHUP: reconnecting now');
    supervisor.wake();
  };
  process.on('SIGHUP', onHup);
  app.onShutdown(() => {
    process.off('SIGHUP', onHup);
    apiServer.close();
  }, 'tower-agent');
  await supervisor.run();
});
