import type { RouteSpec, RuleSpec } from '@knet/host-net';
import { planRoutes, RoutePlanError, type RouteOptions } from './routes';
import type { KiloPeer, Segment, Topology } from './types';

/*
 * Kilo's fixture (pkg/mesh/topology_test.go `setup`), as NewTopology turns it into topologies:
 * a (location 1, 192.168.0.1/32, keepalive 25), b (location 2, also 192.168.0.1/32 — as in Kilo's
 * fixture —, allowed location IP 192.168.178.3/32), c (location 2, 192.168.0.2/32), d (location 1,
 * no internal IP, so its own segment); endpoints 10.1.0.1-4 (all private, so b leads location 2);
 * peers a (10.5.0.1/24, 10.5.0.2/24) and b (10.5.0.3/24).
 */
const A = '192.168.0.1';
const B = '192.168.0.1';
const C = '192.168.0.2';
const W1 = '10.4.0.1';
const W2 = '10.4.0.2';
const W3 = '10.4.0.3';
const W4 = '10.4.0.4';
const ALIP_B = '192.168.178.3/32';
const port = 51820;

const peers: KiloPeer[] = [
  { name: 'a', allowedIPs: ['10.5.0.1/24', '10.5.0.2/24'], publicKey: 'key4' },
  { name: 'b', allowedIPs: ['10.5.0.3/24'], publicKey: 'key5', endpoint: { ip: '192.168.0.1', port } },
];

function segment(
  s: Partial<Segment> & Pick<Segment, 'location' | 'group' | 'wireGuardIP' | 'hostnames'>,
): Segment {
  return {
    allowedIPs: [],
    key: '',
    persistentKeepalive: 0,
    cidrs: [],
    leader: 0,
    privateIPs: [],
    cniCompatibilityIPs: s.hostnames.map(() => undefined),
    allowedLocationIPs: [],
    ...s,
  };
}

const logicalSegments: Segment[] = [
  segment({
    location: 'location:1',
    group: 'location:1',
    allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
    endpoint: { ip: '10.1.0.1', port },
    key: 'key1',
    persistentKeepalive: 25,
    cidrs: ['10.2.1.0/24'],
    hostnames: ['a'],
    privateIPs: [A],
    wireGuardIP: W1,
  }),
  segment({
    location: 'location:2',
    group: 'location:2',
    allowedIPs: ['10.2.2.0/24', '192.168.0.1/32', '10.2.3.0/24', '192.168.0.2/32', '10.4.0.2/32'],
    endpoint: { ip: '10.1.0.2', port },
    key: 'key2',
    cidrs: ['10.2.2.0/24', '10.2.3.0/24'],
    hostnames: ['b', 'c'],
    privateIPs: [B, C],
    wireGuardIP: W2,
    allowedLocationIPs: [ALIP_B],
  }),
  segment({
    location: 'node:d',
    group: 'node:d',
    allowedIPs: ['10.2.4.0/24', '10.4.0.3/32'],
    endpoint: { ip: '10.1.0.4', port },
    key: 'key4',
    cidrs: ['10.2.4.0/24'],
    hostnames: ['d'],
    wireGuardIP: W3,
  }),
];

const fullSegments: Segment[] = [
  segment({
    location: 'node:a',
    group: 'location:1',
    allowedIPs: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
    endpoint: { ip: '10.1.0.1', port },
    key: 'key1',
    persistentKeepalive: 25,
    cidrs: ['10.2.1.0/24'],
    hostnames: ['a'],
    privateIPs: [A],
    wireGuardIP: W1,
  }),
  segment({
    location: 'node:b',
    group: 'location:2',
    allowedIPs: ['10.2.2.0/24', '192.168.0.1/32', '10.4.0.2/32'],
    endpoint: { ip: '10.1.0.2', port },
    key: 'key2',
    cidrs: ['10.2.2.0/24'],
    hostnames: ['b'],
    privateIPs: [B],
    wireGuardIP: W2,
    allowedLocationIPs: [ALIP_B],
  }),
  segment({
    location: 'node:c',
    group: 'location:2',
    allowedIPs: ['10.2.3.0/24', '192.168.0.2/32', '10.4.0.3/32'],
    endpoint: { ip: '10.1.0.3', port },
    key: 'key3',
    cidrs: ['10.2.3.0/24'],
    hostnames: ['c'],
    privateIPs: [C],
    wireGuardIP: W3,
  }),
  segment({
    location: 'node:d',
    group: 'node:d',
    allowedIPs: ['10.2.4.0/24', '10.4.0.4/32'],
    endpoint: { ip: '10.1.0.4', port },
    key: 'key4',
    cidrs: ['10.2.4.0/24'],
    hostnames: ['d'],
    wireGuardIP: W4,
  }),
];

