import { readFileSync } from 'node:fs';
import { connectedRoutes, detectPodGateway, type PodNet } from './apply';
import type { GatewayFacts, GatewayPlan } from './gateway-plan';
import type { PodgwConfig } from './options';
import { parseResolvConf } from './resolv-conf';
import { localDnsServers, type Settings } from './settings';
import { saveOriginalResolvConf } from './state';

/**
 * What gateway-init plans from: the pod network's gateway (K8S_DEFAULT_GW, else the default
 * route's) and the cluster DNS the gateway itself asks (DNS_LOCAL_SERVER, else the nameservers of
 * the pod's original resolv.conf, saved first: the VPN client, a later container, rewrites it)
 * and the kernel's connected routes. With `dryRun` nothing is saved.
 */
export async function discoverGatewayFacts(
  net: PodNet,
  settings: Settings,
  options: { podInterface: string; stateDir: string; resolvConf: string; dryRun?: boolean },
): Promise<GatewayFacts> {
  const podGateway = settings.k8sDefaultGw ?? (await detectPodGateway(net, options.podInterface, 'inet'));
  const saved = saveOriginalResolvConf(options.stateDir, options.resolvConf, {
    dryRun: options.dryRun ?? false,
  });
  const original = parseResolvConf(readFileSync(saved, 'utf8'));
  return {
    podInterface: options.podInterface,
    podGateway,
    clusterDns: localDnsServers(settings, original),
    connected: await connectedRoutes(net),
  };
}

/** The fields of gateway-init's last log line: what the gateway now is. */
export function gatewaySummary(
  plan: GatewayPlan,
  config: Pick<PodgwConfig, 'settings' | 'nat'>,
  changes: readonly string[],
): Record<string, unknown> {
  const { settings, nat } = config;
  return {
    address: plan.address,
    vxlan: { id: plan.vxlan.id, port: plan.vxlan.dstPort, dev: plan.vxlan.dev },
    vpnInterface: settings.vpnInterface ?? null,
    killSwitch: plan.killSwitch,
    portForwards: nat.reduce((n, e) => n + e.ports.length, 0),
    changes: changes.length,
  };
}
