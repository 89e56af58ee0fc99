import {
  deduplicatePeerIPs,
  filterAllowedLocationIPs,
  newTopology,
  nodeReady,
  peerReady,
  TopologyError,
  type AllowedLocationIPsScope,
  type TopologyInput,
} from './topology';
import { kiloFixture, kiloNode, kiloTestKey } from './fixture';
import type { KiloNode, KiloPeer, Segment, Topology } from './types';

const testKey = kiloTestKey;
const node = kiloNode;
const [key1, key2, key3, key4, key5] = ['key1', 'key2', 'key3', 'key4', 'key5'].map(testKey) as [
  string,
  string,
  string,
  string,
  string,
];

const { nodes: fixtureNodes, peers: fixturePeers } = kiloFixture();

/** Kilo's expected segments, as TestNewTopology spells them. */
const segLocation1: Segment = {
  location: 'location:1',
  group: 'location:1',
  allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
  endpoint: { ip: '10.1.0.1', port: 51820 },
  key: key1,
  persistentKeepalive: 25,
  cidrs: ['10.2.1.0/24'],
  hostnames: ['a'],
  leader: 0,
  privateIPs: ['192.168.0.1'],
  cniCompatibilityIPs: [undefined],
  wireGuardIP: '10.4.0.1',
  allowedLocationIPs: [],
};
const segLocation2: Segment = {
  location: 'location:2',
  group: 'location:2',
  allowedIPs: ['10.2.2.0/24', '192.168.0.1/32', '10.2.3.0/24', '192.168.0.2/32', '10.4.0.2/32'],
  endpoint: { ip: '10.1.0.2', port: 51820 },
  key: key2,
  persistentKeepalive: 0,
  cidrs: ['10.2.2.0/24', '10.2.3.0/24'],
  hostnames: ['b', 'c'],
  leader: 0,
  privateIPs: ['192.168.0.1', '192.168.0.2'],
  cniCompatibilityIPs: [undefined, undefined],
  wireGuardIP: '10.4.0.2',
  allowedLocationIPs: ['192.168.178.3/32'],
};
const segNodeD3: Segment = {
  location: 'node:d',
  group: 'node:d',
  allowedIPs: ['10.2.4.0/24', '10.4.0.3/32'],
  endpoint: { ip: '10.1.0.4', port: 51820 },
  key: key4,
  persistentKeepalive: 0,
  cidrs: ['10.2.4.0/24'],
  hostnames: ['d'],
  leader: 0,
  privateIPs: [],
  cniCompatibilityIPs: [undefined],
  wireGuardIP: '10.4.0.3',
  allowedLocationIPs: [],
};
const segNodeA: Segment = { ...segLocation1, location: 'node:a' };
const segNodeB: Segment = {
  location: 'node:b',
  group: 'location:2',
  allowedIPs: ['10.2.2.0/24', '192.168.0.1/32', '10.4.0.2/32'],
  endpoint: { ip: '10.1.0.2', port: 51820 },
  key: key2,
  persistentKeepalive: 0,
  cidrs: ['10.2.2.0/24'],
  hostnames: ['b'],
  leader: 0,
  privateIPs: ['192.168.0.1'],
  cniCompatibilityIPs: [undefined],
  wireGuardIP: '10.4.0.2',
  allowedLocationIPs: ['192.168.178.3/32'],
};
const segNodeC: Segment = {
  location: 'node:c',
  group: 'location:2',
  allowedIPs: ['10.2.3.0/24', '192.168.0.2/32', '10.4.0.3/32'],
  endpoint: { ip: '10.1.0.3', port: 51820 },
  key: key3,
  persistentKeepalive: 0,
  cidrs: ['10.2.3.0/24'],
  hostnames: ['c'],
  leader: 0,
  privateIPs: ['192.168.0.2'],
  cniCompatibilityIPs: [undefined],
  wireGuardIP: '10.4.0.3',
  allowedLocationIPs: [],
};
const segNodeD4: Segment = {
  ...segNodeD3,
  allowedIPs: ['10.2.4.0/24', '10.4.0.4/32'],
  wireGuardIP: '10.4.0.4',
};

const logicalSegments = [segLocation1, segLocation2, segNodeD3];
const fullSegments = [segNodeA, segNodeB, segNodeC, segNodeD4];
const fixturePeerList = [fixturePeers.a, fixturePeers.b] as KiloPeer[];

