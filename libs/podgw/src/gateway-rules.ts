import type { IptablesBackend, Logger } from '@knet/host-net';
import { ensureIptables, type Changes, type PodNet } from './apply';
import type { GatewayPlan } from './gateway-plan';
import type { Settings } from './settings';

/** The kill switch is on: VPN_BLOCK_OTHER_TRAFFIC with a VPN_INTERFACE. */
export function killSwitchOn(settings: Pick<Settings, 'vpnInterface' | 'vpnBlockOtherTraffic'>): boolean {
  return Boolean(settings.vpnInterface && settings.vpnBlockOtherTraffic);
}

/** The built-in chains whose policy the kill switch sets to DROP. */
export const KILL_SWITCH_CHAINS = ['FORWARD', 'OUTPUT'] as const;

/**
 * FORWARD and OUTPUT of the filter table have the DROP policy. The kill switch itself is the DROP
 * at the end of our own chains; the policy is its second line: `iptables -F` (a VPN container's
 * up/down script, `wg-quick`'s PostDown) removes our jumps but keeps the policies, so the gateway
 * stays closed until gateway-sidecar restores them (within one --resync-interval). With our jumps
 * in place the policy is never reached: our chains accept what the gateway needs and drop the rest.
 */
export async function ensureDropPolicies(backend: IptablesBackend, logger?: Logger): Promise<Changes> {
  const binary = backend.family === 'inet6' ? 'ip6tables' : 'iptables';
  const printed = await backend.listRules('filter');
  const changes: Changes = [];
  for (const chain of KILL_SWITCH_CHAINS) {
    if (printed.split('\n').some((l) => l.trim() === `-P ${chain} DROP`)) continue;
    await backend.command(['-t', 'filter', '-P', chain, 'DROP']);
    logger?.debug({ chain }, `${binary}: policy DROP`);
    changes.push(`${binary}: ${chain} policy DROP`);
  }
  return changes;
}

/**
 * The gateway's iptables rules as planned, in the order that never opens the gateway: the filter
 * tables (the kill switch, IPv4 then IPv6, each followed by its DROP policies when `killSwitch`),
 * then nat. gateway-init applies them before anything can forward; gateway-sidecar re-applies
 * them every --resync-interval.
 */
export async function ensureGatewayRules(
  net: Pick<PodNet, 'iptables' | 'ip6tables' | 'sysctl'>,
  plan: Pick<GatewayPlan, 'iptables' | 'ip6tables'>,
  killSwitch: boolean,
  logger?: Logger,
): Promise<Changes> {
  const changes: Changes = [];
  changes.push(...(await ensureIptables(net.iptables, plan.iptables, ['filter'], logger)));
  if (killSwitch) changes.push(...(await ensureDropPolicies(net.iptables, logger)));
  changes.push(...(await ensureIptables(net.ip6tables, plan.ip6tables, ['filter'], logger)));
  if (killSwitch) changes.push(...(await ensureDropPolicies(net.ip6tables, logger)));
  changes.push(...(await ensureIptables(net.iptables, plan.iptables, ['nat'], logger)));
  return changes;
}
