import { kgctlFixtureNodes, kiloTestKey } from './fixture';
import type { KiloNode, KiloPeer } from './types';
import { graphTopology, type ClusterView } from './showconf';
import { newTopology } from './topology';
import { topologyGraph } from './graph';

/**
 * Golden tests of Kilo's `Topology.Dot()` (pkg/mesh/graph.go). The expected texts are what Kilo's
 * own code printed (cmd/kgctl `runGraph`, i.e. `Dot()` plus Println's newline) for this fixture:
 * Kilo's topology_test nodes a–d (a and d in location 1, d without an internal IP so on its own;
 * b and c in location 2, b with an allowed-location IP), a stale node e, and three Peers (no
 * endpoint; an IP endpoint and keepalive; a DNS endpoint with a preshared key).
 */

const NOW = 1_700_000_000;
const key = kiloTestKey;

const ep = (ip: string, port = 51820) => ({ ip, port });

const NODES: KiloNode[] = kgctlFixtureNodes(NOW);

function peers(names: readonly [string, string, string]): KiloPeer[] {
  return [
    {
      name: names[0],
      allowedIPs: ['10.5.0.0/24', '10.5.0.0/24'],
      publicKey: key('key4'),
      persistentKeepalive: 0,
    },
    {
      name: names[1],
      allowedIPs: ['10.5.0.0/24'],
      publicKey: key('key5'),
      endpoint: ep('192.168.0.1'),
      persistentKeepalive: 10,
    },
    {
      name: names[2],
      allowedIPs: ['10.6.0.1/32', '10.5.0.0/24'],
      publicKey: key('key6'),
      endpoint: { dns: 'peer.example.com', port: 51821 },
      persistentKeepalive: 0,
      presharedKey: key('psk'),
    },
  ];
}

const view = (p: KiloPeer[] = peers(['p1', 'p2', 'p3'])): ClusterView => ({
  nodes: NODES,
  peers: p,
  now: NOW,
});

