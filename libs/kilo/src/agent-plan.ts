import type { IptablesRuleSet, RouteSpec, RuleSpec, WgConfig } from '@knet/host-net';
import { oneAddressCidr, nthAddress } from './ip';
import { planIptables, toRuleSets } from './iptables';
import { planRoutes } from './routes';
import { newTopology, nodeNotReadyReasons, nodeReady, peerReady } from './topology';
import {
  KILO_TABLE,
  TUNL_INTERFACE,
  type Compatibility,
  type EncapsulationStrategy,
  type Endpoint,
  type Granularity,
  type KiloNode,
  type KiloPeer,
  type LeaderProbe,
  type Topology,
  type UdpAddr,
} from './types';
import { topologyConf } from './wg-conf';
import { toWgConfig } from './wireguard';

/**
 * kilo-agent's pure pass (Kilo's `Mesh.handleLocal` + `applyTopology` without the I/O): the local
 * node as it publishes it, and everything one node's datapath should be. Shared by the agent and
 * its benchmark.
 */

/** What the agent knows of its own node that the API server does not say (Kilo's Mesh fields). */
export interface LocalFacts {
  hostname: string;
  publicKey: string;
  privateKey: string;
  /** Detected endpoint address (public IP, or the private one with --prioritise-private-addresses). */
  externalIP?: string;
  /** Detected internal IP (CIDR with the interface mask). */
  internalIP?: string;
  /** Interface that holds the detected internal IP (Kilo's privIface). */
  privateInterface?: string;
  /**
   * Every local address → its interface: the internal IP may be forced by annotation
   * (`force-internal-ip`), and its interface is the one routes inside the location use.
   */
  addressDevices?: Readonly<Record<string, string>>;
  /** `--port`. */
  port: number;
  cniCompatibilityIP?: string;
  granularity: Granularity;
  /** The WireGuard CIDR the last topology gave this node (published as `wireguard-ip`), if a leader. */
  wireGuardIP?: string;
  /** This node's latest verdict on its leader (knet). */
  leaderProbe?: LeaderProbe;
}

/**
 * Kilo's `handleLocal`: the local node as the agent publishes it. Endpoint, internal IP, leader,
 * location, subnet, keepalive and allowed-location-ips come from the Node (users set them); the
 * key, last-seen, WireGuard IP, granularity and discovered endpoints are the agent's.
 */
export function localNode(observed: KiloNode | undefined, facts: LocalFacts, now: number): KiloNode {
  const endpoint: Endpoint | undefined =
    observed?.endpoint && endpointReady(observed.endpoint)
      ? observed.endpoint
      : facts.externalIP
        ? { ip: facts.externalIP.split('/')[0] as string, port: facts.port }
        : undefined;
  const noInternalIP = observed?.noInternalIP ?? false;
  const internalIP = observed?.internalIP ?? (noInternalIP ? undefined : facts.internalIP);
  return {
    name: facts.hostname,
    ...(endpoint ? { endpoint } : {}),
    key: facts.publicKey,
    noInternalIP,
    ...(internalIP ? { internalIP } : {}),
    ...(facts.cniCompatibilityIP ? { cniCompatibilityIP: facts.cniCompatibilityIP } : {}),
    lastSeen: now,
    leader: observed?.leader ?? false,
    location: observed?.location ?? '',
    persistentKeepalive: observed?.persistentKeepalive ?? 0,
    ...(observed?.subnet ? { subnet: observed.subnet } : {}),
    ...(facts.wireGuardIP ? { wireGuardIP: facts.wireGuardIP } : {}),
    discoveredEndpoints: observed?.discoveredEndpoints ?? {},
    allowedLocationIPs: observed?.allowedLocationIPs ?? [],
    granularity: facts.granularity,
    ...(facts.leaderProbe ? { leaderProbe: facts.leaderProbe } : {}),
  };
}

function endpointReady(e: Endpoint): boolean {
  return (e.ip !== undefined || e.dns !== undefined) && e.port > 0;
}

export interface PlanOptions {
  granularity: Granularity;
  subnet: string;
  serviceCIDRs: readonly string[];
  stableWireGuardIPs: boolean;
  strategy: EncapsulationStrategy;
  compatibility: Compatibility;
  local: boolean;
  cni: boolean;
  iptablesForwardRules: boolean;
  iface: string;
  mtu: number;
}

export interface PlanInput {
  /** Every node, translated (the local one as `localNode` built it). */
  nodes: readonly KiloNode[];
  peers: readonly KiloPeer[];
  hostname: string;
  privateKey: string;
  /** Interface holding the internal IP. */
  privateInterface?: string;
  /** NAT endpoints this node discovered on its device (published as discovered-endpoints). */
  discovered: Readonly<Record<string, UdpAddr>>;
  /** DNS name → resolved IP for DNS endpoints (Kilo resolves them on every apply). */
  resolved: ReadonlyMap<string, string>;
  now: number;
  options: PlanOptions;
}

/** The datapath one node wants: what the drivers of @knet/host-net make true. */
export interface DesiredDatapath {
  leader: boolean;
  /** The WireGuard device: its config (for `wg syncconf`), MTU and up (down on non-leaders). */
  wireguard: WgConfig & { mtu: number; up: boolean };
  /** Addresses of the WireGuard device (the segment's WireGuard CIDR on a leader, else none). */
  addresses: string[];
  /** `tunl0`'s address (the first IP of the local pod CIDR) when IPIP is in use, else undefined. */
  tunnelAddress?: string;
  /** Routes of the main table and of table 1107. */
  routes: { main: RouteSpec[]; kilo: RouteSpec[] };
  rules: RuleSpec[];
  iptables: { inet: IptablesRuleSet[]; inet6: IptablesRuleSet[] };
}

