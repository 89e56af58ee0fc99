/**
 * The shared model of @knet/kilo: what Kilo (squat/kilo) calls `mesh.Node`, `mesh.Peer`,
 * `mesh.Topology`/`segment` and `wireguard.Conf`, as plain JSON-friendly values.
 *
 * Conventions: IP addresses are canonical text (`192.0.2.1`, `2001:db8::1`); prefixes are
 * canonical CIDR text (`10.2.1.0/24`). A node's internal IP keeps its interface mask
 * (`192.0.2.1/24`), as Kilo's `InternalIP *net.IPNet` does. Times are unix seconds.
 */

/** `--mesh-granularity`: Kilo's `location` and `full`, plus `cross` (Kilo PR #328/#490, unmerged). */
export type Granularity = 'location' | 'full' | 'cross';
export const GRANULARITIES: readonly Granularity[] = ['location', 'full', 'cross'];

/** `--encapsulate`: which packets inside a location go through `tunl0` (IPIP). */
export type EncapsulationStrategy = 'always' | 'crosssubnet' | 'never';
export const ENCAPSULATION_STRATEGIES: readonly EncapsulationStrategy[] = ['always', 'crosssubnet', 'never'];

/** `--compatibility`: run beside another CNI instead of IPIP (`''`). */
export type Compatibility = '' | 'flannel' | 'cilium';

/** Kilo's `wireguard.Endpoint`: a DNS name or an IP, and a UDP port. DNS wins when both are set. */
export interface Endpoint {
  dns?: string;
  ip?: string;
  port: number;
}

/** One entry of `kilo.squat.ai/discovered-endpoints` (Go's `net.UDPAddr`: `{"IP","Port","Zone"}`). */
export interface UdpAddr {
  ip: string;
  port: number;
  zone?: string;
}

/**
 * A knet extension (Kilo has none): what the members of a location saw when they probed their
 * leader's datapath. Published by each member on its own Node (see `LEADER_PROBE_ANNOTATION`);
 * every agent reads the same verdicts, so every agent demotes the same leader.
 */
export interface LeaderProbe {
  /** The node that was probed. */
  leader: string;
  /** false: the last probes failed. */
  healthy: boolean;
  /** Unix seconds of the verdict's last change. */
  since: number;
}

/** Kilo's `mesh.Node`, translated from a Kubernetes Node (spec.podCIDR + `kilo.squat.ai/*`). */
export interface KiloNode {
  name: string;
  /** `endpoint` (detected) or `force-endpoint` (user), the latter winning. */
  endpoint?: Endpoint;
  /** WireGuard public key (base64). */
  key?: string;
  /** `force-internal-ip` was `""` or `"-"`: the node has no internal IP on purpose. */
  noInternalIP: boolean;
  /** CIDR with the interface's mask, e.g. `192.0.2.11/24`. */
  internalIP?: string;
  cniCompatibilityIP?: string;
  /** Unix seconds (`last-seen`). */
  lastSeen: number;
  /** `leader` annotation present (a hint). */
  leader: boolean;
  /** `location` annotation, else the topology label, else `''`. */
  location: string;
  /** Seconds; non-zero means "behind NAT". */
  persistentKeepalive: number;
  /** `spec.podCIDR`. */
  subnet?: string;
  /** `wireguard-ip` (CIDR with the Kilo subnet's mask, e.g. `10.4.0.1/16`), on leaders. */
  wireGuardIP?: string;
  /** Public key → endpoint seen on the device (`discovered-endpoints`). */
  discoveredEndpoints: Readonly<Record<string, UdpAddr>>;
  allowedLocationIPs: readonly string[];
  /** `granularity` annotation (what the node's agent runs with), for kgctl's auto-detection. */
  granularity?: Granularity;
  /** knet extension: this node's verdict on its leader's datapath (absent on Kilo nodes). */
  leaderProbe?: LeaderProbe;
}

/** Kilo's `mesh.Peer`, translated from a `peers.kilo.squat.ai/v1alpha1` Peer. */
export interface KiloPeer {
  name: string;
  allowedIPs: readonly string[];
  publicKey: string;
  endpoint?: Endpoint;
  /** Seconds; undefined when the Peer does not set it. */
  persistentKeepalive?: number;
  presharedKey?: string;
}

