import { dumpYaml } from '@kubernetes/client-node';
import { goParseCIDR, networkCidr } from './ip';
import { PEER_API_VERSION, PEER_KIND } from './peer-resource';
import { newTopology, nodeReady, peerReady, type TopologyInput } from './topology';
import { peerResource } from './translate';
import {
  DEFAULT_PORT,
  DEFAULT_SUBNET,
  GRANULARITIES,
  type ConfPeer,
  type Granularity,
  type KiloNode,
  type KiloPeer,
  type Topology,
} from './types';
import { asPeer, peerConf, topologyConf } from './wg-conf';
import { renderConf } from './wireguard';

/**
 * The pure part of kgctl (cmd/kgctl/main.go, showconf.go, graph.go): how it reads the cluster
 * (granularity, Kilo subnet, ready nodes and peers) and what `showconf node|peer` prints.
 */

/** `--mesh-granularity` of kgctl: a granularity, or `auto` (read it from the nodes). */
export type GranularityFlag = Granularity | 'auto';

/** `-o/--output` of `kgctl showconf`. */
export type ShowConfFormat = 'wireguard' | 'yaml' | 'json';
export const SHOWCONF_FORMATS: readonly ShowConfFormat[] = ['wireguard', 'yaml', 'json'];

export type KgctlErrorKind =
  'no-nodes' | 'granularity' | 'unknown-node' | 'not-leader' | 'unknown-peer' | 'no-subnet' | 'topology';

