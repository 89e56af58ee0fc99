import { formatEndpoint } from './wireguard';
import { networkCidr } from './ip';
import type { Endpoint, KiloPeer, Topology } from './types';

/**
 * Kilo's `Topology.Dot()` (pkg/mesh/graph.go), byte for byte: what `kgctl graph` prints and the
 * agent's `/graph?format=dot` serves. Kilo builds the graph with gographviz and prints it with
 * `Graph.String()`; {@link DotGraph} is the small part of gographviz that output depends on.
 */

type Attrs = Map<string, string>;

interface DotEdge {
  src: string;
  dst: string;
  attrs: Readonly<Record<string, string>>;
}

/**
 * The slice of gographviz's `Graph` that `Dot()` uses, with its output rules:
 * - graph and subgraph attributes are written sorted by name, node and edge attributes too;
 * - edges come first, in the order they were added;
 * - then the subgraphs, sorted by name, each with its attributes and its children sorted by name;
 * - nodes are identified by name: adding a node twice (a Peer named like a Node) merges the
 *   attributes into the first one, and the node is written in every subgraph it was added to;
 * - every statement is `\t<stmt>;\n`, nested ones included, and a subgraph ends `\n}\n;\n`.
 */
class DotGraph {
  private readonly attrs: Attrs = new Map();
  private readonly nodes = new Map<string, Attrs>();
  private readonly subgraphs = new Map<string, Attrs>();
  private readonly children = new Map<string, Set<string>>();
  private readonly edges: DotEdge[] = [];

  constructor(private readonly name: string) {}

  setAttr(graph: string, field: string, value: string): void {
    const attrs = graph === this.name ? this.attrs : this.subgraphs.get(graph);
    if (!attrs) throw new RangeError(`graph or subgraph ${graph} does not exist`);
    attrs.set(field, value);
  }

  addSubGraph(name: string): void {
    this.relate(this.name, name);
    if (!this.subgraphs.has(name)) this.subgraphs.set(name, new Map());
  }

  addNode(parent: string, name: string, attrs: Readonly<Record<string, string>>): void {
    const node = this.nodes.get(name);
    if (node) for (const [k, v] of Object.entries(attrs)) node.set(k, v);
    else this.nodes.set(name, new Map(Object.entries(attrs)));
    this.relate(parent, name);
  }

  nodeAttr(name: string, field: string, value: string): void {
    this.nodes.get(name)?.set(field, value);
  }

  addEdge(src: string, dst: string, attrs: Readonly<Record<string, string>>): void {
    this.edges.push({ src, dst, attrs });
  }

  /** gographviz's `Relations.SortedChildren`: Go's byte-wise string sort. */
  sortedChildren(parent: string): string[] {
    return [...(this.children.get(parent) ?? [])].sort(byBytes);
  }

  toString(): string {
    const stmts: string[] = [...sortedEntries(this.attrs).map(([k, v]) => `${k}=${v}`)];
    for (const e of this.edges) stmts.push(`${e.src}->${e.dst}${attrList(Object.entries(e.attrs))}`);
    for (const name of [...this.subgraphs.keys()].sort(byBytes)) {
      if (!this.children.get(this.name)?.has(name)) continue;
      stmts.push(this.subgraphString(name));
    }
    return `digraph ${this.name} {\n${statements(stmts)}\n}\n`;
  }

  private subgraphString(name: string): string {
    const stmts = sortedEntries(this.subgraphs.get(name) ?? new Map()).map(([k, v]) => `${k}=${v}`);
    for (const child of this.sortedChildren(name)) {
      const attrs = this.nodes.get(child);
      if (attrs) stmts.push(`${child} ${attrList([...attrs])}`.trim());
    }
    return `subgraph ${name} {\n${statements(stmts)}\n}\n`;
  }

  private relate(parent: string, child: string): void {
    const set = this.children.get(parent) ?? new Set<string>();
    set.add(child);
    this.children.set(parent, set);
  }
}

/** Go's `sort.Strings`: byte-wise (UTF-8) order. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function sortedEntries(attrs: Attrs | readonly [string, string][]): [string, string][] {
  return [...attrs].sort(([a], [b]) => byBytes(a, b));
}

/** gographviz's attribute list: `[ a=1, b=2 ]` (nothing when empty). */
function attrList(attrs: readonly [string, string][]): string {
  if (attrs.length === 0) return '';
  return `[ ${sortedEntries([...attrs])
    .map(([k, v]) => `${k}=${v}`)
    .join(', ')} ]`;
}

