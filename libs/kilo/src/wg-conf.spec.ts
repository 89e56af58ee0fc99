import { newTopology } from './topology';
import { kiloFixture, kiloTestKey } from './fixture';
import type { Granularity, KiloNode, KiloPeer } from './types';
import { asPeer, peerConf, remoteSegments, topologyConf, updateEndpoint } from './wg-conf';

// Kilo has no Go tests for Conf/AsPeer/PeerConf; these tables run its topology_test.go fixture
// (nodes a–d, d without an internal IP, peers a and b) through them.

const [key1, key2, key3, key4, key5] = ['key1', 'key2', 'key3', 'key4', 'key5'].map(kiloTestKey) as [
  string,
  string,
  string,
  string,
  string,
];
const { nodes, peers } = kiloFixture();

function topology(
  granularity: Granularity,
  hostname: string,
  over: { nodes?: Record<string, KiloNode>; peers?: Record<string, KiloPeer> } = {},
) {
  // As kg calls it: the local node's keepalive.
  return newTopology({
    nodes: over.nodes ?? nodes,
    peers: over.peers ?? peers,
    granularity,
    hostname,
    port: 51820,
    subnet: '10.4.0.0/16',
  });
}

const ep = (ip: string, port = 51820) => ({ ip, port });
const location1 = {
  publicKey: key1,
  allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
  endpoint: ep('10.1.0.1'),
};
const location2 = {
  publicKey: key2,
  allowedIPs: [
    '10.2.2.0/24',
    '192.168.0.1/32',
    '10.2.3.0/24',
    '192.168.0.2/32',
    '10.4.0.2/32',
    '192.168.178.3/32',
  ],
  endpoint: ep('10.1.0.2'),
};
const nodeD = { publicKey: key4, allowedIPs: ['10.2.4.0/24', '10.4.0.3/32'], endpoint: ep('10.1.0.4') };
/** Per-node segments b and c (full and cross). */
const nodeB = {
  publicKey: key2,
  allowedIPs: ['10.2.2.0/24', '192.168.0.1/32', '10.4.0.2/32', '192.168.178.3/32'],
  endpoint: ep('10.1.0.2'),
};
const nodeC = {
  publicKey: key3,
  allowedIPs: ['10.2.3.0/24', '192.168.0.2/32', '10.4.0.3/32'],
  endpoint: ep('10.1.0.3'),
};
const peerA = { publicKey: key4, allowedIPs: ['10.5.0.1/24', '10.5.0.2/24'] };
const peerB = { publicKey: key5, allowedIPs: ['10.5.0.3/24'], endpoint: ep('192.168.0.1') };

describe('topologyConf (Kilo Topology.Conf)', () => {
  it.each([
    {
      name: 'logical from a: other segments then peers, the local keepalive (25) on every peer',
      t: topology('location', 'a'),
      peers: [location2, nodeD, peerA, peerB].map((p) => ({ ...p, persistentKeepalive: 25 })),
    },
    {
      name: 'logical from c (a non-leader: Kilo builds the same config as its leader would)',
      t: topology('location', 'c'),
      peers: [location1, nodeD, peerA, peerB].map((p) => ({ ...p, persistentKeepalive: 0 })),
    },
    {
      name: 'full from d: every other node',
      t: topology('full', 'd'),
      peers: [
        { ...location1, persistentKeepalive: 0 },
        { ...nodeB, persistentKeepalive: 0 },
        { ...nodeC, persistentKeepalive: 0 },
        { ...peerA, persistentKeepalive: 0 },
        { ...peerB, persistentKeepalive: 0 },
      ],
    },
    {
      name: 'cross from b: only nodes of other locations (c, same location, goes over the private network)',
      t: topology('cross', 'b'),
      peers: [
        { ...location1, persistentKeepalive: 0 },
        { ...nodeD, allowedIPs: ['10.2.4.0/24', '10.4.0.4/32'], persistentKeepalive: 0 },
        { ...peerA, persistentKeepalive: 0 },
        { ...peerB, persistentKeepalive: 0 },
      ],
    },
    {
      name: 'cross from d (no internal IP: a group of its own, so every other node)',
      t: topology('cross', 'd'),
      peers: [
        { ...location1, persistentKeepalive: 0 },
        { ...nodeB, persistentKeepalive: 0 },
        { ...nodeC, persistentKeepalive: 0 },
        { ...peerA, persistentKeepalive: 0 },
        { ...peerB, persistentKeepalive: 0 },
      ],
    },
  ])('$name', ({ t, peers: expected }) => {
    expect(topologyConf(t, 'cHJpdg==')).toEqual({
      privateKey: 'cHJpdg==',
      listenPort: 51820,
      peers: expected,
    });
  });

  it('cross between two nodes of one location: no segment peer at all, Peers only', () => {
    const t = topology('cross', 'b', { nodes: { b: nodes.b as KiloNode, c: nodes.c as KiloNode } });
    expect(remoteSegments(t)).toEqual([]);
    expect(topologyConf(t, 'k').peers.map((p) => p.publicKey)).toEqual([key4, key5]);
  });

  it('keeps Peers’ preshared keys', () => {
    const t = topology('location', 'a', { peers: { b: { ...(peers.b as KiloPeer), presharedKey: 'cHNr' } } });
    expect(topologyConf(t, 'k').peers.at(-1)).toEqual({
      ...peerB,
      persistentKeepalive: 25,
      presharedKey: 'cHNr',
    });
  });
});