const base = { port, serviceCIDRs: [], peers, discoveredEndpoints: {} };

/** Kilo's topology_test.go results ("logical from a/b/c", "full from a/b/c") plus d's, as NewTopology builds them. */
const topo = {
  logical: {
    a: {
      ...base,
      granularity: 'location',
      hostname: 'a',
      location: 'location:1',
      leader: true,
      persistentKeepalive: 25,
      privateIP: `${A}/32`,
      subnet: '10.2.1.0/24',
      wireGuardCIDR: '10.4.0.1/16',
      segments: logicalSegments,
    },
    b: {
      ...base,
      granularity: 'location',
      hostname: 'b',
      location: 'location:2',
      leader: true,
      persistentKeepalive: 0,
      privateIP: `${B}/32`,
      subnet: '10.2.2.0/24',
      wireGuardCIDR: '10.4.0.2/16',
      segments: logicalSegments,
    },
    c: {
      ...base,
      granularity: 'location',
      hostname: 'c',
      location: 'location:2',
      leader: false,
      persistentKeepalive: 0,
      privateIP: `${C}/32`,
      subnet: '10.2.3.0/24',
      wireGuardCIDR: '10.4.0.0/16',
      segments: logicalSegments,
    },
    d: {
      ...base,
      granularity: 'location',
      hostname: 'd',
      location: 'node:d',
      leader: true,
      persistentKeepalive: 0,
      subnet: '10.2.4.0/24',
      wireGuardCIDR: '10.4.0.3/16',
      segments: logicalSegments,
    },
  },
  full: {
    a: {
      ...base,
      granularity: 'full',
      hostname: 'a',
      location: 'node:a',
      leader: true,
      persistentKeepalive: 25,
      privateIP: `${A}/32`,
      subnet: '10.2.1.0/24',
      wireGuardCIDR: '10.4.0.1/16',
      segments: fullSegments,
    },
    b: {
      ...base,
      granularity: 'full',
      hostname: 'b',
      location: 'node:b',
      leader: true,
      persistentKeepalive: 0,
      privateIP: `${B}/32`,
      subnet: '10.2.2.0/24',
      wireGuardCIDR: '10.4.0.2/16',
      segments: fullSegments,
    },
    c: {
      ...base,
      granularity: 'full',
      hostname: 'c',
      location: 'node:c',
      leader: true,
      persistentKeepalive: 0,
      privateIP: `${C}/32`,
      subnet: '10.2.3.0/24',
      wireGuardCIDR: '10.4.0.3/16',
      segments: fullSegments,
    },
  },
} satisfies Record<string, Record<string, Topology>>;

// Kilo's test uses link indices 0 (kilo0), 1 (private) and 2 (tunnel).
const ifaces = { kiloIface: 'kilo0', privIface: 'eth1', tunlIface: 'tunl0' };
const opts = (
  local: boolean,
  strategy: RouteOptions['strategy'],
  more: Partial<RouteOptions> = {},
): RouteOptions => ({
  ...ifaces,
  local,
  strategy,
  compatibility: '',
  ...more,
});

/** A route over kilo0 to a segment's WireGuard IP (leader). */
const wg = (dst: string, via: string, src?: string): RouteSpec => ({
  dst,
  via,
  dev: 'kilo0',
  ...(src ? { src } : {}),
  onlink: true,
  protocol: 'static',
});
/** A peer's allowed IP on kilo0, no gateway (leader). */
const peer = (dst: string, src?: string): RouteSpec => ({
  dst,
  dev: 'kilo0',
  ...(src ? { src } : {}),
  protocol: 'static',
});
/** A route over the private network (or the tunnel, with src). */
const lan = (dst: string, via: string | undefined, dev = 'eth1', src?: string): RouteSpec => ({
  dst,
  ...(via ? { via } : {}),
  dev,
  ...(src ? { src } : {}),
  onlink: true,
  protocol: 'static',
});
const t1107 = (dst: string, via: string, src?: string, dev = 'tunl0'): RouteSpec => ({
  dst,
  via,
  dev,
  ...(src ? { src } : {}),
  table: 1107,
  onlink: true,
  protocol: 'static',
});
const fromRule = (from: string, to: string): RuleSpec => ({
  from,
  to,
  table: 1107,
  priority: 32765,
  protocol: 'static',
});
const iifRule = (to: string, iif = 'kilo0'): RuleSpec => ({
  to,
  iif,
  table: 1107,
  priority: 32765,
  protocol: 'static',
});