/** Why kgctl cannot answer; `kind` is what a caller branches on (exit code, retry). */
export class KgctlError extends Error {
  override readonly name = 'KgctlError';
  constructor(
    readonly kind: KgctlErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** What kgctl read from the API server: every translated Node and valid Peer, in list order. */
export interface ClusterView {
  /** Translated Nodes, ready or not, in the API server's list order (by name). */
  nodes: readonly KiloNode[];
  /** Translated valid Peers, ready or not. */
  peers: readonly KiloPeer[];
  /** Unix seconds, for `last-seen`. */
  now: number;
}

/**
 * kgctl's `determineGranularity`: a given granularity is kept; `auto` takes the `granularity`
 * annotation of the first node listed. Kilo accepts `location` and `full` there; `cross` (knet)
 * is accepted too. No node, or a node without a known granularity, is an error.
 */
export function determineGranularity(flag: GranularityFlag, nodes: readonly KiloNode[]): Granularity {
  if (flag !== 'auto') return flag;
  const first = nodes[0];
  if (!first) throw new KgctlError('no-nodes', 'could not get any nodes to read the mesh granularity from');
  const g = first.granularity;
  if (g === undefined || !GRANULARITIES.includes(g)) {
    throw new KgctlError(
      'granularity',
      `mesh granularity of node ${first.name} is unknown (annotation kilo.squat.ai/granularity missing); pass --mesh-granularity ${GRANULARITIES.join('|')}`,
    );
  }
  return g;
}

/**
 * kgctl's Kilo subnet: the `wireguard-ip` of the LAST node listed that has one (ready or not),
 * masked to its network (`10.4.0.1/16` → `10.4.0.0/16`); `fallback` (Kilo's `DefaultKiloSubnet`,
 * here `--subnet`) when no node has one.
 */
export function clusterSubnet(nodes: readonly KiloNode[], fallback: string = DEFAULT_SUBNET): string {
  let subnet = fallback;
  for (const n of nodes) if (n.wireGuardIP) subnet = n.wireGuardIP;
  return networkCidr(subnet);
}

/** The ready nodes by name and the name of the last ready one (kgctl's default `hostname`). */
function readyNodes(view: ClusterView): { nodes: Record<string, KiloNode>; last?: string } {
  const nodes: Record<string, KiloNode> = {};
  let last: string | undefined;
  for (const n of view.nodes) {
    if (!nodeReady(n, view.now)) continue;
    nodes[n.name] = n;
    last = n.name;
  }
  return last === undefined ? { nodes } : { nodes, last };
}

function readyPeers(view: ClusterView): Record<string, KiloPeer> {
  const peers: Record<string, KiloPeer> = {};
  for (const p of view.peers) if (peerReady(p)) peers[p.name] = p;
  return peers;
}

/** Options every kgctl command reads the cluster with. */
export interface KgctlOptions {
  granularity: GranularityFlag;
  /** Kilo subnet when no node publishes a `wireguard-ip` (Kilo's default 10.4.0.0/16). */
  subnet?: string;
  /** `--port`: the listen port in `showconf node` (default 51820). */
  port?: number;
  /**
   * knet's stable WireGuard IPs (`assignWireGuardIPs`), as the agents run by default; false is
   * Kilo's sort order, which is what Kilo's kgctl shows.
   */
  stableWireGuardIPs?: boolean;
}

/**
 * The topology `kgctl graph` draws (cmd/kgctl/graph.go `runGraph`): ready nodes and peers, as seen
 * from the last ready node, with the granularity and subnet read from the cluster.
 */
export function graphTopology(view: ClusterView, opts: KgctlOptions): Topology {
  const granularity = determineGranularity(opts.granularity, view.nodes);
  const { nodes, last } = readyNodes(view);
  if (last === undefined)
    throw new KgctlError('no-nodes', 'did not find any valid Kilo nodes in the cluster');
  return build(
    {
      nodes,
      peers: readyPeers(view),
      granularity,
      hostname: last,
      port: 0,
      subnet: clusterSubnet(view.nodes, opts.subnet),
      now: view.now,
    },
    opts,
  );
}

function build(input: TopologyInput, opts: KgctlOptions): Topology {
  try {
    return newTopology({ ...input, stableWireGuardIPs: opts.stableWireGuardIPs ?? true });
  } catch (e) {
    throw new KgctlError(
      'topology',
      `failed to create topology: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

/** `kgctl showconf node|peer` flags. */
export interface ShowConfOptions extends KgctlOptions {
  /** `--as-peer`: show the node or peer as a peer of another WireGuard interface. */
  asPeer: boolean;
  /** `-o`: only used with `asPeer`, as in Kilo. */
  output: ShowConfFormat;
  /** `--allowed-ips`: added to the allowed IPs of the `asPeer` config. */
  allowedIPs?: readonly string[];
}

/**
 * `--allowed-ips` as Kilo parses them (`net.ParseCIDR`, keeping the network): undefined for a
 * value that is no CIDR.
 */
export function parseAllowedIP(text: string): string | undefined {
  const cidr = goParseCIDR(text);
  return cidr === undefined ? undefined : networkCidr(cidr);
}

/** Kilo's `Peer.DeduplicateIPs` after appending `--allowed-ips`: first occurrence wins. */
function withAllowedIPs(allowed: readonly string[], extra: readonly string[] | undefined): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const ip of [...allowed, ...(extra ?? []).map((e) => parseAllowedIP(e) ?? e)]) {
    const key = goParseCIDR(ip) ?? ip;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(ip);
  }
  return out;
}

/**
 * A Peer CR as kgctl's serializers print it: Go's field order (kind, apiVersion, metadata, spec
 * with allowedIPs, endpoint, persistentKeepalive, presharedKey, publicKey), from `peerResource`
 * (which fixes Kilo's nanosecond keepalive and its `<nil>` endpoint IPs).
 */
function peerObject(peer: KiloPeer, name: string): Record<string, unknown> {
  const r = peerResource(peer, name);
  const s = r.spec;
  return {
    kind: PEER_KIND,
    apiVersion: PEER_API_VERSION,
    metadata: { name },
    spec: {
      allowedIPs: s.allowedIPs,
      ...(s.endpoint ? { endpoint: { dnsOrIP: s.endpoint.dnsOrIP, port: s.endpoint.port } } : {}),
      ...(s.persistentKeepalive ? { persistentKeepalive: s.persistentKeepalive } : {}),
      ...(s.presharedKey ? { presharedKey: s.presharedKey } : {}),
      publicKey: s.publicKey,
    },
  };
}

/**
 * The Peer CR in kgctl's `-o json` (apimachinery's pretty JSON serializer: two-space indent, no
 * final newline) or `-o yaml` (sigs.k8s.io/yaml: keys sorted, sequences not indented). YAML goes
 * through client-node's `dumpYaml` (js-yaml) with those settings; js-yaml quotes a plain scalar
 * that starts with `::` (`::/0`), which yaml.v2 does not, so those quotes are taken off again.
 */
export function formatPeerResource(peer: KiloPeer, name: string, format: 'json' | 'yaml'): string {
  const obj = peerObject(peer, name);
  if (format === 'json') return JSON.stringify(obj, null, 2);
  const yaml = dumpYaml(obj, { sortKeys: true, noArrayIndent: true, lineWidth: -1, quotingType: '"' });
  return yaml.replace(/(^|: |- )"(::[0-9a-fA-F:.]*(?:\/\d+)?)"$/gm, '$1$2');
}

function asPeerOutput(peer: KiloPeer, name: string, opts: ShowConfOptions): string {
  if (opts.output === 'wireguard') {
    const p: ConfPeer = {
      publicKey: peer.publicKey,
      allowedIPs: peer.allowedIPs,
      ...(peer.endpoint ? { endpoint: peer.endpoint } : {}),
      ...(peer.persistentKeepalive !== undefined ? { persistentKeepalive: peer.persistentKeepalive } : {}),
      ...(peer.presharedKey !== undefined ? { presharedKey: peer.presharedKey } : {}),
    };
    return renderConf({ peers: [p] });
  }
  return formatPeerResource(peer, name, opts.output);
}

/**
 * `kgctl showconf node NAME` (cmd/kgctl/showconf.go `runShowConfNode`): the topology is built as
 * NAME (its keepalive, `--port`, the cluster's subnet); NAME must be ready and lead its segment.
 * - without `asPeer`: the node's own config (`Topology.Conf`, no private key: `[Interface]` holds
 *   only ListenPort); `-o` is ignored, as in Kilo;
 * - with `asPeer`: the node's segment as a peer (`Topology.AsPeer`) plus `allowedIPs`, either as
 *   a `[Peer]` section (`wireguard`) or as a Peer CR named NAME (`json`, `yaml`).
 *
 * Deviation: a node that is not a leader is a `KgctlError` (`not-leader`); Kilo prints
 * `Node "NAME" is not a leader node` to stderr and exits 0.
 */
export function showConfNode(view: ClusterView, name: string, opts: ShowConfOptions): string {
  const granularity = determineGranularity(opts.granularity, view.nodes);
  const subnet = clusterSubnet(view.nodes, opts.subnet);
  const { nodes, last } = readyNodes(view);
  if (last === undefined)
    throw new KgctlError('no-nodes', 'did not find any valid Kilo nodes in the cluster');
  const node = nodes[name];
  if (!node)
    throw new KgctlError(
      'unknown-node',
      `did not find any node named ${JSON.stringify(name)} in the cluster (or it is not ready)`,
    );
  const t = build(
    {
      nodes,
      peers: readyPeers(view),
      granularity,
      hostname: name,
      port: opts.port ?? DEFAULT_PORT,
      subnet,
      now: view.now,
    },
    opts,
  );
  if (!peerConf(t, '').peers.some((p) => p.publicKey === node.key)) {
    const leaders = t.segments.map((s) => s.hostnames[s.leader]).join(', ');
    throw new KgctlError(
      'not-leader',
      `Node ${JSON.stringify(name)} is not a leader node; only leaders have a WireGuard config (leaders: ${leaders})`,
    );
  }
  if (!opts.asPeer) return renderConf(topologyConf(t, ''));
  const p = asPeer(t);
  if (!p) throw new KgctlError('topology', 'cannot generate config from nil peer');
  const peer: KiloPeer = {
    name,
    publicKey: p.publicKey,
    allowedIPs: withAllowedIPs(p.allowedIPs, opts.allowedIPs),
    ...(p.endpoint ? { endpoint: p.endpoint } : {}),
  };
  return asPeerOutput(peer, name, opts);
}

/**
 * `kgctl showconf peer NAME` (`runShowConfPeer`): the topology is built as the last ready node
 * with NAME's keepalive; NAME must be a ready Peer.
 * - without `asPeer`: the Peer's config (`Topology.PeerConf`: every segment, then the other Peers;
 *   no `[Interface]`);
 * - with `asPeer`: the Peer itself (as read, before the topology's de-duplication) plus
 *   `allowedIPs`, as a `[Peer]` section or a Peer CR.
 */
export function showConfPeer(view: ClusterView, name: string, opts: ShowConfOptions): string {
  const granularity = determineGranularity(opts.granularity, view.nodes);
  const subnet = clusterSubnet(view.nodes, opts.subnet);
  const { nodes, last } = readyNodes(view);
  if (last === undefined)
    throw new KgctlError('no-nodes', 'did not find any valid Kilo nodes in the cluster');
  const peers = readyPeers(view);
  const peer = peers[name];
  if (!peer)
    throw new KgctlError(
      'unknown-peer',
      `did not find any peer named ${JSON.stringify(name)} in the cluster (or it has no allowed IPs)`,
    );
  if (opts.asPeer) {
    return asPeerOutput(
      { ...peer, allowedIPs: withAllowedIPs(peer.allowedIPs, opts.allowedIPs) },
      name,
      opts,
    );
  }
  const t = build(
    {
      nodes,
      peers,
      granularity,
      hostname: last,
      port: DEFAULT_PORT,
      subnet,
      persistentKeepalive: peer.persistentKeepalive ?? 0,
      now: view.now,
    },
    opts,
  );
  return renderConf(peerConf(t, name));
}