function expected(
  t: Partial<Topology> & Pick<Topology, 'hostname' | 'location' | 'leader' | 'wireGuardCIDR' | 'segments'>,
): Topology {
  const local = fixtureNodes[t.hostname];
  return {
    granularity: 'location',
    port: 51820,
    persistentKeepalive: 0,
    ...(local?.internalIP ? { privateIP: local.internalIP } : {}),
    ...(local?.subnet ? { subnet: local.subnet } : {}),
    serviceCIDRs: [],
    peers: fixturePeerList,
    discoveredEndpoints: {},
    ...t,
  };
}

function fixtureInput(
  extra: Partial<TopologyInput> & Pick<TopologyInput, 'granularity' | 'hostname'>,
): TopologyInput {
  // Kilo's test calls NewTopology(nodes, peers, granularity, hostname, port, key, DefaultKiloSubnet, nil, 0, nil).
  return {
    nodes: fixtureNodes,
    peers: fixturePeers,
    port: 51820,
    subnet: '10.4.0.0/16',
    persistentKeepalive: 0,
    ...extra,
  };
}

describe('newTopology: every case of Kilo topology_test.go TestNewTopology', () => {
  const cases: { name: string; input: TopologyInput; result: Topology }[] = [
    {
      name: 'logical from a',
      input: fixtureInput({ granularity: 'location', hostname: 'a' }),
      result: expected({
        hostname: 'a',
        location: 'location:1',
        leader: true,
        wireGuardCIDR: '10.4.0.1/16',
        segments: logicalSegments,
      }),
    },
    {
      name: 'logical from b',
      input: fixtureInput({ granularity: 'location', hostname: 'b' }),
      result: expected({
        hostname: 'b',
        location: 'location:2',
        leader: true,
        wireGuardCIDR: '10.4.0.2/16',
        segments: logicalSegments,
      }),
    },
    {
      name: 'logical from c',
      input: fixtureInput({ granularity: 'location', hostname: 'c' }),
      result: expected({
        hostname: 'c',
        location: 'location:2',
        leader: false,
        wireGuardCIDR: '10.4.0.0/16',
        segments: logicalSegments,
      }),
    },
    {
      name: 'full from a',
      input: fixtureInput({ granularity: 'full', hostname: 'a' }),
      result: expected({
        granularity: 'full',
        hostname: 'a',
        location: 'node:a',
        leader: true,
        wireGuardCIDR: '10.4.0.1/16',
        segments: fullSegments,
      }),
    },
    {
      name: 'full from b',
      input: fixtureInput({ granularity: 'full', hostname: 'b' }),
      result: expected({
        granularity: 'full',
        hostname: 'b',
        location: 'node:b',
        leader: true,
        wireGuardCIDR: '10.4.0.2/16',
        segments: fullSegments,
      }),
    },
    {
      name: 'full from c',
      input: fixtureInput({ granularity: 'full', hostname: 'c' }),
      result: expected({
        granularity: 'full',
        hostname: 'c',
        location: 'node:c',
        leader: true,
        wireGuardCIDR: '10.4.0.3/16',
        segments: fullSegments,
      }),
    },
    {
      name: 'full from d',
      input: fixtureInput({ granularity: 'full', hostname: 'd' }),
      result: expected({
        granularity: 'full',
        hostname: 'd',
        location: 'node:d',
        leader: true,
        wireGuardCIDR: '10.4.0.4/16',
        segments: fullSegments,
      }),
    },
  ];

  it.each(cases)('$name (Kilo sort order)', ({ input, result }) => {
    expect(newTopology({ ...input, stableWireGuardIPs: false })).toEqual(result);
  });

  // The fixture's nodes publish no wireguard-ip, so the stable default gives Kilo's result too.
  it.each(cases)('$name (stable WireGuard IPs, the default)', ({ input, result }) => {
    expect(newTopology(input)).toEqual(result);
  });

  it('defaults the keepalive to the local node (as kg passes it) and keeps the service CIDRs', () => {
    const t = newTopology({
      ...fixtureInput({ granularity: 'location', hostname: 'a' }),
      persistentKeepalive: undefined,
      serviceCIDRs: ['10.96.0.0/12'],
    });
    expect(t.persistentKeepalive).toBe(25);
    expect(t.serviceCIDRs).toEqual(['10.96.0.0/12']);
  });

  it('does not change its input', () => {
    const before = JSON.stringify(kiloFixture());
    newTopology(fixtureInput({ granularity: 'location', hostname: 'a' }));
    expect(JSON.stringify({ nodes: fixtureNodes, peers: fixturePeers })).toBe(before);
  });
});

