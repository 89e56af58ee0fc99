import { kgctlFixtureNodes, kiloNode, kiloTestKey } from './fixture';
import type { KiloNode, KiloPeer } from './types';
import {
  KgctlError,
  clusterSubnet,
  determineGranularity,
  formatPeerResource,
  showConfNode,
  showConfPeer,
  type ClusterView,
  type ShowConfOptions,
} from './showconf';

/**
 * Golden tests of kgctl showconf (cmd/kgctl/showconf.go). The expected texts are what Kilo's own
 * `runShowConfNode`/`runShowConfPeer` printed for this fixture (Kilo's topology_test nodes a–d, a
 * stale node e, three Peers), through Kilo's `Conf.Bytes`, apimachinery's JSON serializer
 * (pretty) and YAML serializer.
 */

const NOW = 1_700_000_000;
const key = kiloTestKey;
const ep = (ip: string, port = 51820) => ({ ip, port });

function node(name: string, fields: Partial<KiloNode>): KiloNode {
  return kiloNode(name, { lastSeen: NOW, granularity: 'location', ...fields });
}

const NODES: KiloNode[] = kgctlFixtureNodes(NOW);

const PEERS: KiloPeer[] = [
  { name: 'p1', allowedIPs: ['10.5.0.0/24', '10.5.0.0/24'], publicKey: key('key4'), persistentKeepalive: 0 },
  {
    name: 'p2',
    allowedIPs: ['10.5.0.0/24'],
    publicKey: key('key5'),
    endpoint: ep('192.168.0.1'),
    persistentKeepalive: 10,
  },
  {
    name: 'p3',
    allowedIPs: ['10.6.0.1/32', '10.5.0.0/24'],
    publicKey: key('key6'),
    endpoint: { dns: 'peer.example.com', port: 51821 },
    persistentKeepalive: 0,
    presharedKey: key('psk'),
  },
];

const VIEW: ClusterView = { nodes: NODES, peers: PEERS, now: NOW };
const AIPS_NODE = ['10.10.0.0/16', '10.2.1.7/24', '10.10.0.0/16'];
const AIPS_PEER = ['10.10.0.0/16', '10.5.0.3/24', '10.10.0.0/16'];

