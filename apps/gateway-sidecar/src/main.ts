import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DhcpServer, FdbVtepFlooder } from '@knet/dhcp';
import { ExecaRunner, createHostNet } from '@knet/host-net';
import { VXLAN_DEVICE, loadConfig, overlay, saveOriginalResolvConf } from '@knet/podgw';
import {
  createLogger,
  createMetricsRegistry,
  createObservabilityServer,
  installSignalHandlers,
  parseOptions,
  runMain,
  untilAborted,
} from '@knet/runtime';
import { DnsServer, parseResolvConf, splitRulesFromSettings } from '@knet/dns';
import { clientHosts } from './hosts';
import { program } from './options';

void runMain('gateway-sidecar', async () => {
  const opts = parseOptions(program);
  const config = loadConfig(opts);
  const { settings } = config;
  const logger = createLogger({ name: 'gateway-sidecar', level: opts.logLevel });
  for (const w of config.warnings) logger.warn(w);
  const { signal } = installSignalHandlers({ logger });
  const net = createHostNet(new ExecaRunner({ logger }));
  const ov = overlay(settings);

  const addresses = await net.ip.listAddresses({ dev: VXLAN_DEVICE, family: 'inet' }).catch(() => []);
  if (!addresses.some((a) => a.local === ov.gateway)) {
    throw new Error(
      `${VXLAN_DEVICE} does not have the gateway address ${ov.gateway}: run gateway-init first (with the same settings)`,
    );
  }
  if (settings.gatewayEnableDnssec) {
    logger.info(
      'GATEWAY_ENABLE_DNSSEC: DNSSEC records and the DO/AD/CD bits pass through; validation is up to the upstream resolver',
    );
  }

  const registry = createMetricsRegistry();
  const original = parseResolvConf(
    readFileSync(saveOriginalResolvConf(opts.stateDir, opts.resolvConf), 'utf8'),
  );
  const dns = new DnsServer({
    listen: [{ address: ov.gateway, port: opts.dnsPort }],
    resolvConfPath: opts.resolvConf,
    split: splitRulesFromSettings(settings, original),
    ...(opts.localDomain ? { domain: opts.localDomain } : {}),
    logger,
    registry,
  });
  const dhcp = new DhcpServer({
    serverAddress: ov.gateway,
    pool: {
      network: ov.network,
      firstDynamic: settings.firstDynamicIp,
      leaseTimeSec: Math.round(opts.leaseTime / 1000),
      reservations: config.nat.map((e) => ({ hostname: e.hostname, ip: ov.address(e.octet) })),
    },
    dnsServers: [ov.gateway],
    ...(settings.vpnInterfaceMtu !== undefined ? { mtu: settings.vpnInterfaceMtu } : {}),
    ...(opts.localDomain ? { domain: opts.localDomain } : {}),
    leaseFile: join(opts.stateDir, 'leases.json'),
    flooder: new FdbVtepFlooder({ fdb: net.fdb, dev: VXLAN_DEVICE, logger }),
    logger,
    onLeasesChanged: (leased) => dns.setHosts(clientHosts(leased, config.nat, ov.address)),
  });

  const server = createObservabilityServer({
    host: opts.healthHost,
    port: opts.healthPort,
    registry,
    logger,
    shutdownSignal: signal,
  });
  let serving = false;
  server.addReadinessCheck('serving', () => serving);
  await server.listen();

  await dns.start();
  await dhcp.start();
  serving = true;
  logger.info(
    {
      dns: `${ov.gateway}:${opts.dnsPort}`,
      dhcpRange: `${ov.address(settings.firstDynamicIp)}-${ov.address(254)}`,
      static: config.nat.length,
      stateDir: opts.stateDir,
    },
    'serving DHCP and DNS on the overlay',
  );
  await untilAborted(signal);
  serving = false;
  await Promise.allSettled([dhcp.stop(), dns.stop()]);
  logger.info('DHCP and DNS stopped');
});