describe('newTopology: errors', () => {
  it('the local node missing', () => {
    const e = captureError(() => newTopology(fixtureInput({ granularity: 'location', hostname: 'z' })));
    expect(e).toBeInstanceOf(TopologyError);
    expect(e).toMatchObject({
      kind: 'local-node-missing',
      message: 'local node z is not among the ready nodes',
    });
  });

  it('addresses run out', () => {
    const e = captureError(() =>
      newTopology(fixtureInput({ granularity: 'full', hostname: 'a', subnet: '10.4.0.0/30' })),
    );
    expect(e).toMatchObject({
      kind: 'addresses-exhausted',
      message: expect.stringMatching(/^subnet 10\.4\.0\.0\/30 has no WireGuard IP left for segment node:d/),
    });
  });

  it('Kilo bug fixed: the first segment past the end fails too (Kilo gives it an empty WireGuard IP)', () => {
    const nodes = { a: fixtureNodes.a as KiloNode, b: fixtureNodes.b as KiloNode };
    expect(() =>
      newTopology(
        fixtureInput({
          granularity: 'full',
          hostname: 'a',
          nodes,
          subnet: '10.4.0.0/31',
          stableWireGuardIPs: false,
        }),
      ),
    ).toThrow(TopologyError);
    expect(
      newTopology(
        fixtureInput({
          granularity: 'full',
          hostname: 'a',
          nodes: { a: fixtureNodes.a as KiloNode },
          subnet: '10.4.0.0/31',
        }),
      ).wireGuardCIDR,
    ).toBe('10.4.0.1/31');
  });
});

function captureError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('deduplicatePeerIPs: every case of Kilo TestDeduplicatePeerIPs', () => {
  const p1: KiloPeer = { name: '1', publicKey: key1, allowedIPs: ['10.0.0.1/24', '10.0.0.2/24'] };
  const p2: KiloPeer = { name: '2', publicKey: key2, allowedIPs: ['10.0.0.1/24', '10.0.0.3/24'] };
  const p3: KiloPeer = {
    name: '3',
    publicKey: key3,
    allowedIPs: ['10.0.0.2/24', '10.0.0.3/24', '10.0.0.1/24'],
  };
  const p4: KiloPeer = { name: '4', publicKey: key4, allowedIPs: ['10.0.0.3/24', '10.0.0.3/24'] };
  it.each([
    { name: 'nil', peers: [], out: [] },
    { name: 'simple dupe', peers: [p1, p2], out: [p1, { ...p2, allowedIPs: ['10.0.0.3/24'] }] },
    { name: 'simple dupe reversed', peers: [p2, p1], out: [p2, { ...p1, allowedIPs: ['10.0.0.2/24'] }] },
    {
      name: 'one duplicates all',
      peers: [p3, p2, p1, p4],
      out: [p3, { ...p2, allowedIPs: [] }, { ...p1, allowedIPs: [] }, { ...p4, allowedIPs: [] }],
    },
    { name: 'one duplicates itself', peers: [p4, p1], out: [{ ...p4, allowedIPs: ['10.0.0.3/24'] }, p1] },
  ])('$name', ({ peers, out }) => {
    expect(deduplicatePeerIPs(peers)).toEqual(out);
  });

  it('newTopology sorts the peers by name first, so the first by name wins', () => {
    const t = newTopology({
      ...fixtureInput({ granularity: 'location', hostname: 'a' }),
      peers: {
        zulu: { name: 'zulu', publicKey: key1, allowedIPs: ['10.6.0.1/32', '10.6.0.0/24'] },
        alpha: {
          name: 'alpha',
          publicKey: key2,
          allowedIPs: ['10.6.0.0/24'],
          persistentKeepalive: 10,
          presharedKey: key3,
        },
      },
    });
    expect(t.peers).toEqual([
      {
        name: 'alpha',
        publicKey: key2,
        allowedIPs: ['10.6.0.0/24'],
        persistentKeepalive: 10,
        presharedKey: key3,
      },
      { name: 'zulu', publicKey: key1, allowedIPs: ['10.6.0.1/32'] },
    ]);
  });
});

