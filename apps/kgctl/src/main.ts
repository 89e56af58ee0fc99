import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { AddressSet, ExecaRunner, RouteTable, WireGuardDevice, createHostNet } from '@knet/host-net';
import { generateWireGuardKeyPair, wireGuardPublicKey } from '@knet/crypto';
import { loadKubeConfig } from '@knet/k8s';
import { KgctlError, graphTopology, parseWgKey, showConfNode, showConfPeer, topologyGraph } from '@knet/kilo';
import { UsageError, parseCommand, runMain, startApp } from '@knet/runtime';
import { KubeKiloApi, clusterView } from './cluster';
import { runConnect } from './connect';
import { CONNECT_ROUTE_PROTOCOL } from './connect-plan';
import { cli, connectPeerName, showconfTarget } from './options';

/** Bad input about the cluster's objects (unknown node or peer, not a leader) is a usage error: exit 2. */
const USAGE_KINDS = new Set(['unknown-node', 'unknown-peer', 'not-leader', 'granularity']);

function asUsage(e: unknown): unknown {
  return e instanceof KgctlError && USAGE_KINDS.has(e.kind) ? new UsageError(e.message, { cause: e }) : e;
}

// Wiring only: command and options → Kubernetes API → the pure core (graph, showconf) or the loop (connect).
void runMain('kgctl', async () => {
  const parsed = parseCommand(cli);
  const opts = parsed.opts;
  const { kc } = loadKubeConfig(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {});
  const kgctl = {
    granularity: opts.meshGranularity,
    subnet: opts.subnet,
    port: opts.port,
    stableWireGuardIPs: opts.stableWireguardIps,
  };
  const now = () => Math.floor(Date.now() / 1000);

  switch (parsed.command) {
    case 'graph': {
      const api = new KubeKiloApi(kc);
      const view = clusterView(await api.listNodes(), await api.listPeers(), opts.topologyLabel, now());
      try {
        process.stdout.write(`${topologyGraph(graphTopology(view, kgctl))}\n`);
      } catch (e) {
        throw asUsage(e);
      }
      return;
    }
    case 'showconf': {
      const o = parsed.opts;
      const target = showconfTarget();
      const api = new KubeKiloApi(kc);
      const view = clusterView(await api.listNodes(), await api.listPeers(), o.topologyLabel, now());
      const show = { ...kgctl, asPeer: o.asPeer, output: o.output, allowedIPs: o.allowedIPs };
      try {
        process.stdout.write(
          target.kind === 'node'
            ? showConfNode(view, target.name, show)
            : showConfPeer(view, target.name, show),
        );
      } catch (e) {
        throw asUsage(e);
      }
      return;
    }
    case 'connect': {
      const o = parsed.opts;
      const peerName = connectPeerName();
      let privateKey: string;
      if (o.privateKey) {
        const key = parseWgKey(readFileSync(o.privateKey, 'utf8').trim());
        if (!key)
          throw new UsageError(
            `--private-key: ${o.privateKey} does not hold a base64 WireGuard key (wg genkey)`,
          );
        privateKey = key;
      } else {
        privateKey = generateWireGuardKeyPair().privateKey;
      }
      const app = startApp('kgctl', {
        logLevel: o.logLevel,
        shutdownTimeout: o.shutdownTimeout,
      });
      const logger = app.logger;
      const publicKey = wireGuardPublicKey(privateKey);
      logger.info({ key: publicKey }, 'public key');
      const net = createHostNet(new ExecaRunner({ logger }), { logger });
      await runConnect(
        {
          peerName,
          granularity: o.meshGranularity,
          port: o.port,
          privateKey,
          publicKey,
          allowedIP: o.allowedIP,
          allowedIPs: o.allowedIPs,
          interface: o.interface,
          mtu: o.mtu,
          stableWireGuardIPs: o.stableWireguardIps,
          persistentKeepalive: o.persistentKeepalive,
          topologyLabel: o.topologyLabel,
          resyncPeriodMs: o.resyncPeriod,
          cleanUp: o.cleanUp,
        },
        {
          api: new KubeKiloApi(kc, logger),
          drivers: {
            device: new WireGuardDevice(net, { name: o.interface, implementation: o.wireguard, logger }),
            addresses: new AddressSet(net.ip, { dev: o.interface, logger }),
            routes: new RouteTable(net.ip, { table: 'main', protocol: CONNECT_ROUTE_PROTOCOL, logger }),
          },
          signal: app.signal,
          logger,
          now,
          resolve: async (name) => (await lookup(name)).address,
        },
      );
      return;
    }
  }
});