const peersVia = (src?: string): RouteSpec[] => [
  peer('10.5.0.1/24', src),
  peer('10.5.0.2/24', src),
  peer('10.5.0.3/24', src),
];
const peersLan = (dev = 'eth1', src?: string): RouteSpec[] =>
  ['10.5.0.1/24', '10.5.0.2/24', '10.5.0.3/24'].map((d) => lan(d, B, dev, src));

const logicalFromA = [
  wg('10.2.2.0/24', W2, A),
  wg('192.168.0.1/32', W2, A),
  wg('10.2.3.0/24', W2, A),
  wg('192.168.0.2/32', W2, A),
  wg(ALIP_B, W2, A),
  wg('10.2.4.0/24', W3, A),
  ...peersVia(A),
];
const fullFromA = [
  wg('10.2.2.0/24', W2, A),
  wg('192.168.0.1/32', W2, A),
  wg(ALIP_B, W2, A),
  wg('10.2.3.0/24', W3, A),
  wg('192.168.0.2/32', W3, A),
  wg('10.2.4.0/24', W4, A),
  ...peersVia(A),
];
const fullFromB = [
  wg('10.2.1.0/24', W1, B),
  wg('192.168.0.1/32', W1, B),
  wg('10.2.3.0/24', W3, B),
  wg('192.168.0.2/32', W3, B),
  wg('10.2.4.0/24', W4, B),
  ...peersVia(B),
];
const fullFromC = [
  wg('10.2.1.0/24', W1, C),
  wg('192.168.0.1/32', W1, C),
  wg('10.2.2.0/24', W2, C),
  wg('192.168.0.1/32', W2, C),
  wg(ALIP_B, W2, C),
  wg('10.2.4.0/24', W4, C),
  ...peersVia(C),
];