describe('filterAllowedLocationIPs: every case of Kilo TestFilterAllowedIPs', () => {
  // Kilo's test runs the cases in order on one topology ("logical from a", keepalive 25) and
  // writes each filtered result back, so later cases see earlier results.
  const topo = newTopology({
    ...fixtureInput({ granularity: 'location', hostname: 'a' }),
    persistentKeepalive: 25,
  });
  const segments: AllowedLocationIPsScope[] = topo.segments.map((s) => ({ ...s }));
  const cases: {
    name: string;
    allowedLocationIPs: Record<number, string[]>;
    result: Record<number, string[]>;
  }[] = [
    {
      name: 'nothing to filter',
      allowedLocationIPs: {
        0: ['192.168.178.4/32'],
        1: ['192.168.178.5/32'],
        2: ['192.168.178.6/32', '192.168.178.7/32'],
      },
      result: {
        0: ['192.168.178.4/32'],
        1: ['192.168.178.5/32'],
        2: ['192.168.178.6/32', '192.168.178.7/32'],
      },
    },
    {
      name: 'intersections between segments',
      allowedLocationIPs: {
        0: ['192.168.178.4/32', '192.168.178.8/32'],
        1: ['192.168.178.5/32'],
        2: ['192.168.178.6/32', '192.168.178.7/32', '192.168.178.4/32'],
      },
      result: {
        0: ['192.168.178.8/32'],
        1: ['192.168.178.5/32'],
        2: ['192.168.178.6/32', '192.168.178.7/32', '192.168.178.4/32'],
      },
    },
    {
      name: 'intersections with wireGuardCIDR',
      allowedLocationIPs: {
        0: ['10.4.0.1/32', '192.168.178.8/32'],
        1: ['192.168.178.5/32'],
        2: ['192.168.178.6/32', '192.168.178.7/32'],
      },
      result: {
        0: ['192.168.178.8/32'],
        1: ['192.168.178.5/32'],
        2: ['192.168.178.6/32', '192.168.178.7/32'],
      },
    },
    {
      name: 'intersections with more than one allowedLocationIPs',
      // Kilo's mustParseCIDR("192.168.178.7/24") is the network 192.168.178.0/24.
      allowedLocationIPs: { 0: ['192.168.178.8/32'], 1: ['192.168.178.5/32'], 2: ['192.168.178.0/24'] },
      result: { 0: [], 1: [], 2: ['192.168.178.0/24'] },
    },
  ];
  it.each(cases)('$name', ({ allowedLocationIPs, result }) => {
    for (const [k, v] of Object.entries(allowedLocationIPs)) {
      const s = segments[Number(k)];
      if (s) s.allowedLocationIPs = v;
    }
    const got: Record<number, string[]> = {};
    segments.forEach((s, k) => {
      const filtered = filterAllowedLocationIPs(s.allowedLocationIPs, s.location, segments, topo.peers);
      s.allowedLocationIPs = filtered;
      got[k] = filtered;
    });
    expect(got).toEqual(result);
  });
});

describe('newTopology: allowed-location IPs, each filter rule', () => {
  function withAlips(alips: Partial<Record<string, string[]>>): Topology {
    const nodes = Object.fromEntries(
      Object.entries(fixtureNodes).map(([name, n]) => [
        name,
        { ...n, allowedLocationIPs: alips[name] ?? [] },
      ]),
    );
    return newTopology(fixtureInput({ granularity: 'location', hostname: 'a', nodes }));
  }
  const alipsOf = (t: Topology): Record<string, readonly string[]> =>
    Object.fromEntries(t.segments.map((s) => [s.location, s.allowedLocationIPs]));

  it.each([
    {
      name: 'de-duplicated across members, masked, and sorted as text (Go sorts IPNet.String())',
      alips: { b: ['192.168.178.9/32', '192.168.178.10/32'], c: ['192.168.178.9/32', '172.20.1.7/16'] },
      out: {
        'location:1': [],
        'location:2': ['172.20.0.0/16', '192.168.178.10/32', '192.168.178.9/32'],
        'node:d': [],
      },
    },
    {
      name: 'the same ALIP in two locations: dropped from the earlier segment, kept by the later (filtered in order)',
      alips: { a: ['192.168.50.0/24'], b: ['192.168.50.0/24'] },
      out: { 'location:1': [], 'location:2': ['192.168.50.0/24'], 'node:d': [] },
    },
    {
      name: 'an ALIP overlapping another location’s wider ALIP is dropped, the wider one kept (later)',
      alips: { a: ['192.168.50.0/24'], d: ['192.168.0.0/16'] },
      out: { 'location:1': [], 'location:2': [], 'node:d': ['192.168.0.0/16'] },
    },
    {
      name: 'inside a pod CIDR (any segment’s, its own too): dropped',
      alips: { a: ['10.2.1.128/25'], b: ['10.2.4.0/26'] },
      out: { 'location:1': [], 'location:2': [], 'node:d': [] },
    },
    {
      name: 'containing a node’s internal IP is fine (the /32 is more specific)',
      alips: { b: ['192.168.0.0/24'] },
      out: { 'location:1': [], 'location:2': ['192.168.0.0/24'], 'node:d': [] },
    },
    {
      name: 'equal to a node’s internal IP (another segment’s allowed IP): dropped',
      alips: { d: ['192.168.0.2/32'] },
      out: { 'location:1': [], 'location:2': [], 'node:d': [] },
    },
    {
      name: 'an earlier segment’s WireGuard IP is dropped; a later one’s survives (Kilo filters before allocating it)',
      alips: { b: ['10.4.0.1/32', '10.4.0.3/32'] },
      out: { 'location:1': [], 'location:2': ['10.4.0.3/32'], 'node:d': [] },
    },
    {
      name: 'intersecting a Peer’s allowed IP: dropped',
      alips: { b: ['10.5.0.0/16', '192.168.178.3/32'], c: ['10.5.0.7/32'] },
      out: { 'location:1': [], 'location:2': ['192.168.178.3/32'], 'node:d': [] },
    },
  ])('$name', ({ alips, out }) => {
    expect(alipsOf(withAlips(alips))).toEqual(out);
  });
});

