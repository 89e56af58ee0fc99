import { canonicalPrefix, type IptablesRuleSet, type RouteSpec, type VxlanOptions } from '@knet/host-net';
import { CHAIN_PREFIX, NDP_TYPES, ROUTE_PROTOCOLS, VXLAN_DEVICE } from './gateway-plan';
import type { NatEntry } from './natconf';
import { overlay, type Settings } from './settings';

export interface ClientFacts {
  /** The pod's interface, usually eth0. */
  podInterface: string;
  /** IPv4 gateway of the pod network (K8S_DEFAULT_GW, else the default route's) — kept for NOT_ROUTED. */
  podGateway4: string | undefined;
  /** IPv6 gateway of the pod network, for IPv6 NOT_ROUTED CIDRs (dual-stack clusters). */
  podGateway6: string | undefined;
  /**
   * The kernel's connected routes (`proto kernel`: the prefixes of the pod's own addresses). A
   * NOT_ROUTED CIDR that is one of them is on-link already: a route via the pod gateway would
   * replace the kernel's, and the pod gateway itself would no longer be on-link.
   */
  connected?: readonly { dst: string; dev: string }[];
}

/** What client-init makes true around the DHCP lease. Pure data; the app applies it. */
export interface ClientPlan {
  /** Routes that stay on the pod network: NOT_ROUTED CIDRs and the cluster DNS servers. */
  podRoutes: RouteSpec[];
  vxlan: { name: string } & VxlanOptions;
  /** A route that lets a UDP socket send the DHCP DISCOVER (a limited broadcast) out of vxlan0. */
  broadcastRoute: RouteSpec;
  /** Static overlay address from nat.conf (`NET.octet/24`), else undefined: take a DHCP lease. */
  staticAddress: string | undefined;
  /** The gateway's overlay address. */
  gatewayAddress: string;
  /** IPv6 leak guard: OUTPUT allows only loopback, NOT_ROUTED IPv6 CIDRs and neighbour discovery. */
  ip6tables: IptablesRuleSet;
}

export function planClient(settings: Settings, nat: NatEntry | undefined, facts: ClientFacts): ClientPlan {
  const net = overlay(settings);
  const podRoutes: RouteSpec[] = [];
  const via = (dst: string) => (dst.includes(':') ? facts.podGateway6 : facts.podGateway4);
  const seen = new Set<string>();
  const connected = new Set((facts.connected ?? []).map((r) => canonicalPrefix(r.dst)));
  const add = (dst: string) => {
    const gw = via(dst);
    if (!gw || seen.has(dst) || connected.has(canonicalPrefix(dst))) return;
    seen.add(dst);
    podRoutes.push({ dst, via: gw, dev: facts.podInterface, protocol: ROUTE_PROTOCOLS.podNetwork });
  };
  settings.notRoutedToGatewayCidrs.forEach(add);
  // The cluster DNS must stay reachable to find the gateway again after it moves (pod-gateway
  // relied on NOT_ROUTED covering the service CIDR; without it re-init could not resolve).
  settings.k8sDnsIps.forEach((ip) => add(ip.includes(':') ? `${ip}/128` : `${ip}/32`));

  const vxlan: ClientPlan['vxlan'] = {
    name: VXLAN_DEVICE,
    id: settings.vxlanId,
    dstPort: settings.vxlanPort,
    dev: facts.podInterface,
    // The only peer is the gateway, reached by the all-zeros entry: nothing to learn, and nothing
    // stale to unlearn when the gateway pod moves.
    learning: false,
  };
  if (settings.vpnInterfaceMtu !== undefined) vxlan.mtu = settings.vpnInterfaceMtu;

  const v6 = settings.notRoutedToGatewayCidrs.filter((c) => c.includes(':'));
  return {
    podRoutes,
    vxlan,
    broadcastRoute: { dst: '255.255.255.255/32', dev: VXLAN_DEVICE, protocol: ROUTE_PROTOCOLS.toGateway },
    staticAddress: nat ? `${net.address(nat.octet)}/${net.prefixLength}` : undefined,
    gatewayAddress: net.gateway,
    ip6tables: {
      table: 'filter',
      chains: {
        [`${CHAIN_PREFIX}V6`]: [
          '-o lo -j ACCEPT',
          ...v6.map((c) => `-d ${c} -j ACCEPT`),
          ...NDP_TYPES.filter((t) => t !== 134).map(
            (t) => `-p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`,
          ),
          '-j REJECT --reject-with icmp6-adm-prohibited',
        ],
      },
      jumps: [{ fromChain: 'OUTPUT', rule: `-j ${CHAIN_PREFIX}V6`, position: 'prepend' }],
    },
  };
}

/**
 * The client's INPUT guard, for the gateway pod it connects to now (client-init and every
 * reconnection of client-sidecar re-apply it, so it follows the gateway when it moves): the
 * overlay (UDP VXLAN_PORT) only from the gateway pod's IP on the pod interface, DHCP replies (UDP
 * 68) only from vxlan0. Any other pod could otherwise send it frames as the gateway — an ARP reply
 * or a DHCP offer for NET.1 — and take its default route past the gateway's kill switch.
 */
export function clientInputFilter(
  settings: Pick<Settings, 'vxlanPort'>,
  facts: Pick<ClientFacts, 'podInterface'>,
  gatewayIp: string,
): IptablesRuleSet {
  const chain = `${CHAIN_PREFIX}IN`;
  const vxlanPort = `-p udp -m udp --dport ${settings.vxlanPort}`;
  return {
    table: 'filter',
    chains: {
      [chain]: [
        `-s ${gatewayIp}/32 -i ${facts.podInterface} ${vxlanPort} -j ACCEPT`,
        `${vxlanPort} -j DROP`,
        `-i ${VXLAN_DEVICE} -p udp -m udp --dport 68 -j ACCEPT`,
        '-p udp -m udp --dport 68 -j DROP',
      ],
    },
    jumps: [{ fromChain: 'INPUT', rule: `-j ${chain}`, position: 'prepend' }],
  };
}

/** Host route to the gateway pod over the pod network (it is rarely on-link). */
export function gatewayPodRoute(gatewayIp: string, facts: ClientFacts): RouteSpec | undefined {
  const gw = gatewayIp.includes(':') ? facts.podGateway6 : facts.podGateway4;
  if (!gw) return undefined;
  return {
    dst: gatewayIp.includes(':') ? `${gatewayIp}/128` : `${gatewayIp}/32`,
    via: gw,
    dev: facts.podInterface,
    protocol: ROUTE_PROTOCOLS.toGateway,
  };
}

/** The client's default route over the overlay. */
export function overlayDefaultRoute(gatewayAddress: string): RouteSpec {
  return { dst: 'default', via: gatewayAddress, dev: VXLAN_DEVICE, protocol: ROUTE_PROTOCOLS.overlay };
}
