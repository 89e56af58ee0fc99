import {
  canonicalPrefix,
  type IptablesRuleSet,
  type RouteSpec,
  type RuleSpec,
  type VxlanOptions,
} from '@knet/host-net';
import type { NatEntry } from './natconf';
import { overlay, type Settings } from './settings';

/** Name of the overlay device on gateway and clients (pod-gateway's name). */
export const VXLAN_DEVICE = 'vxlan0';
/**
 * The route protocols of our routes (`proto N` in `ip route`), one per concern: each is a desired
 * set of its own (a RouteTable), so a later run finds, changes and removes only its own routes.
 * - `podNetwork`: routes over the pod network — the gateway's VPN_LOCAL_CIDRS (and its policy
 *   rule), a client's NOT_ROUTED_TO_GATEWAY_CIDRS and cluster DNS;
 * - `toGateway`: a client's way to the gateway pod (its /32 via the pod network) and the DHCP
 *   broadcast route over vxlan0;
 * - `overlay`: a client's default route over vxlan0.
 */
export const ROUTE_PROTOCOLS = { podNetwork: '77', toGateway: '78', overlay: '79' } as const;
export type RouteProtocol = (typeof ROUTE_PROTOCOLS)[keyof typeof ROUTE_PROTOCOLS];
/** Prefix of the iptables chains we own. */
export const CHAIN_PREFIX = 'KNET-PGW-';

export interface GatewayFacts {
  /** The pod's network interface (underlay of the overlay), usually eth0. */
  podInterface: string;
  /** The pod network's gateway (the default route's), for VPN_LOCAL_CIDRS; undefined if none. */
  podGateway: string | undefined;
  /**
   * The cluster DNS servers the gateway itself asks (DNS_LOCAL_SERVER, else the original
   * resolv.conf's): the kill switch lets DNS to them out even when VPN_LOCAL_CIDRS misses them.
   */
  clusterDns?: readonly string[];
  /**
   * The kernel's connected routes (`proto kernel`, no gateway: the prefixes of the pod's own
   * addresses), IPv4 and IPv6. A VPN_LOCAL_CIDRS route never replaces one, and those of the pod
   * interface are where client pods may be (the default of VXLAN_CLIENT_CIDRS).
   */
  connected?: readonly { dst: string; dev: string }[];
}

/** Everything gateway-init makes true; applying it twice changes nothing. */
export interface GatewayPlan {
  sysctls: { key: string; value: string }[];
  vxlan: { name: string } & VxlanOptions;
  /** The gateway's overlay address with prefix (`NET.1/24`). */
  address: string;
  /** `from all lookup main suppress_prefixlength 0 pref 50`: main's specific routes beat a VPN's policy routing. */
  rules: RuleSpec[];
  /** VPN_LOCAL_CIDRS via the pod network's gateway. */
  routes: RouteSpec[];
  iptables: IptablesRuleSet[];
  ip6tables: IptablesRuleSet[];
  /** VPN_BLOCK_OTHER_TRAFFIC with a VPN_INTERFACE: FORWARD and OUTPUT also get the DROP policy. */
  killSwitch: boolean;
}

/** The kill switch is on: VPN_BLOCK_OTHER_TRAFFIC with a VPN_INTERFACE. */
export function killSwitchOn(settings: Pick<Settings, 'vpnInterface' | 'vpnBlockOtherTraffic'>): boolean {
  return Boolean(settings.vpnInterface && settings.vpnBlockOtherTraffic);
}

const chain = (name: string) => `${CHAIN_PREFIX}${name}`;

/**
 * The pod networks the overlay's clients may be in: VXLAN_CLIENT_CIDRS, else VPN_LOCAL_CIDRS (IPv4;
 * with the kill switch on, pod-gateway's overlay only worked towards those) and the subnets of the
 * gateway's pod interface. The gateway takes VXLAN only from them and sends it only to them.
 */
export function vxlanPeerCidrs(
  settings: Settings,
  facts: Pick<GatewayFacts, 'podInterface' | 'connected'>,
): string[] {
  if (settings.vxlanClientCidrs.length > 0) return [...settings.vxlanClientCidrs];
  const own = (facts.connected ?? [])
    .filter((r) => r.dev === facts.podInterface && !r.dst.includes(':'))
    .map((r) => canonicalPrefix(r.dst));
  return [...new Set([...settings.vpnLocalCidrs.filter((c) => !c.includes(':')), ...own])];
}

/**
 * The gateway's desired state from the settings, nat.conf and what the pod looks like. Pure.
 *
 * Differences from pod-gateway's gateway_init.sh, on purpose:
 * - MASQUERADE matches the overlay's source addresses and any interface but the overlay, so
 *   forwarded ports reach clients with the real source address (pod-gateway masqueraded everything).
 * - The kill switch is a DROP at the end of our own chains instead of changing the FORWARD and
 *   OUTPUT policies, it also allows the VXLAN port (so the overlay works whatever the pod CIDR is),
 *   replies to inbound connections (probes), and applies to IPv6 too.
 * - Established traffic is only accepted towards clients (`--ctdir REPLY`), so a flow that a client
 *   started over the VPN cannot continue over eth0 after the VPN goes down.
 */