function statements(stmts: readonly string[]): string {
  return stmts.map((s) => `\t${s};\n`).join('');
}

/** Kilo's `graphEscape`: the text in double quotes, nothing escaped. */
function quote(s: string): string {
  return `"${s}"`;
}

function subGraphName(location: string): string {
  return quote(`cluster_location_${location}`);
}

/** Kilo's `nodeLabel`: location, name, pod CIDR, then internal IP, WireGuard IP and endpoint when set. */
function nodeLabel(
  location: string,
  name: string,
  cidr: string | undefined,
  privateIP: string | undefined,
  wireGuardIP: string | undefined,
  endpoint: Endpoint | undefined,
): string {
  const label = [location, name, cidr ?? '<nil>'];
  if (privateIP !== undefined) label.push(privateIP);
  if (wireGuardIP !== undefined && wireGuardIP !== '') label.push(wireGuardIP);
  const e = formatEndpoint(endpoint, true);
  if (e !== '') label.push(e);
  return quote(label.join('\\n'));
}

/** Kilo's `peerLabel`: name, a literal `\n`, the endpoint, and a real newline before the quote. */
function peerLabel(peer: KiloPeer): string {
  return quote(`${peer.name}\\n${formatEndpoint(peer.endpoint, true)}\n`);
}

const NODE_ATTRS = { shape: 'ellipse' } as const;
const MESH_ATTRS = { dir: 'both' } as const;
const PEER_EDGE_ATTRS = { dir: 'both', style: 'dashed' } as const;

/**
 * Kilo's `Topology.Dot()`: a directed graph `kilo` labelled with the Kilo subnet
 * (`labelloc=t`, `outputorder=nodesfirst`, `overlap=false`); one dashed, rounded cluster per
 * segment (`cluster_location_<segment key>`) whose nodes are labelled with the segment key, name,
 * pod CIDR, internal IP, and — on the leader, which also gets `rank=1` — WireGuard IP and endpoint;
 * edges from each leader to the other members of its segment, between every two leaders, and
 * (dashed) from every leader to every Peer, which sit in the `cluster_peers` cluster.
 *
 * Kilo's quirks are kept, since the text is the contract: labels are quoted but not escaped, a
 * Peer's label ends in a real newline, and a Peer named like a Node merges into that node (the
 * node takes the Peer's label and appears in both clusters).
 */
export function topologyGraph(t: Topology): string {
  const g = new DotGraph('kilo');
  g.setAttr('kilo', 'label', quote(networkCidr(t.wireGuardCIDR)));
  g.setAttr('kilo', 'labelloc', 't');
  g.setAttr('kilo', 'outputorder', 'nodesfirst');
  g.setAttr('kilo', 'overlap', 'false');
  const leaders: string[] = [];
  for (const s of t.segments) {
    const sub = subGraphName(s.location);
    g.addSubGraph(sub);
    g.setAttr(sub, 'label', quote(s.location));
    g.setAttr(sub, 'style', '"dashed,rounded"');
    s.cidrs.forEach((cidr, j) => {
      const name = quote(s.hostnames[j] ?? '');
      g.addNode(sub, name, NODE_ATTRS);
      const leader = j === s.leader;
      if (leader) g.nodeAttr(name, 'rank', '1');
      const label = nodeLabel(
        s.location,
        s.hostnames[j] ?? '',
        cidr,
        s.privateIPs[j],
        leader ? s.wireGuardIP : undefined,
        leader ? s.endpoint : undefined,
      );
      g.nodeAttr(name, 'label', label);
    });
    const members = g.sortedChildren(sub);
    const head = members[s.leader];
    if (head !== undefined) {
      members.forEach((m, i) => {
        if (i !== s.leader) g.addEdge(head, m, MESH_ATTRS);
      });
    }
    leaders.push(quote(s.hostnames[s.leader] ?? ''));
  }
  leaders.forEach((a, i) => {
    for (const b of leaders.slice(i + 1)) g.addEdge(a, b, MESH_ATTRS);
  });
  const peersGraph = quote('cluster_peers');
  g.addSubGraph(peersGraph);
  g.setAttr(peersGraph, 'label', quote('peers'));
  g.setAttr(peersGraph, 'style', '"dashed,rounded"');
  for (const p of t.peers) {
    const name = quote(p.name);
    g.addNode(peersGraph, name, NODE_ATTRS);
    g.nodeAttr(name, 'label', peerLabel(p));
  }
  const peers = g.sortedChildren(peersGraph);
  for (const leader of leaders) for (const p of peers) g.addEdge(leader, p, PEER_EDGE_ATTRS);
  return g.toString();
}