/** Kilo's output (stdout), as kgctl printed it. */
const KILO: Record<string, string> = {
  'node-location-a': String.raw`[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.2.3.0/24, 192.168.0.2/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 25
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.3/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 25
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 25
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 25
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 25
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-a-port': String.raw`[Interface]
ListenPort = 51821

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.2.3.0/24, 192.168.0.2/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 25
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.3/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 25
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 25
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 25
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 25
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-b': String.raw`[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.3/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-d': String.raw`[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.2.3.0/24, 192.168.0.2/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 0
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-full-c': String.raw`[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 0
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.4/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-a-peer-wireguard': String.raw`[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-a-peer-wireguard-aips': String.raw`[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32, 10.10.0.0/16
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-a-peer-json': String.raw`{
  "kind": "Peer",
  "apiVersion": "kilo.squat.ai/v1alpha1",
  "metadata": {
    "name": "a"
  },
  "spec": {
    "allowedIPs": [
      "10.2.1.0/24",
      "192.168.0.1/32",
      "10.4.0.1/32"
    ],
    "endpoint": {
      "dnsOrIP": {
        "ip": "10.1.0.1"
      },
      "port": 51820
    },
    "publicKey": "a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
  }
}`,
  'node-location-a-peer-json-aips': String.raw`{
  "kind": "Peer",
  "apiVersion": "kilo.squat.ai/v1alpha1",
  "metadata": {
    "name": "a"
  },
  "spec": {
    "allowedIPs": [
      "10.2.1.0/24",
      "192.168.0.1/32",
      "10.4.0.1/32",
      "10.10.0.0/16"
    ],
    "endpoint": {
      "dnsOrIP": {
        "ip": "10.1.0.1"
      },
      "port": 51820
    },
    "publicKey": "a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
  }
}`,
  'node-location-a-peer-yaml': String.raw`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: a
spec:
  allowedIPs:
  - 10.2.1.0/24
  - 192.168.0.1/32
  - 10.4.0.1/32
  endpoint:
    dnsOrIP:
      ip: 10.1.0.1
    port: 51820
  publicKey: a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-a-peer-yaml-aips': String.raw`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: a
spec:
  allowedIPs:
  - 10.2.1.0/24
  - 192.168.0.1/32
  - 10.4.0.1/32
  - 10.10.0.0/16
  endpoint:
    dnsOrIP:
      ip: 10.1.0.1
    port: 51820
  publicKey: a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-location-d-peer-yaml': String.raw`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: d
spec:
  allowedIPs:
  - 10.2.4.0/24
  - 10.4.0.3/32
  endpoint:
    dnsOrIP:
      ip: 10.1.0.4
    port: 51820
  publicKey: a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'node-full-c-peer-yaml-aips': String.raw`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: c
spec:
  allowedIPs:
  - 10.2.3.0/24
  - 192.168.0.2/32
  - 10.4.0.3/32
  - 10.10.0.0/16
  - 10.2.1.0/24
  endpoint:
    dnsOrIP:
      ip: 10.1.0.3
    port: 51820
  publicKey: a2V5MwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p1': String.raw`[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.2.3.0/24, 192.168.0.2/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 0
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.3/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 0
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p2': String.raw`[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 10
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.2.3.0/24, 192.168.0.2/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 10
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.3/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 10
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 10
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 10
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p3': String.raw`[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.2.3.0/24, 192.168.0.2/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.3/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 0
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-full-p2': String.raw`[Peer]
AllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32
Endpoint = 10.1.0.1:51820
PersistentKeepalive = 10
PublicKey = a2V5MQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.2.0/24, 192.168.0.1/32, 10.4.0.2/32, 192.168.178.3/32
Endpoint = 10.1.0.2:51820
PersistentKeepalive = 10
PublicKey = a2V5MgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.3.0/24, 192.168.0.2/32, 10.4.0.3/32
Endpoint = 10.1.0.3:51820
PersistentKeepalive = 10
PublicKey = a2V5MwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.2.4.0/24, 10.4.0.4/32
Endpoint = 10.1.0.4:51820
PersistentKeepalive = 10
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.5.0.0/24
PersistentKeepalive = 10
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=

[Peer]
AllowedIPs = 10.6.0.1/32
Endpoint = peer.example.com:51821
PersistentKeepalive = 10
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p1-peer-wireguard-aips': String.raw`[Peer]
AllowedIPs = 10.5.0.0/24, 10.10.0.0/16
PersistentKeepalive = 0
PublicKey = a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p2-peer-wireguard': String.raw`[Peer]
AllowedIPs = 10.5.0.0/24
Endpoint = 192.168.0.1:51820
PersistentKeepalive = 10
PublicKey = a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p3-peer-wireguard-aips': String.raw`[Peer]
AllowedIPs = 10.6.0.1/32, 10.5.0.0/24, 10.10.0.0/16
Endpoint = peer.example.com:51821
PersistentKeepalive = 0
PresharedKey = cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
PublicKey = a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p1-peer-json': String.raw`{
  "kind": "Peer",
  "apiVersion": "kilo.squat.ai/v1alpha1",
  "metadata": {
    "name": "p1"
  },
  "spec": {
    "allowedIPs": [
      "10.5.0.0/24"
    ],
    "endpoint": {
      "dnsOrIP": {
        "ip": "\u003cnil\u003e"
      },
      "port": 0
    },
    "publicKey": "a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
  }
}`,
  'peer-location-p1-peer-yaml-aips': String.raw`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: p1
spec:
  allowedIPs:
  - 10.5.0.0/24
  - 10.10.0.0/16
  endpoint:
    dnsOrIP:
      ip: <nil>
    port: 0
  publicKey: a2V5NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
  'peer-location-p2-peer-json': String.raw`{
  "kind": "Peer",
  "apiVersion": "kilo.squat.ai/v1alpha1",
  "metadata": {
    "name": "p2"
  },
  "spec": {
    "allowedIPs": [
      "10.5.0.0/24"
    ],
    "endpoint": {
      "dnsOrIP": {
        "ip": "192.168.0.1"
      },
      "port": 51820
    },
    "persistentKeepalive": 10000000000,
    "publicKey": "a2V5NQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
  }
}`,
  'peer-location-p3-peer-yaml': String.raw`apiVersion: kilo.squat.ai/v1alpha1
kind: Peer
metadata:
  name: p3
spec:
  allowedIPs:
  - 10.6.0.1/32
  - 10.5.0.0/24
  endpoint:
    dnsOrIP:
      dns: "51821"
      ip: <nil>
    port: 51821
  presharedKey: cHNrAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
  publicKey: a2V5NgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
`,
};

function golden(name: string): string {
  const text = KILO[name];
  if (text === undefined) throw new Error(`no golden ${name}`);
  return text;
}

type Case = [name: string, target: string, opts: Partial<ShowConfOptions>];
const base: ShowConfOptions = {
  granularity: 'location',
  asPeer: false,
  output: 'wireguard',
  stableWireGuardIPs: false,
};

describe('showConfNode (kgctl showconf node)', () => {
  it.each<Case>([
    ['node-location-a', 'a', {}],
    ['node-location-a', 'a', { output: 'json' }], // -o is ignored without --as-peer, as in Kilo
    ['node-location-a-port', 'a', { port: 51821 }],
    ['node-location-b', 'b', {}],
    ['node-location-d', 'd', {}],
    ['node-full-c', 'c', { granularity: 'full' }],
    ['node-location-a-peer-wireguard', 'a', { asPeer: true }],
    ['node-location-a-peer-wireguard-aips', 'a', { asPeer: true, allowedIPs: AIPS_NODE }],
    ['node-location-a-peer-json', 'a', { asPeer: true, output: 'json' }],
    ['node-location-a-peer-json-aips', 'a', { asPeer: true, output: 'json', allowedIPs: AIPS_NODE }],
    ['node-location-a-peer-yaml', 'a', { asPeer: true, output: 'yaml' }],
    ['node-location-a-peer-yaml-aips', 'a', { asPeer: true, output: 'yaml', allowedIPs: AIPS_NODE }],
    ['node-location-d-peer-yaml', 'd', { asPeer: true, output: 'yaml' }],
    [
      'node-full-c-peer-yaml-aips',
      'c',
      { granularity: 'full', asPeer: true, output: 'yaml', allowedIPs: AIPS_NODE },
    ],
    ['node-location-a', 'a', { granularity: 'auto' }],
  ])('%s: showconf node %s %j', (name, target, opts) => {
    expect(showConfNode(VIEW, target, { ...base, ...opts })).toBe(golden(name));
  });

  it('stable WireGuard IPs (the agents default) keep the published ones; Kilo would renumber', () => {
    const out = showConfNode(VIEW, 'c', { ...base, granularity: 'full', stableWireGuardIPs: true });
    // full: a, b and d publish .1, .2, .3 (from their location mesh); c takes the next free, .4.
    expect(out).toContain('AllowedIPs = 10.2.4.0/24, 10.4.0.3/32\n');
    expect(out).not.toContain('10.4.0.4/32');
  });

  it.each<[string, string, Partial<ShowConfOptions>, string, RegExp]>([
    [
      'a member that does not lead (fixed: Kilo prints to stderr and exits 0)',
      'c',
      {},
      'not-leader',
      /^Node "c" is not a leader node; .*leaders: a, b, d\)$/,
    ],
    ['a stale node', 'e', {}, 'unknown-node', /^did not find any node named "e" in the cluster/],
    ['an unknown node', 'zz', { asPeer: true }, 'unknown-node', /^did not find any node named "zz"/],
  ])('refuses %s', (_what, target, opts, kind, message) => {
    const run = () => showConfNode(VIEW, target, { ...base, ...opts });
    expect(run).toThrow(KgctlError);
    expect(run).toThrow(message);
    try {
      run();
    } catch (e) {
      expect(e instanceof KgctlError && e.kind).toBe(kind);
    }
  });
});