/** Kilo's output, as kgctl printed it. */
const KILO: Record<string, string> = {
  'graph-location': String.raw`digraph kilo {
	label="10.4.0.0/16";
	labelloc=t;
	outputorder=nodesfirst;
	overlap=false;
	"b"->"c"[ dir=both ];
	"a"->"b"[ dir=both ];
	"a"->"d"[ dir=both ];
	"b"->"d"[ dir=both ];
	"a"->"p1"[ dir=both, style=dashed ];
	"a"->"p2"[ dir=both, style=dashed ];
	"a"->"p3"[ dir=both, style=dashed ];
	"b"->"p1"[ dir=both, style=dashed ];
	"b"->"p2"[ dir=both, style=dashed ];
	"b"->"p3"[ dir=both, style=dashed ];
	"d"->"p1"[ dir=both, style=dashed ];
	"d"->"p2"[ dir=both, style=dashed ];
	"d"->"p3"[ dir=both, style=dashed ];
	subgraph "cluster_location_location:1" {
	label="location:1";
	style="dashed,rounded";
	"a" [ label="location:1\na\n10.2.1.0/24\n192.168.0.1\n10.4.0.1\n10.1.0.1:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_location_location:2" {
	label="location:2";
	style="dashed,rounded";
	"b" [ label="location:2\nb\n10.2.2.0/24\n192.168.0.1\n10.4.0.2\n10.1.0.2:51820", rank=1, shape=ellipse ];
	"c" [ label="location:2\nc\n10.2.3.0/24\n192.168.0.2", shape=ellipse ];

}
;
	subgraph "cluster_location_node:d" {
	label="node:d";
	style="dashed,rounded";
	"d" [ label="node:d\nd\n10.2.4.0/24\n10.4.0.3\n10.1.0.4:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_peers" {
	label="peers";
	style="dashed,rounded";
	"p1" [ label="p1\n
", shape=ellipse ];
	"p2" [ label="p2\n192.168.0.1:51820
", shape=ellipse ];
	"p3" [ label="p3\npeer.example.com:51821
", shape=ellipse ];

}
;

}

`,
  'graph-full': String.raw`digraph kilo {
	label="10.4.0.0/16";
	labelloc=t;
	outputorder=nodesfirst;
	overlap=false;
	"a"->"b"[ dir=both ];
	"a"->"c"[ dir=both ];
	"a"->"d"[ dir=both ];
	"b"->"c"[ dir=both ];
	"b"->"d"[ dir=both ];
	"c"->"d"[ dir=both ];
	"a"->"p1"[ dir=both, style=dashed ];
	"a"->"p2"[ dir=both, style=dashed ];
	"a"->"p3"[ dir=both, style=dashed ];
	"b"->"p1"[ dir=both, style=dashed ];
	"b"->"p2"[ dir=both, style=dashed ];
	"b"->"p3"[ dir=both, style=dashed ];
	"c"->"p1"[ dir=both, style=dashed ];
	"c"->"p2"[ dir=both, style=dashed ];
	"c"->"p3"[ dir=both, style=dashed ];
	"d"->"p1"[ dir=both, style=dashed ];
	"d"->"p2"[ dir=both, style=dashed ];
	"d"->"p3"[ dir=both, style=dashed ];
	subgraph "cluster_location_node:a" {
	label="node:a";
	style="dashed,rounded";
	"a" [ label="node:a\na\n10.2.1.0/24\n192.168.0.1\n10.4.0.1\n10.1.0.1:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_location_node:b" {
	label="node:b";
	style="dashed,rounded";
	"b" [ label="node:b\nb\n10.2.2.0/24\n192.168.0.1\n10.4.0.2\n10.1.0.2:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_location_node:c" {
	label="node:c";
	style="dashed,rounded";
	"c" [ label="node:c\nc\n10.2.3.0/24\n192.168.0.2\n10.4.0.3\n10.1.0.3:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_location_node:d" {
	label="node:d";
	style="dashed,rounded";
	"d" [ label="node:d\nd\n10.2.4.0/24\n10.4.0.4\n10.1.0.4:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_peers" {
	label="peers";
	style="dashed,rounded";
	"p1" [ label="p1\n
", shape=ellipse ];
	"p2" [ label="p2\n192.168.0.1:51820
", shape=ellipse ];
	"p3" [ label="p3\npeer.example.com:51821
", shape=ellipse ];

}
;

}

`,
  'graph-collide': String.raw`digraph kilo {
	label="10.4.0.0/16";
	labelloc=t;
	outputorder=nodesfirst;
	overlap=false;
	"b"->"c"[ dir=both ];
	"a"->"b"[ dir=both ];
	"a"->"d"[ dir=both ];
	"b"->"d"[ dir=both ];
	"a"->"a"[ dir=both, style=dashed ];
	"a"->"b"[ dir=both, style=dashed ];
	"a"->"p3"[ dir=both, style=dashed ];
	"b"->"a"[ dir=both, style=dashed ];
	"b"->"b"[ dir=both, style=dashed ];
	"b"->"p3"[ dir=both, style=dashed ];
	"d"->"a"[ dir=both, style=dashed ];
	"d"->"b"[ dir=both, style=dashed ];
	"d"->"p3"[ dir=both, style=dashed ];
	subgraph "cluster_location_location:1" {
	label="location:1";
	style="dashed,rounded";
	"a" [ label="a\n
", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_location_location:2" {
	label="location:2";
	style="dashed,rounded";
	"b" [ label="b\n192.168.0.1:51820
", rank=1, shape=ellipse ];
	"c" [ label="location:2\nc\n10.2.3.0/24\n192.168.0.2", shape=ellipse ];

}
;
	subgraph "cluster_location_node:d" {
	label="node:d";
	style="dashed,rounded";
	"d" [ label="node:d\nd\n10.2.4.0/24\n10.4.0.3\n10.1.0.4:51820", rank=1, shape=ellipse ];

}
;
	subgraph "cluster_peers" {
	label="peers";
	style="dashed,rounded";
	"a" [ label="a\n
", rank=1, shape=ellipse ];
	"b" [ label="b\n192.168.0.1:51820
", rank=1, shape=ellipse ];
	"p3" [ label="p3\npeer.example.com:51821
", shape=ellipse ];

}
;

}

`,
};

function golden(name: string): string {
  const text = KILO[name];
  if (text === undefined) throw new Error(`no golden ${name}`);
  return text;
}

describe('topologyGraph (Kilo Topology.Dot)', () => {
  it.each([
    ['location', 'location', 'graph-location'],
    ['full', 'full', 'graph-full'],
    ['auto (the first node says location)', 'auto', 'graph-location'],
  ] as const)('%s granularity, as kgctl graph draws it', (_what, granularity, name) => {
    const t = graphTopology(view(), { granularity, stableWireGuardIPs: false });
    expect(topologyGraph(t) + '\n').toBe(golden(name));
  });

  it('a Peer named like a Node merges into it, as in gographviz (label replaced, drawn in both clusters)', () => {
    const t = graphTopology(view(peers(['a', 'b', 'p3'])), { granularity: 'location' });
    expect(topologyGraph(t) + '\n').toBe(golden('graph-collide'));
  });

  it('labels the graph with the network of the local WireGuard CIDR', () => {
    const t = newTopology({
      nodes: { c: NODES[2] as KiloNode },
      peers: {},
      granularity: 'location',
      hostname: 'c',
      port: 51820,
      subnet: '10.6.0.0/16',
    });
    const dot = topologyGraph(t);
    expect(dot.split('\n').slice(0, 2)).toEqual(['digraph kilo {', '\tlabel="10.6.0.0/16";']);
    expect(dot).toContain(
      '\t"c" [ label="location:2\\nc\\n10.2.3.0/24\\n192.168.0.2\\n10.6.0.1\\n10.1.0.3:51820", rank=1, shape=ellipse ];\n',
    );
    expect(dot).toContain('subgraph "cluster_peers" {\n\tlabel="peers";\n\tstyle="dashed,rounded";\n\n}\n');
    expect(dot).not.toContain('->');
  });
});