export type AgentPlan =
  | { ready: false; reason: string; readyNodes: number; readyPeers: number }
  | {
      ready: true;
      topology: Topology;
      datapath: DesiredDatapath;
      /** The WireGuard CIDR to publish (`wireguard-ip`), undefined on non-leaders. */
      wireGuardIP?: string;
      readyNodes: number;
      readyPeers: number;
    };

/**
 * The pure core of one apply (Kilo's `applyTopology`, minus the I/O): ready nodes and peers →
 * topology → WireGuard config, addresses, routes, rules and iptables rules. Deterministic.
 */
export function planAgent(input: PlanInput): AgentPlan {
  const o = input.options;
  const withDiscovered = input.nodes.map((n) =>
    n.name === input.hostname ? { ...n, discoveredEndpoints: input.discovered } : n,
  );
  const nodes: Record<string, KiloNode> = {};
  for (const n of withDiscovered) if (nodeReady(n, input.now)) nodes[n.name] = resolveNode(n, input.resolved);
  const peers: Record<string, KiloPeer> = {};
  for (const p of input.peers) if (peerReady(p)) peers[p.name] = resolvePeer(p, input.resolved);
  const readyNodes = Object.keys(nodes).length;
  const readyPeers = Object.keys(peers).length;
  const self = nodes[input.hostname];
  if (!self) {
    const local = withDiscovered.find((n) => n.name === input.hostname);
    const why = local ? nodeNotReadyReasons(local, input.now).join(', ') : 'its Node is not seen yet';
    return {
      ready: false,
      reason: `local node ${input.hostname} is not ready yet: ${why}`,
      readyNodes,
      readyPeers,
    };
  }
  const topology = newTopology({
    nodes,
    peers,
    granularity: o.granularity,
    hostname: input.hostname,
    port: self.endpoint?.port ?? 0,
    subnet: o.subnet,
    serviceCIDRs: o.serviceCIDRs,
    persistentKeepalive: self.persistentKeepalive,
    stableWireGuardIPs: o.stableWireGuardIPs,
    now: input.now,
  });
  const encapsulating = o.strategy !== 'never' && o.local && self.internalIP !== undefined;
  const routes = planRoutes(topology, {
    kiloIface: o.iface,
    ...(input.privateInterface ? { privIface: input.privateInterface } : {}),
    tunlIface: TUNL_INTERFACE,
    local: o.local,
    strategy: self.internalIP === undefined ? 'never' : o.strategy,
    compatibility: o.compatibility,
  });
  const rules = planIptables(topology, {
    cni: o.cni,
    forwardRules: o.iptablesForwardRules,
    strategy: self.internalIP === undefined ? 'never' : o.strategy,
    compatibility: o.compatibility,
    local: o.local,
  });
  const conf = topologyConf(topology, input.privateKey);
  const wg = toWgConfig(conf);
  const leader = topology.leader;
  const tunnelAddress =
    encapsulating && o.compatibility === '' && self.subnet
      ? oneAddressCidr(nthAddress(self.subnet, 1) ?? '')
      : undefined;
  return {
    ready: true,
    topology,
    readyNodes,
    readyPeers,
    ...(leader ? { wireGuardIP: topology.wireGuardCIDR } : {}),
    datapath: {
      leader,
      wireguard: { ...wg, mtu: o.mtu, up: leader },
      addresses: leader ? [topology.wireGuardCIDR] : [],
      ...(tunnelAddress ? { tunnelAddress } : {}),
      // Routes and rules are stamped with the agent's own protocol by the drivers (datapath.ts).
      routes: {
        main: routes.routes.filter((r) => r.table === undefined || String(r.table) === 'main').map(unowned),
        kilo: routes.routes
          .filter((r) => r.table !== undefined && String(r.table) === String(KILO_TABLE))
          .map(unowned),
      },
      rules: routes.rules.map(unowned),
      iptables: { inet: toRuleSets(rules, 'inet'), inet6: toRuleSets(rules, 'inet6') },
    },
  };
}

function unowned<T extends { protocol?: string | number }>(r: T): T {
  const { protocol: _protocol, ...rest } = r;
  return rest as T;
}

function resolveEndpoint(
  e: Endpoint | undefined,
  resolved: ReadonlyMap<string, string>,
): Endpoint | undefined {
  if (!e?.dns) return e;
  const ip = resolved.get(e.dns);
  return ip ? { ...e, ip } : e;
}

function resolveNode(n: KiloNode, resolved: ReadonlyMap<string, string>): KiloNode {
  const endpoint = resolveEndpoint(n.endpoint, resolved);
  return endpoint === n.endpoint ? n : { ...n, ...(endpoint ? { endpoint } : {}) };
}

function resolvePeer(p: KiloPeer, resolved: ReadonlyMap<string, string>): KiloPeer {
  const endpoint = resolveEndpoint(p.endpoint, resolved);
  return endpoint === p.endpoint ? p : { ...p, ...(endpoint ? { endpoint } : {}) };
}

/** The DNS names of every endpoint that needs resolving before `planAgent` (Kilo: resolveEndpoints). */
export function dnsNames(nodes: readonly KiloNode[], peers: readonly KiloPeer[]): string[] {
  const names = new Set<string>();
  for (const e of [...nodes.map((n) => n.endpoint), ...peers.map((p) => p.endpoint)]) {
    if (e?.dns) names.add(e.dns);
  }
  return [...names].sort();
}
