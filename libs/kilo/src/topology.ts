import { assignWireGuardIPs } from './allocate';
import { cidrContains, intersect, ipOf, networkCidr, oneAddressCidr, parsePrefix, withAddress } from './ip';
import { findLeader } from './leader';
import {
  NODE_READY_SECONDS,
  type Endpoint,
  type Granularity,
  type KiloNode,
  type KiloPeer,
  type Segment,
  type Topology,
  type UdpAddr,
} from './types';

/**
 * Kilo's topology planner (pkg/mesh/topology.go `NewTopology`), pure: which segments exist, who
 * leads them, their WireGuard IPs and allowed IPs, the peers, the discovered endpoints.
 */

/** Kilo's segment key prefixes. */
export const LOCATION_PREFIX = 'location:';
export const NODE_PREFIX = 'node:';

/** A WireGuard key that is all zeroes: Go's `wgtypes.Key{}`, i.e. "not set". */
const ZERO_KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export type TopologyErrorKind = 'local-node-missing' | 'addresses-exhausted';

/** Why no topology could be built; `kind` is what a caller branches on. */
export class TopologyError extends Error {
  constructor(
    readonly kind: TopologyErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'TopologyError';
  }
}

export interface TopologyInput {
  /** Ready nodes (see {@link nodeReady}), by name. */
  nodes: Readonly<Record<string, KiloNode>>;
  /** Ready peers (see {@link peerReady}), by name. */
  peers: Readonly<Record<string, KiloPeer>>;
  granularity: Granularity;
  /** The local node's name; it must be in `nodes`. */
  hostname: string;
  /** The local WireGuard listen port. */
  port: number;
  /** The Kilo subnet (`--subnet`), e.g. `10.4.0.0/16`. */
  subnet: string;
  serviceCIDRs?: readonly string[];
  /** Seconds; default: the local node's `persistent-keepalive` (as kg passes it). */
  persistentKeepalive?: number;
  /** knet's stable WireGuard IPs (see `assignWireGuardIPs`); default true, false = Kilo's sort order. */
  stableWireGuardIPs?: boolean;
  /** Unix seconds, for the freshness of leader-probe reports (see `demotedMembers`). */
  now?: number;
}

/** Kilo's `Endpoint.Ready()`: an IP with a port, or a DNS name. */
export function endpointReady(endpoint: Endpoint | undefined): boolean {
  if (!endpoint) return false;
  return (Boolean(endpoint.ip) && endpoint.port > 0) || Boolean(endpoint.dns);
}

function keySet(key: string | undefined): boolean {
  return key !== undefined && key !== '' && key !== ZERO_KEY;
}

/**
 * Kilo's `Node.Ready()` (pkg/mesh/backend.go): a ready endpoint, a key, a pod subnet, and
 * `last-seen` less than 60 s before `now` (unix seconds). Internal and WireGuard IPs are optional.
 */
export function nodeReady(node: KiloNode, now: number): boolean {
  return (
    endpointReady(node.endpoint) &&
    keySet(node.key) &&
    Boolean(node.subnet) &&
    now - node.lastSeen < NODE_READY_SECONDS
  );
}

/**
 * Why {@link nodeReady} is false for `node`, one phrase per missing part (empty when it is ready),
 * for the agent's log: a node without a pod CIDR never becomes ready by itself.
 */
export function nodeNotReadyReasons(node: KiloNode, now: number): string[] {
  const out: string[] = [];
  if (!endpointReady(node.endpoint)) out.push('no endpoint yet (kilo.squat.ai/endpoint)');
  if (!keySet(node.key)) out.push('no WireGuard key yet (kilo.squat.ai/key)');
  if (!node.subnet)
    out.push("no pod CIDR (the Node's spec.podCIDR: the controller manager's --allocate-node-cidrs sets it)");
  if (now - node.lastSeen >= NODE_READY_SECONDS)
    out.push(`last seen ${Math.round(now - node.lastSeen)} s ago (kilo.squat.ai/last-seen)`);
  return out;
}

/** Kilo's `Peer.Ready()`: at least one allowed IP and a public key. */
export function peerReady(peer: KiloPeer): boolean {
  return peer.allowedIPs.length > 0 && keySet(peer.publicKey);
}

/** The key a node has in `location` granularity: `location:<loc>`, or `node:<name>` without an internal IP. */
export function logicalKey(node: KiloNode): string {
  return node.internalIP ? LOCATION_PREFIX + node.location : NODE_PREFIX + node.name;
}