/** One logical unit of the topology, united by one WireGuard IP (Kilo's `segment`). */
export interface Segment {
  /** `location:<name>` or `node:<name>` (Kilo's segment keys). */
  location: string;
  /** Members' pod CIDRs, internal IPs (/32 or /128) and the segment's WireGuard IP (/32), in that build order. */
  allowedIPs: readonly string[];
  /** The leader's endpoint. */
  endpoint?: Endpoint;
  /** The leader's public key. */
  key: string;
  /** The leader's `persistent-keepalive` (seconds). */
  persistentKeepalive: number;
  /** Members' pod CIDRs, by member (undefined when a member has none). */
  cidrs: readonly (string | undefined)[];
  /** Members' names, sorted. */
  hostnames: readonly string[];
  /** Index of the leader in `hostnames`. */
  leader: number;
  /** Members' internal IPs (bare addresses), members without one skipped (as in Kilo). */
  privateIPs: readonly string[];
  /** Members' CNI compatibility IPs (CIDR), by member. */
  cniCompatibilityIPs: readonly (string | undefined)[];
  /** The segment's WireGuard IP (bare address). */
  wireGuardIP: string;
  /** Filtered `allowed-location-ips` of the members. */
  allowedLocationIPs: readonly string[];
  /**
   * knet extension (for `cross`): the logical key the members have in `location` granularity —
   * `location:<loc>`, or `node:<name>` for a node without an internal IP. Segments with the same
   * group are reached over the private network in `cross`; in `location`/`full` it is the same
   * logical key of the members.
   */
  group: string;
}

/** The logical structure of the overlay as seen from one node (Kilo's `Topology`). */
export interface Topology {
  /** Granularity the topology was built with. */
  granularity: Granularity;
  /** The local node's name. */
  hostname: string;
  /** The local node's segment key. */
  location: string;
  /** The local WireGuard listen port. */
  port: number;
  /** Whether the local node leads its segment (in `cross`: always, every node leads its own `node:` segment). */
  leader: boolean;
  /** Local `persistent-keepalive` (seconds), applied to all of the local node's peers. */
  persistentKeepalive: number;
  /** Local internal IP (CIDR with the interface mask), if any. */
  privateIP?: string;
  /** Local pod CIDR. */
  subnet?: string;
  /** The local interface address: `<segment WG IP>/<subnet mask>` on a leader, else the Kilo subnet. */
  wireGuardCIDR: string;
  serviceCIDRs: readonly string[];
  segments: readonly Segment[];
  /** Ready peers, sorted by name, allowed IPs de-duplicated (first by name wins). */
  peers: readonly KiloPeer[];
  /** Public key → endpoint, merged local first, then segment order. */
  discoveredEndpoints: Readonly<Record<string, UdpAddr>>;
}

/** A `[Peer]` of a WireGuard config (Kilo's `wireguard.Peer`). */
export interface ConfPeer {
  publicKey: string;
  allowedIPs: readonly string[];
  endpoint?: Endpoint;
  /** Seconds; undefined = not set (rendered as 0 by Kilo's `Conf.Bytes` when set to 0). */
  persistentKeepalive?: number;
  presharedKey?: string;
}

/** A WireGuard config (Kilo's `wireguard.Conf`); `[Interface]` holds only these two keys. */
export interface Conf {
  privateKey?: string;
  listenPort?: number;
  peers: readonly ConfPeer[];
}

/** Kilo's routing table for encapsulated in-location traffic. */
export const KILO_TABLE = 1107;
/** Default WireGuard interface. */
export const KILO_INTERFACE = 'kilo0';
/** IPIP tunnel interface. */
export const TUNL_INTERFACE = 'tunl0';
/** Kilo's CNI bridge. */
export const KILO_BRIDGE = 'kube-bridge';
export const DEFAULT_PORT = 51820;
export const DEFAULT_SUBNET = '10.4.0.0/16';
export const DEFAULT_KEY_PATH = '/var/lib/kilo/key';
export const DEFAULT_TOPOLOGY_LABEL = 'topology.kubernetes.io/region';
/** kg checks in (writes `last-seen`) every 30 s; a node is Ready while `last-seen` < 60 s old. */
export const CHECK_IN_PERIOD_SECONDS = 30;
export const NODE_READY_SECONDS = 2 * CHECK_IN_PERIOD_SECONDS;