describe("planRoutes: Kilo's routes_test.go (TestRoutes, 16 cases)", () => {
  it.each<[string, Topology, RouteOptions, RouteSpec[], RuleSpec[]]>([
    ['logical from a', topo.logical.a, opts(false, 'never'), logicalFromA, []],
    [
      'logical from b',
      topo.logical.b,
      opts(false, 'never'),
      [wg('10.2.1.0/24', W1, B), wg('192.168.0.1/32', W1, B), wg('10.2.4.0/24', W3, B), ...peersVia(B)],
      [],
    ],
    [
      'logical from c',
      topo.logical.c,
      opts(false, 'never'),
      [
        lan('10.4.0.1/32', B),
        lan('10.2.1.0/24', B),
        lan('192.168.0.1/32', B),
        lan('10.4.0.2/32', B),
        lan('10.4.0.3/32', B),
        lan('10.2.4.0/24', B),
        ...peersLan(),
      ],
      [],
    ],
    [
      'logical from d',
      topo.logical.d,
      opts(false, 'never'),
      [
        wg('10.2.1.0/24', W1),
        wg('192.168.0.1/32', W1),
        wg('10.2.2.0/24', W2),
        wg('192.168.0.1/32', W2),
        wg('10.2.3.0/24', W2),
        wg('192.168.0.2/32', W2),
        wg(ALIP_B, W2),
        ...peersVia(),
      ],
      [],
    ],
    ['full from a', topo.full.a, opts(false, 'never'), fullFromA, []],
    ['full from b', topo.full.b, opts(false, 'never'), fullFromB, []],
    ['full from c', topo.full.c, opts(false, 'never'), fullFromC, []],
    ['logical from a local', topo.logical.a, opts(true, 'never'), logicalFromA, []],
    ['logical from a local always', topo.logical.a, opts(true, 'always'), logicalFromA, []],
    [
      'logical from b local',
      topo.logical.b,
      opts(true, 'never'),
      [
        wg('10.2.1.0/24', W1, B),
        wg('192.168.0.1/32', W1, B),
        lan('10.2.3.0/24', C),
        wg('10.2.4.0/24', W3, B),
        ...peersVia(B),
      ],
      [],
    ],
    [
      'logical from b local always',
      topo.logical.b,
      opts(true, 'always'),
      [
        wg('10.2.1.0/24', W1, B),
        wg('192.168.0.1/32', W1, B),
        lan('10.2.3.0/24', C, 'tunl0', B),
        t1107('192.168.0.2/32', C, B),
        wg('10.2.4.0/24', W3, B),
        ...peersVia(B),
      ],
      [fromRule('10.2.2.0/24', '192.168.0.2/32'), iifRule('192.168.0.2/32')],
    ],
    [
      'logical from c local',
      topo.logical.c,
      opts(true, 'never'),
      [
        lan('10.4.0.1/32', B),
        lan('10.2.1.0/24', B),
        lan('192.168.0.1/32', B),
        lan('10.4.0.2/32', B),
        lan('10.2.2.0/24', B),
        lan('10.4.0.3/32', B),
        lan('10.2.4.0/24', B),
        ...peersLan(),
      ],
      [],
    ],
    [
      'logical from c local always',
      topo.logical.c,
      opts(true, 'always'),
      [
        lan('10.4.0.1/32', B, 'tunl0', C),
        lan('10.2.1.0/24', B, 'tunl0', C),
        lan('192.168.0.1/32', B, 'tunl0', C),
        lan('10.4.0.2/32', B, 'tunl0', C),
        lan('10.2.2.0/24', B, 'tunl0', C),
        t1107('192.168.0.1/32', B, C),
        lan('10.4.0.3/32', B, 'tunl0', C),
        lan('10.2.4.0/24', B, 'tunl0', C),
        ...peersLan('tunl0', C),
      ],
      [fromRule('10.2.3.0/24', '192.168.0.1/32')],
    ],
    ['full from a local', topo.full.a, opts(true, 'never'), fullFromA, []],
    ['full from b local', topo.full.b, opts(true, 'never'), fullFromB, []],
    ['full from c local', topo.full.c, opts(true, 'never'), fullFromC, []],
  ])('%s', (_name, t, o, routes, rules) => {
    expect(planRoutes(t, o)).toEqual({ routes, rules });
  });
});

/** One location `lan` of three nodes on two subnets (leader l), plus a remote location `far` of one node. */
function lanTopology(host: 'l' | 'm1' | 'm2', more: Partial<Segment> = {}): Topology {
  const local = segment({
    location: 'location:lan',
    group: 'location:lan',
    allowedIPs: [
      '10.2.1.0/24',
      '192.168.1.10/32',
      '10.2.2.0/24',
      '192.168.1.11/32',
      '10.2.3.0/24',
      '192.168.2.12/32',
      '10.4.0.2/32',
    ],
    endpoint: { ip: '203.0.113.10', port },
    key: 'key-l',
    cidrs: ['10.2.1.0/24', '10.2.2.0/24', '10.2.3.0/24'],
    hostnames: ['l', 'm1', 'm2'],
    privateIPs: ['192.168.1.10', '192.168.1.11', '192.168.2.12'],
    cniCompatibilityIPs: ['10.2.1.7/32', undefined, '10.2.3.7/32'],
    wireGuardIP: '10.4.0.2',
    ...more,
  });
  const far = segment({
    location: 'location:far',
    group: 'location:far',
    allowedIPs: ['10.2.9.0/24', '172.16.0.9/32', '10.4.0.1/32'],
    endpoint: { ip: '198.51.100.9', port },
    key: 'key-far',
    cidrs: ['10.2.9.0/24'],
    hostnames: ['far'],
    privateIPs: ['172.16.0.9'],
    wireGuardIP: '10.4.0.1',
  });
  const own = {
    l: ['192.168.1.10/24', '10.2.1.0/24'],
    m1: ['192.168.1.11/24', '10.2.2.0/24'],
    m2: ['192.168.2.12/24', '10.2.3.0/24'],
  }[host];
  return {
    granularity: 'location',
    hostname: host,
    location: 'location:lan',
    port,
    leader: host === 'l',
    persistentKeepalive: 0,
    privateIP: own[0],
    subnet: own[1],
    wireGuardCIDR: host === 'l' ? '10.4.0.2/16' : '10.4.0.0/16',
    serviceCIDRs: [],
    segments: [far, local],
    peers: [],
    discoveredEndpoints: {},
  };
}