describe('newTopology: several locations', () => {
  const n = (name: string, location: string, i: number, extra: Partial<KiloNode> = {}): KiloNode =>
    node(name, {
      endpoint: { ip: `10.1.${i}.1`, port: 51820 },
      internalIP: `192.168.${i}.1/24`,
      location,
      subnet: `10.2.${i}.0/24`,
      key: testKey(name),
      ...extra,
    });
  const nodes = {
    'eu-1': n('eu-1', 'eu', 1),
    'eu-2': n('eu-2', 'eu', 2, { endpoint: { ip: '203.0.113.2', port: 51821 }, persistentKeepalive: 5 }),
    'us-1': n('us-1', 'us', 3, { leader: true }),
    'us-2': n('us-2', 'us', 4, { endpoint: { ip: '198.51.100.4', port: 51820 } }),
    'ap-1': n('ap-1', 'ap', 5, { cniCompatibilityIP: '10.2.5.1/32' }),
  };

  it('groups by location, sorts members and segments, picks leaders in Kilo order', () => {
    const t = newTopology({
      nodes,
      peers: {},
      granularity: 'location',
      hostname: 'eu-1',
      port: 51820,
      subnet: '10.4.0.0/16',
      stableWireGuardIPs: false,
    });
    expect(t).toEqual({
      granularity: 'location',
      hostname: 'eu-1',
      location: 'location:eu',
      port: 51820,
      leader: false,
      persistentKeepalive: 0,
      privateIP: '192.168.1.1/24',
      subnet: '10.2.1.0/24',
      wireGuardCIDR: '10.4.0.0/16',
      serviceCIDRs: [],
      peers: [],
      discoveredEndpoints: {},
      segments: [
        {
          location: 'location:ap',
          group: 'location:ap',
          allowedIPs: ['10.2.5.0/24', '192.168.5.1/32', '10.4.0.1/32'],
          endpoint: { ip: '10.1.5.1', port: 51820 },
          key: testKey('ap-1'),
          persistentKeepalive: 0,
          cidrs: ['10.2.5.0/24'],
          hostnames: ['ap-1'],
          leader: 0,
          privateIPs: ['192.168.5.1'],
          cniCompatibilityIPs: ['10.2.5.1/32'],
          wireGuardIP: '10.4.0.1',
          allowedLocationIPs: [],
        },
        {
          location: 'location:eu',
          group: 'location:eu',
          allowedIPs: ['10.2.1.0/24', '192.168.1.1/32', '10.2.2.0/24', '192.168.2.1/32', '10.4.0.2/32'],
          endpoint: { ip: '203.0.113.2', port: 51821 },
          key: testKey('eu-2'),
          persistentKeepalive: 5,
          cidrs: ['10.2.1.0/24', '10.2.2.0/24'],
          hostnames: ['eu-1', 'eu-2'],
          leader: 1,
          privateIPs: ['192.168.1.1', '192.168.2.1'],
          cniCompatibilityIPs: [undefined, undefined],
          wireGuardIP: '10.4.0.2',
          allowedLocationIPs: [],
        },
        {
          location: 'location:us',
          group: 'location:us',
          allowedIPs: ['10.2.3.0/24', '192.168.3.1/32', '10.2.4.0/24', '192.168.4.1/32', '10.4.0.3/32'],
          endpoint: { ip: '10.1.3.1', port: 51820 },
          key: testKey('us-1'),
          persistentKeepalive: 0,
          cidrs: ['10.2.3.0/24', '10.2.4.0/24'],
          hostnames: ['us-1', 'us-2'],
          leader: 0,
          privateIPs: ['192.168.3.1', '192.168.4.1'],
          cniCompatibilityIPs: [undefined, undefined],
          wireGuardIP: '10.4.0.3',
          allowedLocationIPs: [],
        },
      ],
    });
  });

  it('the public leader of eu has the WireGuard CIDR', () => {
    const t = newTopology({
      nodes,
      peers: {},
      granularity: 'location',
      hostname: 'eu-2',
      port: 51821,
      subnet: '10.4.0.0/16',
    });
    expect([t.leader, t.wireGuardCIDR, t.persistentKeepalive, t.port]).toEqual([
      true,
      '10.4.0.2/16',
      5,
      51821,
    ]);
  });

  it('full granularity keeps the location as the group', () => {
    const t = newTopology({
      nodes,
      peers: {},
      granularity: 'full',
      hostname: 'eu-1',
      port: 51820,
      subnet: '10.4.0.0/16',
    });
    expect(t.segments.map((s) => [s.location, s.group, s.wireGuardIP])).toEqual([
      ['node:ap-1', 'location:ap', '10.4.0.1'],
      ['node:eu-1', 'location:eu', '10.4.0.2'],
      ['node:eu-2', 'location:eu', '10.4.0.3'],
      ['node:us-1', 'location:us', '10.4.0.4'],
      ['node:us-2', 'location:us', '10.4.0.5'],
    ]);
    expect([t.leader, t.wireGuardCIDR]).toEqual([true, '10.4.0.2/16']);
  });
});

