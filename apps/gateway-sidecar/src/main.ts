import { BridgeFdbWatcher } from '@knet/dhcp';
import { ExecaRunner, createHostNet } from '@knet/host-net';
import { VXLAN_DEVICE, discoverGatewayFacts, ensureGatewayRules, loadConfig, planGateway } from '@knet/podgw';
import { parseOptions, runMain, startApp } from '@knet/runtime';
import { program } from './options';
import { RulesWatch } from './rules-watch';
import { OverlayServers, requireGatewayAddress } from './servers';

void runMain('gateway-sidecar', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const app = startApp('gateway-sidecar', opts);
  for (const w of config.warnings) app.logger.warn(w);
  const net = createHostNet(new ExecaRunner({ logger: app.logger }));
  await requireGatewayAddress(net.ip, config);

  // gateway-init's rules, planned from the same settings and facts, kept in place.
  const plan = planGateway(
    config.settings,
    config.nat,
    await discoverGatewayFacts(net, config.settings, opts),
  );
  const rules = new RulesWatch({
    reconcile: () => ensureGatewayRules(net, plan, app.logger),
    intervalMs: opts.resyncInterval,
    logger: app.logger,
    registry: app.registry,
  });
  const servers = new OverlayServers({
    ...opts,
    config,
    ip: net.ip,
    fdb: net.fdb,
    fdbWatcher: new BridgeFdbWatcher({ logger: app.logger }),
    vxlanMac: (await net.ip.getLink(VXLAN_DEVICE)).mac,
    logger: app.logger,
    registry: app.registry,
  });
  await app.serve({ readiness: { serving: () => servers.serving, rules: () => rules.ok } });
  app.onShutdown(() => servers.stop(), 'DHCP and DNS');
  app.onShutdown(() => rules.stop(), 'iptables checks');
  await rules.start();
  await servers.start();
  await app.untilShutdown();
});