const L = '192.168.1.10';
const M1 = '192.168.1.11';
const M2 = '192.168.2.12';
const farRoutes = (src: string): RouteSpec[] => [
  wg('10.2.9.0/24', '10.4.0.1', src),
  wg('172.16.0.9/32', '10.4.0.1', src),
];

describe('planRoutes: encapsulation strategies and compatibility', () => {
  it('crosssubnet: the member in the leader subnet is routed directly, the other one through tunl0 and table 1107', () => {
    expect(planRoutes(lanTopology('l'), opts(true, 'crosssubnet'))).toEqual({
      routes: [
        ...farRoutes(L),
        lan('10.2.2.0/24', M1),
        lan('10.2.3.0/24', M2, 'tunl0', L),
        t1107(`${M2}/32`, M2, L),
      ],
      rules: [fromRule('10.2.1.0/24', `${M2}/32`), iifRule(`${M2}/32`)],
    });
  });

  it('crosssubnet from a member: the leader (same subnet) directly, the member of the other subnet through tunl0', () => {
    expect(planRoutes(lanTopology('m1'), opts(true, 'crosssubnet'))).toEqual({
      routes: [
        lan('10.4.0.1/32', L),
        lan('10.2.9.0/24', L),
        lan('172.16.0.9/32', L),
        lan('10.4.0.2/32', L),
        lan('10.2.1.0/24', L),
        lan('10.2.3.0/24', M2, 'tunl0', M1),
        t1107(`${M2}/32`, M2, M1),
      ],
      rules: [fromRule('10.2.2.0/24', `${M2}/32`)],
    });
  });

  it('crosssubnet from the member outside the leader subnet: everything via the leader goes through tunl0', () => {
    const { routes } = planRoutes(lanTopology('m2'), opts(true, 'crosssubnet'));
    expect(routes.filter((r) => r.table === undefined).every((r) => r.dev === 'tunl0' && r.src === M2)).toBe(
      true,
    );
    expect(routes.map((r) => r.dst)).toEqual([
      '10.4.0.1/32',
      '10.2.9.0/24',
      '172.16.0.9/32',
      '10.4.0.2/32',
      '10.2.1.0/24',
      `${L}/32`,
      '10.2.2.0/24',
      `${M1}/32`,
    ]);
  });

  it('flannel: members are reached via their pod CIDR base on flannel.1 (the encapsulator interface)', () => {
    const o = opts(true, 'always', { compatibility: 'flannel', tunlIface: undefined });
    expect(planRoutes(lanTopology('l'), o)).toEqual({
      routes: [
        ...farRoutes(L),
        lan('10.2.2.0/24', '10.2.2.0', 'flannel.1', L),
        t1107(`${M1}/32`, '10.2.2.0', L, 'flannel.1'),
        lan('10.2.3.0/24', '10.2.3.0', 'flannel.1', L),
        t1107(`${M2}/32`, '10.2.3.0', L, 'flannel.1'),
      ],
      rules: [
        fromRule('10.2.1.0/24', `${M1}/32`),
        iifRule(`${M1}/32`),
        fromRule('10.2.1.0/24', `${M2}/32`),
        iifRule(`${M2}/32`),
      ],
    });
    // A member's gateway is the leader's pod CIDR base.
    expect(
      planRoutes(lanTopology('m1'), opts(false, 'never', { compatibility: 'flannel' })).routes[0],
    ).toEqual(lan('10.4.0.1/32', '10.2.1.0'));
  });

  it("cilium: a member's cilium_host IP when it published one, else its pod CIDR base", () => {
    const { routes } = planRoutes(lanTopology('l'), opts(true, 'never', { compatibility: 'cilium' }));
    expect(routes.slice(2)).toEqual([lan('10.2.2.0/24', '10.2.2.0'), lan('10.2.3.0/24', '10.2.3.7')]);
    expect(
      planRoutes(lanTopology('m1'), opts(false, 'never', { compatibility: 'cilium' })).routes[0],
    ).toEqual(lan('10.4.0.1/32', '10.2.1.7'));
  });

  it('a leader without --local routes return traffic over the overlay for flannel/cilium members, not for IPIP', () => {
    expect(planRoutes(lanTopology('l'), opts(false, 'always', { compatibility: 'cilium' }))).toEqual({
      routes: [...farRoutes(L), t1107(`${M1}/32`, '10.2.2.0'), t1107(`${M2}/32`, '10.2.3.7')],
      rules: [iifRule(`${M1}/32`), iifRule(`${M2}/32`)],
    });
    expect(planRoutes(lanTopology('l'), opts(false, 'always'))).toEqual({ routes: farRoutes(L), rules: [] });
    expect(planRoutes(lanTopology('l'), opts(false, 'never', { compatibility: 'cilium' }))).toEqual({
      routes: farRoutes(L),
      rules: [],
    });
  });

  it('a member needs the private interface', () => {
    const o: RouteOptions = { kiloIface: 'kilo0', local: true, strategy: 'never', compatibility: '' };
    expect(() => planRoutes(lanTopology('m1'), o)).toThrow(RoutePlanError);
    expect(() => planRoutes(lanTopology('m1'), o)).toThrow(
      'route to 10.4.0.1/32 goes over the private interface: pass privIface',
    );
  });
});