describe('newTopology: NAT nodes (keepalive and discovered endpoints)', () => {
  const nodes: Record<string, KiloNode> = {
    a: node('a', {
      endpoint: { ip: '203.0.113.1', port: 51820 },
      internalIP: '192.168.1.1/24',
      location: 'cloud',
      subnet: '10.2.1.0/24',
      key: key1,
      discoveredEndpoints: { [key3]: { ip: '198.51.100.30', port: 40000 } },
    }),
    b: node('b', {
      endpoint: { ip: '192.168.2.1', port: 51820 },
      internalIP: '192.168.2.1/24',
      location: 'home',
      subnet: '10.2.2.0/24',
      key: key2,
      persistentKeepalive: 25,
      discoveredEndpoints: {
        [key3]: { ip: '198.51.100.99', port: 1 },
        [key5]: { ip: '198.51.100.50', port: 50000 },
      },
    }),
    c: node('c', {
      endpoint: { ip: '192.168.3.1', port: 51820 },
      internalIP: '192.168.3.1/24',
      location: 'office',
      subnet: '10.2.3.0/24',
      key: key3,
      persistentKeepalive: 10,
      discoveredEndpoints: { [key2]: { ip: '198.51.100.20', port: 20000 } },
    }),
  };

  it.each([
    {
      name: 'from the public node: its own discoveries first, then segment and member order',
      hostname: 'a',
      keepalive: 0,
      discovered: {
        [key3]: { ip: '198.51.100.30', port: 40000 },
        [key5]: { ip: '198.51.100.50', port: 50000 },
        [key2]: { ip: '198.51.100.20', port: 20000 },
      },
    },
    {
      name: 'from a NAT node: its own first, even over an earlier segment’s',
      hostname: 'c',
      keepalive: 10,
      discovered: {
        [key2]: { ip: '198.51.100.20', port: 20000 },
        [key3]: { ip: '198.51.100.30', port: 40000 },
        [key5]: { ip: '198.51.100.50', port: 50000 },
      },
    },
  ])('$name', ({ hostname, keepalive, discovered }) => {
    const t = newTopology({
      nodes,
      peers: {},
      granularity: 'location',
      hostname,
      port: 51820,
      subnet: '10.4.0.0/16',
    });
    expect(t.discoveredEndpoints).toEqual(discovered);
    expect(Object.keys(t.discoveredEndpoints)).toEqual(Object.keys(discovered));
    expect(t.persistentKeepalive).toBe(keepalive);
    expect(t.segments.map((s) => s.persistentKeepalive)).toEqual([0, 25, 10]);
  });
});