/** A node's segment key: Kilo's keys for `location` and `full`; `cross` is per node like `full`. */
export function segmentKey(node: KiloNode, granularity: Granularity): string {
  return granularity === 'location' ? logicalKey(node) : NODE_PREFIX + node.name;
}

function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Go's `net.IPNet.String()` of a parsed CIDR: masked network. Unparsable text is kept as is. */
function parsedCidr(cidr: string): string {
  return parsePrefix(cidr) ? networkCidr(cidr) : cidr;
}

/** Dedupe key of an allowed IP: Go's `IPNet.String()` (address not masked, normalised). */
function cidrKey(cidr: string): string {
  const p = parsePrefix(cidr);
  return p ? `${ipOf(cidr)}/${p.length}` : cidr;
}

/**
 * Kilo's `deduplicatePeerIPs`: in the given order (Kilo sorts peers by name first), an allowed IP
 * already claimed by an earlier peer, or earlier in the same peer, is dropped.
 */
export function deduplicatePeerIPs(peers: readonly KiloPeer[]): KiloPeer[] {
  const seen = new Set<string>();
  return peers.map((peer) => {
    const allowedIPs = peer.allowedIPs.filter((ip) => {
      const key = cidrKey(ip);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    return { ...peer, allowedIPs };
  });
}

/** What {@link filterAllowedLocationIPs} reads of a segment. */
export type AllowedLocationIPsScope = Pick<Segment, 'location' | 'allowedIPs' | 'allowedLocationIPs'>;

/**
 * Kilo's `Topology.filterAllowedLocationIPs`: keeps an allowed-location IP of segment `location`
 * unless
 * - it intersects an allowed-location IP of another segment (Kilo's `intersect`), or
 * - any segment's allowed IP (its own segment's too) contains its network address (an ALIP that
 *   strictly contains a node's IP is fine: the more specific route wins), or
 * - it intersects a peer's allowed IP.
 *
 * The segments are read as they are at the call: `NewTopology` filters segment by segment while
 * allocating, so earlier segments are already filtered and carry their WireGuard IP, later ones not.
 */
export function filterAllowedLocationIPs(
  ips: readonly string[],
  location: string,
  segments: readonly AllowedLocationIPsScope[],
  peers: readonly Pick<KiloPeer, 'allowedIPs'>[],
): string[] {
  return ips.filter((ip) => {
    const address = ipOf(parsedCidr(ip));
    for (const s of segments) {
      if (s.location !== location && s.allowedLocationIPs.some((other) => intersect(ip, other))) return false;
      if (s.allowedIPs.some((allowed) => cidrContains(allowed, address))) return false;
    }
    return !peers.some((p) => p.allowedIPs.some((allowed) => intersect(ip, allowed)));
  });
}

interface Group {
  key: string;
  members: KiloNode[];
}

function groupNodes(nodes: readonly KiloNode[], granularity: Granularity): Group[] {
  const groups = new Map<string, KiloNode[]>();
  for (const node of nodes) {
    const key = segmentKey(node, granularity);
    groups.set(key, [...(groups.get(key) ?? []), node]);
  }
  return [...groups]
    .map(([key, members]) => ({ key, members: members.sort((a, b) => byString(a.name, b.name)) }))
    .sort((a, b) => byString(a.key, b.key));
}

function buildSegment(group: Group, leader: number): Segment {
  const allowedIPs: string[] = [];
  const allowedLocationIPs: string[] = [];
  const privateIPs: string[] = [];
  for (const member of group.members) {
    if (member.subnet) allowedIPs.push(member.subnet);
    for (const alip of member.allowedLocationIPs.map(parsedCidr)) {
      if (!allowedLocationIPs.includes(alip)) allowedLocationIPs.push(alip);
    }
    if (member.internalIP) {
      allowedIPs.push(oneAddressCidr(member.internalIP));
      privateIPs.push(ipOf(member.internalIP));
    }
  }
  const head = group.members[leader];
  if (!head) throw new RangeError(`segment ${group.key}: no member at leader index ${leader}`);
  return {
    location: group.key,
    group: logicalKey(head),
    allowedIPs,
    ...(head.endpoint ? { endpoint: head.endpoint } : {}),
    key: head.key ?? '',
    persistentKeepalive: head.persistentKeepalive,
    cidrs: group.members.map((m) => m.subnet),
    hostnames: group.members.map((m) => m.name),
    leader,
    privateIPs,
    cniCompatibilityIPs: group.members.map((m) => m.cniCompatibilityIP),
    wireGuardIP: '',
    allowedLocationIPs: allowedLocationIPs.sort(byString),
  };
}

/** Discovered endpoints: the local node's first, then each segment's members in order; first wins. */
function mergeDiscoveredEndpoints(local: KiloNode, groups: readonly Group[]): Record<string, UdpAddr> {
  const merged: Record<string, UdpAddr> = { ...local.discoveredEndpoints };
  for (const group of groups) {
    for (const member of group.members) {
      for (const [key, addr] of Object.entries(member.discoveredEndpoints)) {
        if (!(key in merged)) merged[key] = addr;
      }
    }
  }
  return merged;
}

/**
 * Kilo's `NewTopology`, as seen from `input.hostname`:
 * - segments: `location:<loc>` per location, a node without an internal IP on its own as
 *   `node:<name>` (`location`); one `node:<name>` per node (`full`, and `cross`, where every
 *   node leads its own segment and `group` tells same-location segments apart); members sorted by
 *   name, segments by key;
 * - each segment's leader by {@link findLeader} (Kilo's order, plus knet's demotion);
 * - allowed IPs built as Kilo does: each member's pod CIDR and internal IP /32, then the WireGuard
 *   IP /32; allowed-location IPs de-duplicated, sorted as text, then filtered per segment in
 *   segment order ({@link filterAllowedLocationIPs});
 * - peers sorted by name, allowed IPs de-duplicated ({@link deduplicatePeerIPs});
 * - discovered endpoints merged (local node first, then segment and member order);
 * - `wireGuardCIDR` = the local segment's WireGuard IP with the subnet's mask on a leader, else the
 *   subnet.
 *
 * WireGuard IPs come from `assignWireGuardIPs` (stable by default; `stableWireGuardIPs: false` is
 * Kilo's sort order). Throws {@link TopologyError} when the local node is missing or the subnet has
 * too few addresses (Kilo hands the first segment past the end an empty IP and fails on the next;
 * we fail at once).
 */
export function newTopology(input: TopologyInput): Topology {
  const { granularity, hostname, subnet } = input;
  const local = input.nodes[hostname];
  if (!local)
    throw new TopologyError('local-node-missing', `local node ${hostname} is not among the ready nodes`);
  const localLocation = segmentKey(local, granularity);
  const groups = groupNodes(Object.values(input.nodes), granularity);
  const leaders = groups.map((g) => findLeader(g.members, { now: input.now }));
  const segments = groups.map((g, i) => buildSegment(g, leaders[i] ?? 0));
  const localSegment = segments.find((s) => s.location === localLocation);
  const leader = granularity === 'cross' || localSegment?.hostnames[localSegment.leader] === hostname;
  const peers = deduplicatePeerIPs(Object.values(input.peers).sort((a, b) => byString(a.name, b.name)));

  const published = groups.map((g, i) => g.members[leaders[i] ?? 0]?.wireGuardIP);
  const addresses = assignWireGuardIPs(subnet, published, { stable: input.stableWireGuardIPs ?? true });
  let wireGuardCIDR = subnet;
  segments.forEach((segment, i) => {
    const address = addresses[i];
    if (address === undefined) {
      throw new TopologyError(
        'addresses-exhausted',
        `subnet ${subnet} has no WireGuard IP left for segment ${segment.location} (${segments.length} segments)`,
      );
    }
    segment.wireGuardIP = address;
    segment.allowedIPs = [...segment.allowedIPs, oneAddressCidr(address)];
    if (leader && segment.location === localLocation) wireGuardCIDR = withAddress(subnet, address);
    segment.allowedLocationIPs = filterAllowedLocationIPs(
      segment.allowedLocationIPs,
      segment.location,
      segments,
      peers,
    );
  });

  return {
    granularity,
    hostname,
    location: localLocation,
    port: input.port,
    leader,
    persistentKeepalive: input.persistentKeepalive ?? local.persistentKeepalive,
    ...(local.internalIP ? { privateIP: local.internalIP } : {}),
    ...(local.subnet ? { subnet: local.subnet } : {}),
    wireGuardCIDR,
    serviceCIDRs: [...(input.serviceCIDRs ?? [])],
    segments,
    peers,
    discoveredEndpoints: mergeDiscoveredEndpoints(local, groups),
  };
}