describe('planRoutes: endpoints, allowed location IPs, peers, IPv6', () => {
  it("skips a remote member's private IP when it is the segment's endpoint, discovered endpoints included", () => {
    const t = lanTopology('l');
    const far = { ...t.segments[0]!, endpoint: { ip: '172.16.0.9', port } };
    expect(planRoutes({ ...t, segments: [far, t.segments[1]!] }, opts(false, 'never')).routes).toEqual([
      wg('10.2.9.0/24', '10.4.0.1', L),
    ]);
    // Behind NAT (keepalive): the endpoint seen on the device counts, not the declared one.
    const natted = { ...t.segments[0]!, persistentKeepalive: 25 };
    const seen = { 'key-far': { ip: '172.16.0.9', port: 4500 } };
    expect(
      planRoutes(
        { ...t, segments: [natted, t.segments[1]!], discoveredEndpoints: seen },
        opts(false, 'never'),
      ).routes,
    ).toEqual([wg('10.2.9.0/24', '10.4.0.1', L)]);
    // Without a keepalive the discovered endpoint is ignored.
    expect(planRoutes({ ...t, discoveredEndpoints: seen }, opts(false, 'never')).routes).toEqual(
      farRoutes(L),
    );
  });

  it("routes remote allowed location IPs and peers, never the local location's allowed location IPs", () => {
    const t = lanTopology('l', { allowedLocationIPs: ['192.168.50.0/24'] });
    const far = { ...t.segments[0]!, allowedLocationIPs: ['172.20.0.0/16'] };
    const withPeer = {
      ...t,
      segments: [far, t.segments[1]!],
      peers: [{ name: 'laptop', allowedIPs: ['10.10.10.10/32'], publicKey: 'k' }],
    };
    expect(planRoutes(withPeer, opts(false, 'never')).routes).toEqual([
      ...farRoutes(L),
      wg('172.20.0.0/16', '10.4.0.1', L),
      peer('10.10.10.10/32', L),
    ]);
    expect(
      planRoutes(
        { ...withPeer, hostname: 'm1', leader: false, privateIP: `${M1}/24`, subnet: '10.2.2.0/24' },
        opts(false, 'never'),
      ).routes,
    ).toEqual([
      lan('10.4.0.1/32', L),
      lan('10.2.9.0/24', L),
      lan('172.16.0.9/32', L),
      lan('172.20.0.0/16', L),
      lan('10.4.0.2/32', L),
      lan('10.10.10.10/32', L),
    ]);
  });

  it('IPv6: host routes are /128, rules and table-1107 routes are IPv6', () => {
    const local = segment({
      location: 'location:v6',
      group: 'location:v6',
      allowedIPs: [],
      endpoint: { ip: '2001:db8::10', port },
      key: 'k6',
      cidrs: ['fd10:2:1::/64', 'fd10:2:2::/64'],
      hostnames: ['p', 'q'],
      privateIPs: ['2001:db8:1::10', '2001:db8:2::11'],
      wireGuardIP: '10.4.0.2',
    });
    const far = segment({
      location: 'location:w',
      group: 'location:w',
      endpoint: { ip: '2001:db8:9::9', port },
      key: 'kw',
      cidrs: ['fd10:2:9::/64'],
      hostnames: ['w'],
      privateIPs: ['2001:db8:9::99'],
      wireGuardIP: '10.4.0.1',
    });
    const t: Topology = {
      granularity: 'location',
      hostname: 'p',
      location: 'location:v6',
      port,
      leader: true,
      persistentKeepalive: 0,
      privateIP: '2001:db8:1::10/64',
      subnet: 'fd10:2:1::/64',
      wireGuardCIDR: '10.4.0.2/16',
      serviceCIDRs: [],
      segments: [far, local],
      peers: [{ name: 'v6', allowedIPs: ['2001:db8:ffff::/48'], publicKey: 'kp' }],
      discoveredEndpoints: {},
    };
    const P = '2001:db8:1::10';
    const Q = '2001:db8:2::11';
    expect(planRoutes(t, opts(true, 'crosssubnet'))).toEqual({
      routes: [
        wg('fd10:2:9::/64', '10.4.0.1', P),
        wg('2001:db8:9::99/128', '10.4.0.1', P),
        lan('fd10:2:2::/64', Q, 'tunl0', P),
        t1107(`${Q}/128`, Q, P),
        peer('2001:db8:ffff::/48', P),
      ],
      rules: [fromRule('fd10:2:1::/64', `${Q}/128`), iifRule(`${Q}/128`)],
    });
  });
});