describe('newTopology: demotion (knet) moves a segment’s leader', () => {
  const members = (probes: Partial<Record<string, KiloNode['leaderProbe']>>): Record<string, KiloNode> =>
    Object.fromEntries(
      ['a', 'b', 'c'].map((name, i) => {
        const probe = probes[name];
        return [
          name,
          node(name, {
            endpoint: { ip: `10.1.0.${i + 1}`, port: 51820 },
            internalIP: `192.168.0.${i + 1}/24`,
            location: 'x',
            subnet: `10.2.${i + 1}.0/24`,
            key: testKey(name),
            lastSeen: 1000,
            ...(probe ? { leaderProbe: probe } : {}),
          }),
        ];
      }),
    );

  it.each([
    { name: 'no reports: Kilo picks a', probes: {}, now: undefined, leader: 0, local: { a: true, b: false } },
    {
      name: 'b and c report a unhealthy: b leads, on every node',
      probes: {
        b: { leader: 'a', healthy: false, since: 990 },
        c: { leader: 'a', healthy: false, since: 995 },
      },
      now: 1010,
      leader: 1,
      local: { a: false, b: true },
    },
    {
      name: 'the reports are stale (reporters not seen for 60 s): a stays',
      probes: {
        b: { leader: 'a', healthy: false, since: 990 },
        c: { leader: 'a', healthy: false, since: 995 },
      },
      now: 1060,
      leader: 0,
      local: { a: true, b: false },
    },
  ])('$name', ({ probes, now, leader, local }) => {
    for (const [hostname, isLeader] of Object.entries(local)) {
      const t = newTopology({
        nodes: members(probes),
        peers: {},
        granularity: 'location',
        hostname,
        port: 51820,
        subnet: '10.4.0.0/16',
        ...(now !== undefined ? { now } : {}),
      });
      expect(t.segments[0]?.leader).toBe(leader);
      expect(t.segments[0]?.key).toBe(testKey(['a', 'b', 'c'][leader] ?? ''));
      expect(t.leader).toBe(isLeader);
      expect(t.wireGuardCIDR).toBe(isLeader ? '10.4.0.1/16' : '10.4.0.0/16');
    }
  });
});

describe('newTopology: stable WireGuard IPs (knet) vs Kilo sort order', () => {
  const site = (name: string, location: string, i: number, wireGuardIP?: string): KiloNode =>
    node(name, {
      endpoint: { ip: `10.1.0.${i}`, port: 51820 },
      internalIP: `192.168.${i}.1/24`,
      location,
      subnet: `10.2.${i}.0/24`,
      key: testKey(name),
      ...(wireGuardIP ? { wireGuardIP } : {}),
    });
  const build = (nodes: KiloNode[], stableWireGuardIPs?: boolean): Record<string, string> => {
    const t = newTopology({
      nodes: Object.fromEntries(nodes.map((n) => [n.name, n])),
      peers: {},
      granularity: 'location',
      hostname: 'm',
      port: 51820,
      subnet: '10.4.0.0/16',
      ...(stableWireGuardIPs !== undefined ? { stableWireGuardIPs } : {}),
    });
    return Object.fromEntries(t.segments.map((s) => [s.location, s.wireGuardIP]));
  };
  // Two running locations whose leaders published what they were given: m → .1, s → .2.
  const m = site('m', 'm', 1, '10.4.0.1/16');
  const s = site('s', 's', 2, '10.4.0.2/16');

  it('adding a location that sorts first renumbers in Kilo, not by default', () => {
    const a = site('a', 'a', 3);
    expect(build([m, s, a], false)).toEqual({
      'location:a': '10.4.0.1',
      'location:m': '10.4.0.2',
      'location:s': '10.4.0.3',
    });
    expect(build([m, s, a])).toEqual({
      'location:a': '10.4.0.3',
      'location:m': '10.4.0.1',
      'location:s': '10.4.0.2',
    });
  });

  it('removing a location that sorted first renumbers in Kilo, not by default', () => {
    const a = site('a', 'a', 3, '10.4.0.1/16');
    const m2 = site('m', 'm', 1, '10.4.0.2/16');
    const s3 = site('s', 's', 2, '10.4.0.3/16');
    expect(build([a, m2, s3], false)).toEqual(build([a, m2, s3]));
    expect(build([m2, s3], false)).toEqual({ 'location:m': '10.4.0.1', 'location:s': '10.4.0.2' });
    expect(build([m2, s3])).toEqual({ 'location:m': '10.4.0.2', 'location:s': '10.4.0.3' });
  });

  it('two leaders publishing the same IP: the earlier segment keeps it', () => {
    const s1 = site('s', 's', 2, '10.4.0.1/16');
    expect(build([m, s1])).toEqual({ 'location:m': '10.4.0.1', 'location:s': '10.4.0.2' });
    const m5 = site('m', 'm', 1, '10.4.0.5/16');
    const s5 = site('s', 's', 2, '10.4.0.5/16');
    expect(build([m5, s5])).toEqual({ 'location:m': '10.4.0.5', 'location:s': '10.4.0.2' });
  });

  it('a published IP outside the subnet is ignored', () => {
    expect(build([site('m', 'm', 1, '10.9.0.7/16'), site('s', 's', 2, '10.4.0.1/16')])).toEqual({
      'location:m': '10.4.0.2',
      'location:s': '10.4.0.1',
    });
    expect(build([site('m', 'm', 1, '10.9.0.7/16'), site('s', 's', 2)])).toEqual({
      'location:m': '10.4.0.1',
      'location:s': '10.4.0.2',
    });
  });

  it('only the leader’s published address counts, and it shows in allowed IPs and the WireGuard CIDR', () => {
    const follower = site('n', 'm', 4, '10.4.0.9/16');
    const t = newTopology({
      nodes: { m: site('m', 'm', 1, '10.4.0.7/16'), n: follower },
      peers: {},
      granularity: 'location',
      hostname: 'm',
      port: 51820,
      subnet: '10.4.0.0/16',
    });
    expect(t.segments[0]?.allowedIPs).toEqual([
      '10.2.1.0/24',
      '192.168.1.1/32',
      '10.2.4.0/24',
      '192.168.4.1/32',
      '10.4.0.7/32',
    ]);
    expect(t.wireGuardCIDR).toBe('10.4.0.7/16');
  });
});