export function planGateway(settings: Settings, nat: readonly NatEntry[], facts: GatewayFacts): GatewayPlan {
  const net = overlay(settings);
  const vx = VXLAN_DEVICE;
  const vpn = settings.vpnInterface;
  const vxlan: GatewayPlan['vxlan'] = {
    name: vx,
    id: settings.vxlanId,
    dstPort: settings.vxlanPort,
    dev: facts.podInterface,
    learning: true,
  };
  if (settings.vpnInterfaceMtu !== undefined) vxlan.mtu = settings.vpnInterfaceMtu;

  const post: string[] = [];
  if (settings.snatIp && vpn) post.push(`-s ${net.network} -o ${vpn} -j SNAT --to-source ${settings.snatIp}`);
  post.push(`-s ${net.network} ! -o ${vx} -j MASQUERADE`);
  const nat4: IptablesRuleSet = {
    table: 'nat',
    chains: { [chain('POST')]: post },
    jumps: [{ fromChain: 'POSTROUTING', rule: `-j ${chain('POST')}`, position: 'prepend' }],
  };

  // INPUT, always (not only with the kill switch): DHCP only from the overlay (the server listens
  // on 0.0.0.0:67), the overlay only from client pod networks, and from the VPN only replies.
  const peers = vxlanPeerCidrs(settings, facts);
  const dev = facts.podInterface;
  const vxlanPort = `-p udp -m udp --dport ${settings.vxlanPort}`;
  const input4 = [
    `-i ${vx} -p udp -m udp --dport 67 -j ACCEPT`,
    '-p udp -m udp --dport 67 -j DROP',
    ...peers.map((c) => `-s ${c} -i ${dev} ${vxlanPort} -j ACCEPT`),
    `${vxlanPort} -j DROP`,
    ...(vpn ? vpnInput(vpn) : []),
  ];
  const filter4: IptablesRuleSet = {
    table: 'filter',
    chains: { [chain('IN')]: input4 },
    jumps: [{ fromChain: 'INPUT', rule: `-j ${chain('IN')}`, position: 'prepend' }],
  };
  const iptables: IptablesRuleSet[] = [nat4, filter4];
  const ip6tables: IptablesRuleSet[] = [];
  if (vpn) {
    const pre: string[] = [];
    const fwd: string[] = [];
    for (const e of nat) {
      for (const p of e.ports) {
        const client = net.address(e.octet);
        pre.push(
          `-i ${vpn} -p ${p.protocol} -m ${p.protocol} --dport ${p.publicPort} -j DNAT --to-destination ${client}:${p.clientPort}`,
        );
        fwd.push(
          `-i ${vpn} -d ${client}/32 -p ${p.protocol} -m ${p.protocol} --dport ${p.clientPort} -j ACCEPT`,
        );
      }
    }
    if (pre.length > 0) {
      nat4.chains = { ...nat4.chains, [chain('PRE')]: pre };
      nat4.jumps = [
        ...(nat4.jumps ?? []),
        { fromChain: 'PREROUTING', rule: `-j ${chain('PRE')}`, position: 'prepend' },
      ];
    }
    fwd.push(`-o ${vx} -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT`);
    fwd.push(`-i ${vpn} -j REJECT --reject-with icmp-port-unreachable`);
    const out: string[] = [];
    const local4 = settings.vpnLocalCidrs.filter((c) => !c.includes(':'));
    const local6 = settings.vpnLocalCidrs.filter((c) => c.includes(':'));
    if (settings.vpnBlockOtherTraffic) {
      // No client ↔ client: the clients' ARP reaches only the gateway, which does not answer for
      // them (no proxy ARP), so nothing of theirs arrives here to be forwarded back into vxlan0.
      fwd.push(`-i ${vx} -o ${vpn} -j ACCEPT`);
      fwd.push(...local4.map((c) => `-d ${c} -j ACCEPT`), '-j DROP');
      // The overlay's own packets (encapsulated, to client pods) leave by the pod interface.
      const overlayOut = peers.map((c) => `-d ${c} -o ${dev} ${vxlanPort} -j ACCEPT`);
      out.push(...killSwitchOutput(settings, vpn, local4, overlayOut, dnsRules(facts.clusterDns ?? [], 4)));
    }
    filter4.chains = {
      ...filter4.chains,
      [chain('FWD')]: fwd,
      ...(out.length ? { [chain('OUT')]: out } : {}),
    };
    filter4.jumps = [
      ...(filter4.jumps ?? []),
      { fromChain: 'FORWARD', rule: `-j ${chain('FWD')}`, position: 'prepend' },
      ...(out.length
        ? [{ fromChain: 'OUTPUT', rule: `-j ${chain('OUT')}`, position: 'prepend' as const }]
        : []),
    ];
    const filter6: IptablesRuleSet = {
      table: 'filter',
      chains: { [chain('IN')]: vpnInput(vpn, NDP_TYPES) },
      jumps: [{ fromChain: 'INPUT', rule: `-j ${chain('IN')}`, position: 'prepend' }],
    };
    if (settings.vpnBlockOtherTraffic) {
      filter6.chains = {
        ...filter6.chains,
        [chain('FWD')]: [
          `-o ${vx} -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT`,
          `-i ${vx} -o ${vpn} -j ACCEPT`,
          ...local6.map((c) => `-d ${c} -j ACCEPT`),
          '-j DROP',
        ],
        // Neighbour discovery on the pod network, or nothing on it works at all.
        [chain('OUT')]: killSwitchOutput(
          settings,
          vpn,
          local6,
          [],
          [
            ...dnsRules(facts.clusterDns ?? [], 6),
            ...NDP_TYPES.map((t) => `-p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`),
          ],
        ),
      };
      filter6.jumps = [
        ...(filter6.jumps ?? []),
        { fromChain: 'FORWARD', rule: `-j ${chain('FWD')}`, position: 'prepend' },
        { fromChain: 'OUTPUT', rule: `-j ${chain('OUT')}`, position: 'prepend' },
      ];
    }
    ip6tables.push(filter6);
  }

  const podGateway = facts.podGateway;
  // A route to a connected prefix (VPN_LOCAL_CIDRS holding the pod's own subnet) would replace the
  // kernel's on-link route with one via the pod gateway: every neighbour then a hop away.
  const connected = new Set((facts.connected ?? []).map((r) => canonicalPrefix(r.dst)));
  const routes: RouteSpec[] = podGateway
    ? settings.vpnLocalCidrs
        .filter((c) => c.includes(':') === podGateway.includes(':') && !connected.has(canonicalPrefix(c)))
        .map((dst) => ({
          dst,
          via: podGateway,
          dev: facts.podInterface,
          protocol: ROUTE_PROTOCOLS.podNetwork,
        }))
    : [];

  return {
    sysctls: [{ key: 'net.ipv4.ip_forward', value: '1' }],
    vxlan,
    address: `${net.gateway}/${net.prefixLength}`,
    rules: [{ priority: 50, table: 'main', suppressPrefixLength: 0 }],
    routes,
    iptables,
    ip6tables,
    killSwitch: killSwitchOn(settings),
  };
}