describe('NAT: discovered endpoints replace declared ones only for a non-zero own keepalive (Kilo updateEndpoint)', () => {
  const natNodes: Record<string, KiloNode> = {
    ...nodes,
    b: {
      ...(nodes.b as KiloNode),
      discoveredEndpoints: {
        [key1]: { ip: '198.51.100.1', port: 40001 },
        [key4]: { ip: '198.51.100.4', port: 40004 },
        [key5]: { ip: '198.51.100.5', port: 40005 },
      },
    },
  };
  const natPeers: Record<string, KiloPeer> = {
    ...peers,
    b: { ...(peers.b as KiloPeer), persistentKeepalive: 5 },
  };
  const t = topology('location', 'b', { nodes: natNodes, peers: natPeers });

  it('Conf: segment a (keepalive 25) and peer b (keepalive 5) use the discovered endpoint; d and peer a do not', () => {
    expect(topologyConf(t, 'k').peers).toEqual([
      { ...location1, endpoint: ep('198.51.100.1', 40001), persistentKeepalive: 0 },
      { ...nodeD, persistentKeepalive: 0 },
      { ...peerA, persistentKeepalive: 0 },
      { ...peerB, endpoint: ep('198.51.100.5', 40005), persistentKeepalive: 0 },
    ]);
  });

  it.each([
    { name: 'zero keepalive', keepalive: 0, key: key1, out: ep('10.1.0.9') },
    { name: 'no keepalive', keepalive: undefined, key: key1, out: ep('10.1.0.9') },
    { name: 'keepalive, discovered', keepalive: 25, key: key1, out: ep('198.51.100.1', 40001) },
    { name: 'keepalive, nothing discovered', keepalive: 25, key: key3, out: ep('10.1.0.9') },
  ])('updateEndpoint: $name', ({ keepalive, key, out }) => {
    expect(updateEndpoint(t, ep('10.1.0.9'), key, keepalive)).toEqual(out);
  });
});

describe('asPeer (Kilo Topology.AsPeer)', () => {
  it.each([
    { name: 'from a', t: topology('location', 'a'), out: location1 },
    {
      name: 'from c: its location, led by b, without the allowed-location IPs',
      t: topology('location', 'c'),
      out: { ...location2, allowedIPs: location2.allowedIPs.slice(0, 5) },
    },
    {
      name: 'full from d',
      t: topology('full', 'd'),
      out: { ...nodeD, allowedIPs: ['10.2.4.0/24', '10.4.0.4/32'] },
    },
  ])('$name', ({ t, out }) => {
    expect(asPeer(t)).toEqual(out);
  });

  it('undefined without a local segment', () => {
    const t = topology('location', 'a');
    expect(asPeer({ ...t, location: 'location:none' })).toBeUndefined();
  });
});

describe('peerConf (Kilo Topology.PeerConf)', () => {
  it('for peer a: every segment, then the other peers; a sets no keepalive or key', () => {
    expect(peerConf(topology('location', 'a'), 'a')).toEqual({ peers: [location1, location2, nodeD, peerB] });
  });

  it('for peer b with keepalive and preshared key: on every segment, keepalive only on other peers', () => {
    const t = topology('location', 'c', {
      peers: { ...peers, b: { ...(peers.b as KiloPeer), persistentKeepalive: 10, presharedKey: 'cHNr' } },
    });
    expect(peerConf(t, 'b')).toEqual({
      peers: [
        { ...location1, persistentKeepalive: 10, presharedKey: 'cHNr' },
        { ...location2, persistentKeepalive: 10, presharedKey: 'cHNr' },
        { ...nodeD, persistentKeepalive: 10, presharedKey: 'cHNr' },
        { ...peerA, persistentKeepalive: 10 },
      ],
    });
  });

  it('an unknown name (kgctl uses ""): every segment and every peer, no keepalive', () => {
    expect(peerConf(topology('location', 'a'), '')).toEqual({
      peers: [location1, location2, nodeD, peerA, peerB],
    });
  });
});
