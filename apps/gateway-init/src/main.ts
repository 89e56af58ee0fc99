import { readFileSync } from 'node:fs';
import { ExecaRunner, createHostNet } from '@knet/host-net';
import {
  applyGatewayPlan,
  detectPodGateway,
  loadConfig,
  localDnsServers,
  parseResolvConf,
  planGateway,
  saveOriginalResolvConf,
} from '@knet/podgw';
import { createLogger, parseOptions, runMain } from '@knet/runtime';
import { program } from './options';

void runMain('gateway-init', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const logger = createLogger({ name: 'gateway-init', level: opts.logLevel });
  for (const w of config.warnings) logger.warn(w);
  const net = createHostNet(new ExecaRunner({ logger }));

  const podGateway = config.settings.k8sDefaultGw ?? (await detectPodGateway(net, opts.podInterface, 'inet'));
  // Before the VPN client (a later container) rewrites it: the cluster DNS, DNS_LOCAL_SERVER's default.
  const original = parseResolvConf(
    readFileSync(saveOriginalResolvConf(opts.stateDir, opts.resolvConf, { dryRun: opts.dryRun }), 'utf8'),
  );
  const clusterDns = localDnsServers(config.settings, original);
  const plan = planGateway(config.settings, config.nat, {
    podInterface: opts.podInterface,
    podGateway,
    clusterDns,
  });
  if (opts.dryRun) {
    process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
    return;
  }
  const changes = await applyGatewayPlan(net, plan, logger);
  for (const c of changes) logger.info({ change: c }, 'changed');
  logger.info(
    {
      address: plan.address,
      vxlan: { id: plan.vxlan.id, port: plan.vxlan.dstPort, dev: plan.vxlan.dev },
      vpnInterface: config.settings.vpnInterface ?? null,
      killSwitch: Boolean(config.settings.vpnInterface && config.settings.vpnBlockOtherTraffic),
      portForwards: config.nat.reduce((n, e) => n + e.ports.length, 0),
      changes: changes.length,
    },
    changes.length ? 'gateway network ready' : 'gateway network already as configured: nothing changed',
  );
});