/**
 * ICMPv6 router solicitation/advertisement and neighbour solicitation/advertisement, by number:
 * that is how `ip6tables -S` prints them, so a fresh run compares equal and changes nothing.
 */
export const NDP_TYPES = [133, 134, 135, 136];

/** DNS (udp and tcp 53) to each server of one address family. */
function dnsRules(servers: readonly string[], family: 4 | 6): string[] {
  return servers
    .filter((ip) => ip.includes(':') === (family === 6))
    .flatMap((ip) => {
      const dst = `${ip}/${family === 6 ? 128 : 32}`;
      return [`-d ${dst} -p udp -m udp --dport 53 -j ACCEPT`, `-d ${dst} -p tcp -m tcp --dport 53 -j ACCEPT`];
    });
}

/**
 * INPUT from the VPN interface: replies to what the gateway sent, nothing new (the sidecar's
 * /metrics, DHCP and DNS are not for the VPN's side; port forwards are DNAT'd to clients, FORWARD).
 * `ndp`: ICMPv6 neighbour discovery types to accept (a tap-like VPN interface needs them).
 */
function vpnInput(vpn: string, ndp: readonly number[] = []): string[] {
  return [
    `-i ${vpn} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    ...ndp.map((t) => `-i ${vpn} -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`),
    `-i ${vpn} -j DROP`,
  ];
}

/**
 * OUTPUT of the gateway itself with the kill switch on: the VPN, the overlay (`overlay`: VXLAN to
 * client pods), VPN_TRAFFIC_PORT to any address (the VPN client's servers are not known here),
 * cluster networks.
 */
function killSwitchOutput(
  settings: Settings,
  vpn: string,
  local: readonly string[],
  overlay: readonly string[],
  extra: readonly string[] = [],
): string[] {
  return [
    '-o lo -j ACCEPT',
    `-o ${vpn} -j ACCEPT`,
    `-o ${VXLAN_DEVICE} -j ACCEPT`,
    ...overlay,
    ...settings.vpnTrafficPorts.flatMap((p) => [
      `-p udp -m udp --dport ${p} -j ACCEPT`,
      `-p tcp -m tcp --dport ${p} -j ACCEPT`,
    ]),
    ...local.map((c) => `-d ${c} -j ACCEPT`),
    // Answers to connections others opened to the gateway (kubelet probes, metrics).
    '-m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
    ...extra,
    '-j DROP',
  ];
}