describe('showConfPeer (kgctl showconf peer)', () => {
  it.each<Case>([
    ['peer-location-p1', 'p1', {}],
    ['peer-location-p2', 'p2', {}],
    ['peer-location-p3', 'p3', { output: 'yaml' }],
    ['peer-full-p2', 'p2', { granularity: 'full' }],
    ['peer-location-p1-peer-wireguard-aips', 'p1', { asPeer: true, allowedIPs: AIPS_PEER }],
    ['peer-location-p2-peer-wireguard', 'p2', { asPeer: true }],
    ['peer-location-p3-peer-wireguard-aips', 'p3', { asPeer: true, allowedIPs: AIPS_PEER }],
  ])('%s: showconf peer %s %j', (name, target, opts) => {
    expect(showConfPeer(VIEW, target, { ...base, ...opts })).toBe(golden(name));
  });

  it('fixed: the keepalive of a Peer CR is in seconds (Kilo writes the nanoseconds of the duration)', () => {
    const kilo = golden('peer-location-p2-peer-json');
    const ours = showConfPeer(VIEW, 'p2', { ...base, asPeer: true, output: 'json' });
    expect(kilo).toContain('"persistentKeepalive": 10000000000,');
    expect(ours).toBe(kilo.replace('10000000000', '10'));
  });

  it('fixed: a DNS endpoint keeps its name and no IP (Kilo writes dns: "<port>", ip: <nil>)', () => {
    const kilo = golden('peer-location-p3-peer-yaml');
    const ours = showConfPeer(VIEW, 'p3', { ...base, asPeer: true, output: 'yaml' });
    expect(ours).toBe(kilo.replace('      dns: "51821"\n      ip: <nil>\n', '      dns: peer.example.com\n'));
  });

  it.each<Case>([
    ['peer-location-p1-peer-json', 'p1', { asPeer: true, output: 'json' }],
    ['peer-location-p1-peer-yaml-aips', 'p1', { asPeer: true, output: 'yaml', allowedIPs: AIPS_PEER }],
  ])(
    'fixed: %s, a Peer without endpoint, has no endpoint (Kilo writes ip "<nil>", port 0)',
    (name, target, opts) => {
      const kilo = golden(name);
      const ours = showConfPeer(VIEW, target, { ...base, ...opts });
      const withoutEndpoint =
        opts.output === 'json'
          ? kilo.replace(/\n {4}"endpoint": \{\n.*\n.*\n.*\n.*\n {4}\},/, '')
          : kilo.replace('  endpoint:\n    dnsOrIP:\n      ip: <nil>\n    port: 0\n', '');
      expect(withoutEndpoint).not.toContain('nil');
      expect(ours).toBe(withoutEndpoint);
    },
  );

  it('refuses an unknown peer', () => {
    const run = () => showConfPeer(VIEW, 'zz', base);
    expect(run).toThrow(/^did not find any peer named "zz" in the cluster/);
  });

  it('refuses when no node is ready', () => {
    const stale: ClusterView = { ...VIEW, now: NOW + 3600 };
    expect(() => showConfPeer(stale, 'p1', base)).toThrow('did not find any valid Kilo nodes in the cluster');
  });
});