describe('newTopology: cross granularity (Kilo PR #328/#490, knet)', () => {
  it.each([
    {
      name: 'from a: per-node segments, grouped by location, every node its own leader',
      hostname: 'a',
      result: expected({
        granularity: 'cross',
        hostname: 'a',
        location: 'node:a',
        leader: true,
        wireGuardCIDR: '10.4.0.1/16',
        segments: fullSegments,
      }),
    },
    {
      name: 'from c (a non-leader of location 2 in location granularity): still a leader',
      hostname: 'c',
      result: expected({
        granularity: 'cross',
        hostname: 'c',
        location: 'node:c',
        leader: true,
        wireGuardCIDR: '10.4.0.3/16',
        segments: fullSegments,
      }),
    },
  ])('$name', ({ hostname, result }) => {
    expect(newTopology(fixtureInput({ granularity: 'cross', hostname }))).toEqual(result);
  });

  it('two nodes of one location: both lead, same group', () => {
    const two = { b: fixtureNodes.b as KiloNode, c: fixtureNodes.c as KiloNode };
    for (const hostname of ['b', 'c']) {
      const t = newTopology(fixtureInput({ granularity: 'cross', hostname, nodes: two }));
      expect(t.leader).toBe(true);
      expect(t.segments.map((s) => [s.location, s.group, s.leader, s.wireGuardIP])).toEqual([
        ['node:b', 'location:2', 0, '10.4.0.1'],
        ['node:c', 'location:2', 0, '10.4.0.2'],
      ]);
    }
  });
});

describe('nodeReady / peerReady (Kilo Node.Ready, Peer.Ready)', () => {
  const ready = fixtureNodes.a as KiloNode;
  it.each([
    { name: 'ready', node: { ...ready, lastSeen: 1000 }, now: 1059, out: true },
    { name: 'last-seen 60 s ago', node: { ...ready, lastSeen: 1000 }, now: 1060, out: false },
    {
      name: 'DNS endpoint',
      node: { ...ready, lastSeen: 1000, endpoint: { dns: 'a.example.com', port: 51820 } },
      now: 1000,
      out: true,
    },
    { name: 'no endpoint', node: { ...ready, lastSeen: 1000, endpoint: undefined }, now: 1000, out: false },
    {
      name: 'endpoint port 0',
      node: { ...ready, lastSeen: 1000, endpoint: { ip: '10.1.0.1', port: 0 } },
      now: 1000,
      out: false,
    },
    { name: 'no key', node: { ...ready, lastSeen: 1000, key: undefined }, now: 1000, out: false },
    {
      name: 'zero key (Go wgtypes.Key{})',
      node: { ...ready, lastSeen: 1000, key: Buffer.alloc(32).toString('base64') },
      now: 1000,
      out: false,
    },
    { name: 'no pod subnet', node: { ...ready, lastSeen: 1000, subnet: undefined }, now: 1000, out: false },
    {
      name: 'no internal IP is fine',
      node: { ...(fixtureNodes.d as KiloNode), lastSeen: 1000 },
      now: 1000,
      out: true,
    },
  ])('node: $name → $out', ({ node: n, now, out }) => {
    expect(nodeReady(n, now)).toBe(out);
  });

  it.each([
    { name: 'ready', peer: fixturePeers.b as KiloPeer, out: true },
    { name: 'no allowed IPs', peer: { ...(fixturePeers.b as KiloPeer), allowedIPs: [] }, out: false },
    { name: 'no key', peer: { ...(fixturePeers.b as KiloPeer), publicKey: '' }, out: false },
    { name: 'no endpoint is fine', peer: fixturePeers.a as KiloPeer, out: true },
  ])('peer: $name → $out', ({ peer, out }) => {
    expect(peerReady(peer)).toBe(out);
  });
});