describe('planRoutes: cross granularity', () => {
  /**
   * x1 and x2 share location A (192.168.1.0/24), y is location B and z location C. In `cross`
   * every node leads its own `node:` segment; the segments' group is their location.
   */
  const node = (name: string, group: string, i: number, privateIP: string): Segment =>
    segment({
      location: `node:${name}`,
      group,
      allowedIPs: [`10.2.${i}.0/24`, `${privateIP}/32`, `10.4.0.${i}/32`],
      endpoint: { ip: `203.0.113.${i}`, port },
      key: `key-${name}`,
      cidrs: [`10.2.${i}.0/24`],
      hostnames: [name],
      privateIPs: [privateIP],
      wireGuardIP: `10.4.0.${i}`,
    });
  const t: Topology = {
    granularity: 'cross',
    hostname: 'x1',
    location: 'node:x1',
    port,
    leader: true,
    persistentKeepalive: 0,
    privateIP: '192.168.1.1/24',
    subnet: '10.2.1.0/24',
    wireGuardCIDR: '10.4.0.1/16',
    serviceCIDRs: [],
    segments: [
      node('x1', 'location:A', 1, '192.168.1.1'),
      node('x2', 'location:A', 2, '192.168.1.2'),
      node('y', 'location:B', 3, '172.16.3.3'),
      { ...node('z', 'location:C', 4, '172.16.4.4'), allowedLocationIPs: ['192.168.40.0/24'] },
    ],
    peers: [{ name: 'laptop', allowedIPs: ['10.10.10.10/32'], publicKey: 'k' }],
    discoveredEndpoints: {},
  };
  const X1 = '192.168.1.1';
  const X2 = '192.168.1.2';
  const remote = [
    wg('10.2.3.0/24', '10.4.0.3', X1),
    wg('172.16.3.3/32', '10.4.0.3', X1),
    wg('10.2.4.0/24', '10.4.0.4', X1),
    wg('172.16.4.4/32', '10.4.0.4', X1),
    wg('192.168.40.0/24', '10.4.0.4', X1),
    peer('10.10.10.10/32', X1),
  ];

  it('reaches the other node of its location over the private network, IPIP always', () => {
    expect(planRoutes(t, opts(true, 'always'))).toEqual({
      routes: [
        lan('10.4.0.2/32', X2, 'tunl0', X1),
        lan('10.2.2.0/24', X2, 'tunl0', X1),
        t1107(`${X2}/32`, X2, X1),
        ...remote,
      ],
      rules: [fromRule('10.2.1.0/24', `${X2}/32`), iifRule(`${X2}/32`)],
    });
  });

  it('same subnet with crosssubnet, or never: direct routes, no table 1107', () => {
    const direct = { routes: [lan('10.4.0.2/32', X2), lan('10.2.2.0/24', X2), ...remote], rules: [] };
    expect(planRoutes(t, opts(true, 'crosssubnet'))).toEqual(direct);
    expect(planRoutes(t, opts(true, 'never'))).toEqual(direct);
  });

  it('without --local only the other locations are routed', () => {
    expect(planRoutes(t, opts(false, 'never'))).toEqual({ routes: remote, rules: [] });
  });
});