describe('kgctl cluster view', () => {
  it('auto granularity is the first node’s annotation; none is an error', () => {
    expect(determineGranularity('auto', [node('x', { granularity: 'full' }), ...NODES])).toBe('full');
    expect(determineGranularity('location', [])).toBe('location');
    expect(() => determineGranularity('auto', [])).toThrow(KgctlError);
    const bare: KiloNode = { ...node('x', {}) };
    delete bare.granularity;
    expect(() => determineGranularity('auto', [bare])).toThrow(/pass --mesh-granularity/);
  });

  it('the subnet is the network of the last published wireguard-ip, else the fallback', () => {
    expect(clusterSubnet(NODES)).toBe('10.4.0.0/16');
    expect(clusterSubnet([node('x', { wireGuardIP: '10.6.0.3/24' })])).toBe('10.6.0.0/24');
    expect(clusterSubnet([node('x', {})], '10.9.0.0/16')).toBe('10.9.0.0/16');
  });

  it('YAML leaves IPv6 CIDRs that start with :: unquoted, as yaml.v2 does', () => {
    const peer: KiloPeer = {
      name: 'v6',
      allowedIPs: ['::/0', 'fd00::1/128'],
      publicKey: key('key7'),
      persistentKeepalive: 0,
    };
    expect(formatPeerResource(peer, 'v6', 'yaml')).toContain('  allowedIPs:\n  - ::/0\n  - fd00::1/128\n');
  });
});
