import type { RouteSpec, WireGuardDeviceConfig } from '@knet/host-net';
import {
  KgctlError,
  PEER_API_VERSION,
  PEER_KIND,
  determineGranularity,
  newTopology,
  nodeReady,
  oneAddressCidr,
  peerConf,
  peerReady,
  toWgConfig,
  type ClusterView,
  type GranularityFlag,
  type KiloNode,
  type KiloPeer,
  type PeerResource,
  type Topology,
} from '@knet/kilo';

/**
 * The pure core of `kgctl connect` (cmd/kgctl/connect_linux.go): the Peer it creates, and on every
 * sync the WireGuard device, its address and the routes this host wants.
 */

/** The route protocol of kgctl connect's routes (Kilo: static; kilo-agent: 107). */
export const CONNECT_ROUTE_PROTOCOL = 108;

export interface ConnectPeerSpec {
  name: string;
  allowedIP: string;
  persistentKeepalive: number;
  publicKey: string;
}

/** The Peer `connect` creates when none of that name exists (only allowedIPs, keepalive, key). */
export function connectPeer(p: ConnectPeerSpec): PeerResource {
  return {
    apiVersion: PEER_API_VERSION,
    kind: PEER_KIND,
    metadata: { name: p.name },
    spec: {
      allowedIPs: [p.allowedIP],
      publicKey: p.publicKey,
      ...(p.persistentKeepalive > 0 ? { persistentKeepalive: p.persistentKeepalive } : {}),
    },
  };
}

export interface ConnectInput {
  view: ClusterView;
  peerName: string;
  granularity: GranularityFlag;
  /** `--port`: the ListenPort of the local device. */
  port: number;
  privateKey: string;
  /** `--allowed-ip`: the interface's address. */
  allowedIP: string;
  /** `--allowed-ips`: more of the cluster's CIDRs, routed via the first segment. */
  allowedIPs: readonly string[];
  interface: string;
  mtu: number;
  stableWireGuardIPs?: boolean;
  /** DNS endpoint name → IP (resolved by the caller before planning, as Kilo does first). */
  resolve?: Readonly<Record<string, string>>;
}

export interface ConnectPlan {
  device: WireGuardDeviceConfig;
  /** The interface's addresses: `--allowed-ip`. */
  addresses: string[];
  routes: RouteSpec[];
  topology: Topology;
}

/**
 * Kilo's `sync` in connect_linux.go:
 * - the granularity as kgctl determines it; the topology as seen from the last ready node;
 * - the subnet from the FIRST node (ready or not) that publishes a `wireguard-ip` (none is an
 *   error: Kilo's `did not find a valid Kilo subnet on any node`);
 * - `--allowed-ips` added to the allowed-location IPs of the first ready node by name;
 * - the Peer must be ready (exist with allowed IPs and a key);
 * - the device: `Topology.PeerConf(peer)` with the private key and `--port`;
 * - the routes: Kilo's `Topology.PeerRoutes` ({@link peerRoutes}).
 */
export function planConnect(input: ConnectInput): ConnectPlan {
  const { view, peerName } = input;
  const granularity = determineGranularity(input.granularity, view.nodes);
  const nodes: Record<string, KiloNode> = {};
  let hostname: string | undefined;
  for (const n of view.nodes) {
    if (!nodeReady(n, view.now)) continue;
    nodes[n.name] = n;
    hostname = n.name;
  }
  if (hostname === undefined)
    throw new KgctlError('no-nodes', 'did not find any valid Kilo nodes in the cluster');
  const subnet = view.nodes.find((n) => n.wireGuardIP)?.wireGuardIP;
  if (subnet === undefined)
    throw new KgctlError(
      'no-subnet',
      'did not find a valid Kilo subnet on any node (no kilo.squat.ai/wireguard-ip)',
    );
  const first = Object.keys(nodes).sort()[0];
  const firstNode = first === undefined ? undefined : nodes[first];
  if (first !== undefined && firstNode) {
    nodes[first] = {
      ...firstNode,
      allowedLocationIPs: [...firstNode.allowedLocationIPs, ...input.allowedIPs],
    };
  }
  const peers: Record<string, KiloPeer> = {};
  for (const p of view.peers) if (peerReady(p)) peers[p.name] = p;
  const peer = peers[peerName];
  if (!peer)
    throw new KgctlError(
      'unknown-peer',
      `did not find any peer named ${JSON.stringify(peerName)} in the cluster`,
    );
  let topology: Topology;
  try {
    topology = newTopology({
      nodes,
      peers,
      granularity,
      hostname,
      port: input.port,
      subnet,
      persistentKeepalive: peer.persistentKeepalive ?? 0,
      stableWireGuardIPs: input.stableWireGuardIPs ?? true,
      now: view.now,
    });
  } catch (e) {
    throw new KgctlError(
      'topology',
      `failed to create topology: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const conf = { ...peerConf(topology, peerName), privateKey: input.privateKey, listenPort: input.port };
  const wg = toWgConfig(conf, input.resolve ? { resolve: input.resolve } : {});
  return {
    device: { ...wg, mtu: input.mtu, up: true },
    addresses: [input.allowedIP],
    routes: peerRoutes(topology, peerName, input.interface, input.allowedIPs),
    topology,
  };
}

/**
 * Kilo's `Topology.PeerRoutes`, for every segment: each member's pod CIDR, internal IP (/32) and
 * allowed-location IP via the segment's WireGuard IP (`onlink`), and the WireGuard IP itself on
 * the interface; then every other Peer's allowed IPs on the interface; then `--allowed-ips` via
 * the first segment's WireGuard IP. Where two routes have the same destination the last one wins,
 * as with Kilo's `ip route replace`.
 */
export function peerRoutes(
  t: Topology,
  peerName: string,
  dev: string,
  extra: readonly string[],
): RouteSpec[] {
  const routes = new Map<string, RouteSpec>();
  const add = (r: RouteSpec) => {
    routes.delete(r.dst);
    routes.set(r.dst, r);
  };
  const via = (dst: string, gw: string): RouteSpec => ({ dst, via: gw, dev, onlink: true });
  // A private IP that is also an endpoint (a node without NAT, whose internal and public IP are
  // one) must not go into the tunnel: the tunnel's own UDP would then loop through it. Kilo's
  // PeerRoutes routes it anyway; its leaders skip the same address (Routes) for this reason.
  const endpoints = new Set(
    t.segments.map((s) => s.endpoint?.ip).filter((ip): ip is string => ip !== undefined),
  );
  for (const s of t.segments) {
    for (const cidr of s.cidrs) if (cidr) add(via(cidr, s.wireGuardIP));
    for (const ip of s.privateIPs) if (!endpoints.has(ip)) add(via(oneAddressCidr(ip), s.wireGuardIP));
    for (const alip of s.allowedLocationIPs) add(via(alip, s.wireGuardIP));
    add({ dst: oneAddressCidr(s.wireGuardIP), dev });
  }
  for (const p of t.peers) {
    if (p.name === peerName) continue;
    for (const aip of p.allowedIPs) add({ dst: aip, dev });
  }
  const head = t.segments[0];
  if (head) for (const cidr of extra) add(via(cidr, head.wireGuardIP));
  return [...routes.values()];
}
