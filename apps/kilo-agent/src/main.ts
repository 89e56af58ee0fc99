import { hostname as osHostname } from 'node:os';
import { lookup } from 'node:dns/promises';
import { ExecaRunner, createHostNet } from '@knet/host-net';
import { checkApiServer, loadKubeConfig } from '@knet/k8s';
import type { KubeConfig } from '@kubernetes/client-node';
import { KG_CLEANUP_ANNOTATIONS, topologyGraph } from '@knet/kilo';
import { errorMessage, parseOptions, runMain, startApp } from '@knet/runtime';
import { KubeCluster, checkPeerApi } from './cluster';
import { Datapath } from './datapath';
import { autoMtu, readHostFacts } from './host-facts';
import { loadOrCreateKey } from './key';
import { createAgentMetrics } from './metrics';
import { program } from './options';
import { Agent } from './reconcile';

/** Kilo's check-in period and the debounce of Node/Peer events. */
const CHECK_IN_MS = 30_000;
const DEBOUNCE_MS = 100;
/** Open connections on --listen at once (the rest are closed at accept). */
const MAX_CONNECTIONS = 128;

// Wiring only: options → app → key, host facts, cluster, datapath → agent → serve → run → clean up.
void runMain('kilo-agent', async () => {
  const opts = parseOptions(program);
  const app = startApp('kilo-agent', {
    ...opts,
    metricsHost: opts.listen.host,
    metricsPort: opts.listen.port,
  });
  const hostname = opts.hostname ?? osHostname();
  const metrics = createAgentMetrics(app.registry);
  const net = createHostNet(new ExecaRunner({ logger: app.logger }), { logger: app.logger });
  const key = await loadOrCreateKey(opts.keyFile, app.logger);
  const host = await readHostFacts(net, {
    hostname,
    iface: opts.interface,
    internalCidrs: opts.internalCidr,
  });
  const { kc } = loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  if (opts.master) overrideServer(kc, opts.master);
  await checkApiServer(kc);
  await checkPeerApi(kc);
  const cluster = new KubeCluster(kc, { hostname, logger: app.logger });
  const datapath = new Datapath(net, {
    iface: opts.interface,
    createInterface: opts.createInterface,
    logger: app.logger,
  });
  const externalIP = opts.prioritisePrivateAddresses && host.internalIP ? host.internalIP : host.publicIP;
  const agent = new Agent({
    cluster,
    datapath,
    facts: {
      hostname,
      publicKey: key.publicKey,
      privateKey: key.privateKey,
      ...(externalIP ? { externalIP } : {}),
      ...(host.internalIP ? { internalIP: host.internalIP } : {}),
      ...(host.privateInterface ? { privateInterface: host.privateInterface } : {}),
      addressDevices: host.addressDevices,
      port: opts.port,
      granularity: opts.meshGranularity,
    },
    options: {
      plan: {
        granularity: opts.meshGranularity,
        subnet: opts.subnet,
        serviceCIDRs: opts.serviceCidr,
        stableWireGuardIPs: opts.stableWireguardIps,
        strategy: opts.encapsulate,
        compatibility: opts.compatibility,
        local: opts.local,
        cni: opts.cni,
        iptablesForwardRules: opts.iptablesForwardRules,
        iface: opts.interface,
        mtu: opts.mtu === 'auto' ? autoMtu(host) : opts.mtu,
      },
      topologyLabel: opts.topologyLabel,
      resyncMs: opts.resyncPeriod,
      checkInMs: CHECK_IN_MS,
      debounceMs: DEBOUNCE_MS,
      probeIntervalMs: opts.leaderProbeInterval,
      probe: { failures: opts.leaderProbeFailures, holdSeconds: 60, graceSeconds: 10 },
      ...(opts.cni ? { cniPath: opts.cniPath } : {}),
    },
    resolve: async (name) => (await lookup(name)).address,
    ping: async (address) => (await net.ping.ping(address, { timeoutSec: 1 })).answered,
    logger: app.logger,
    metrics,
  });
  await app.serve({
    // The host network: anyone who reaches the node reaches this port; probes and scrapes need few.
    limits: { maxConnections: MAX_CONNECTIONS },
    readiness: { applied: () => agent.last?.ready === true && agent.lastError === undefined },
    routes: {
      // Kilo's endpoints: /health answers 200 while the agent runs and its last pass applied.
      '/health': (_req, res) => {
        const ok = agent.lastError === undefined;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ok ? 'ok\n' : `${agent.lastError}\n`);
      },
      '/graph': (_req, res) => {
        const t = agent.topology;
        if (!t) {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end('no topology yet\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/vnd.graphviz' });
        res.end(topologyGraph(t));
      },
    },
  });
  await cluster.start();
  app.onShutdown(async () => {
    await cluster.stop();
    if (!opts.cleanUp) return;
    const errors = await agent.cleanup(opts.cleanUpInterface, KG_CLEANUP_ANNOTATIONS);
    for (const e of errors) app.logger.error({ err: e }, 'kilo-agent: clean-up step failed');
  }, 'clean-up');
  app.logger.info(
    {
      node: hostname,
      publicKey: key.publicKey,
      internalIP: host.internalIP ?? null,
      endpointIP: externalIP ?? null,
    },
    'kilo-agent: started',
  );
  await agent.run(app.signal).catch((e: unknown) => {
    throw new Error(`agent loop: ${errorMessage(e)}`);
  });
});

/** `--master`: the API server address wins over the kubeconfig's (as client-go's BuildConfigFromFlags). */
function overrideServer(kc: KubeConfig, server: string): void {
  const current = kc.getCurrentCluster()?.name;
  kc.clusters = kc.clusters.map((c) => (c.name === current ? { ...c, server } : c));
}
