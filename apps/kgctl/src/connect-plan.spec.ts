import {
  ENDPOINT_ANNOTATION,
  GRANULARITY_ANNOTATION,
  INTERNAL_IP_ANNOTATION,
  KEY_ANNOTATION,
  KgctlError,
  LAST_SEEN_ANNOTATION,
  LOCATION_ANNOTATION,
  WIREGUARD_IP_ANNOTATION,
  type NodeInput,
  type PeerResource,
} from '@knet/kilo';
import { clusterView } from './cluster';
import { connectPeer, peerRoutes, planConnect, type ConnectInput } from './connect-plan';

const NOW = 1_700_000_000;
const key = (s: string): string =>
  Buffer.concat([Buffer.from(s), Buffer.alloc(32 - s.length)]).toString('base64');

function node(name: string, loc: string, n: number, extra: Record<string, string> = {}): NodeInput {
  return {
    name,
    podCIDR: `10.2.${n}.0/24`,
    annotations: {
      [KEY_ANNOTATION]: key(`node-${name}`),
      [ENDPOINT_ANNOTATION]: `203.0.113.${n}:51820`,
      [INTERNAL_IP_ANNOTATION]: `192.168.0.${n}/24`,
      [LAST_SEEN_ANNOTATION]: String(NOW),
      [LOCATION_ANNOTATION]: loc,
      [GRANULARITY_ANNOTATION]: 'location',
      [WIREGUARD_IP_ANNOTATION]: '',
      ...extra,
    },
  };
}

const NODES = [
  node('a', 'one', 1, { [WIREGUARD_IP_ANNOTATION]: '10.4.0.1/16' }),
  node('b', 'two', 2, { [WIREGUARD_IP_ANNOTATION]: '10.4.0.2/16' }),
  node('c', 'two', 3),
];
const LAPTOP = connectPeer({
  name: 'laptop',
  allowedIP: '10.10.10.10/32',
  persistentKeepalive: 10,
  publicKey: key('laptop'),
});
const OTHER: PeerResource = {
  metadata: { name: 'other' },
  spec: {
    allowedIPs: ['10.5.0.0/24'],
    publicKey: key('other'),
    endpoint: { dnsOrIP: { ip: '198.51.100.7' }, port: 51820 },
  },
};

function input(over: Partial<ConnectInput> = {}, nodes = NODES, peers = [LAPTOP, OTHER]): ConnectInput {
  return {
    view: clusterView(nodes, peers, 'topology.kubernetes.io/region', NOW),
    peerName: 'laptop',
    granularity: 'auto',
    port: 51820,
    privateKey: key('private'),
    allowedIP: '10.10.10.10/32',
    allowedIPs: [],
    interface: 'kilo0',
    mtu: 1420,
    ...over,
  };
}

const via = (dst: string, gw: string) => ({ dst, via: gw, dev: 'kilo0', onlink: true });
const direct = (dst: string) => ({ dst, dev: 'kilo0' });

describe('connectPeer', () => {
  it('is the Peer Kilo creates: the allowed IP, the keepalive, the public key', () => {
    expect(LAPTOP).toEqual({
      apiVersion: 'kilo.squat.ai/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'laptop' },
      spec: { allowedIPs: ['10.10.10.10/32'], publicKey: key('laptop'), persistentKeepalive: 10 },
    });
    expect(
      connectPeer({ name: 'x', allowedIP: '10.0.0.1/32', persistentKeepalive: 0, publicKey: key('x') }).spec,
    ).not.toHaveProperty('persistentKeepalive');
  });
});

describe('planConnect (Kilo connect sync)', () => {
  it('configures the device as Topology.PeerConf with the private key and --port', () => {
    const plan = planConnect(input());
    expect(plan.device).toEqual({
      privateKey: key('private'),
      listenPort: 51820,
      mtu: 1420,
      up: true,
      peers: [
        {
          publicKey: key('node-a'),
          allowedIps: ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'],
          endpoint: '203.0.113.1:51820',
          persistentKeepalive: 10,
        },
        {
          publicKey: key('node-b'),
          allowedIps: ['10.2.2.0/24', '192.168.0.2/32', '10.2.3.0/24', '192.168.0.3/32', '10.4.0.2/32'],
          endpoint: '203.0.113.2:51820',
          persistentKeepalive: 10,
        },
        {
          publicKey: key('other'),
          allowedIps: ['10.5.0.0/24'],
          endpoint: '198.51.100.7:51820',
          persistentKeepalive: 10,
        },
      ],
    });
    expect(plan.addresses).toEqual(['10.10.10.10/32']);
  });

  it('routes as Topology.PeerRoutes: members via the segment WireGuard IP, WireGuard IPs and other peers on the interface', () => {
    expect(planConnect(input()).routes).toEqual([
      via('10.2.1.0/24', '10.4.0.1'),
      via('192.168.0.1/32', '10.4.0.1'),
      direct('10.4.0.1/32'),
      via('10.2.2.0/24', '10.4.0.2'),
      via('10.2.3.0/24', '10.4.0.2'),
      via('192.168.0.2/32', '10.4.0.2'),
      via('192.168.0.3/32', '10.4.0.2'),
      direct('10.4.0.2/32'),
      direct('10.5.0.0/24'),
    ]);
  });

  it('--allowed-ips join the first node’s allowed-location IPs and are routed via the first segment', () => {
    const plan = planConnect(input({ allowedIPs: ['10.96.0.0/12'] }));
    expect(plan.device.peers[0]?.allowedIps).toEqual([
      '10.2.1.0/24',
      '192.168.0.1/32',
      '10.4.0.1/32',
      '10.96.0.0/12',
    ]);
    expect(plan.routes.at(-1)).toEqual(via('10.96.0.0/12', '10.4.0.1'));
    expect(plan.routes.filter((r) => r.dst === '10.96.0.0/12')).toHaveLength(1);
  });

  it('full granularity: one peer and one WireGuard IP per node', () => {
    const plan = planConnect(input({ granularity: 'full', stableWireGuardIPs: false }));
    expect(plan.device.peers.map((p) => p.publicKey)).toEqual([
      key('node-a'),
      key('node-b'),
      key('node-c'),
      key('other'),
    ]);
    expect(plan.routes).toContainEqual(via('10.2.3.0/24', '10.4.0.3'));
  });

  it.each<[string, Partial<ConnectInput>, NodeInput[], PeerResource[], string, RegExp]>([
    [
      'the Peer does not exist yet',
      {},
      NODES,
      [OTHER],
      'unknown-peer',
      /did not find any peer named "laptop"/,
    ],
    [
      'no node is ready',
      { view: clusterView(NODES, [LAPTOP], 'x', NOW + 600) },
      NODES,
      [],
      'no-nodes',
      /did not find any valid Kilo nodes/,
    ],
    [
      'no node publishes a wireguard-ip',
      {},
      [node('c', 'two', 3)],
      [LAPTOP],
      'no-subnet',
      /did not find a valid Kilo subnet/,
    ],
  ])('fails when %s', (_what, over, nodes, peers, kind, message) => {
    const run = () => planConnect({ ...input({}, nodes, peers), ...over });
    expect(run).toThrow(message);
    try {
      run();
    } catch (e) {
      expect(e instanceof KgctlError && e.kind).toBe(kind);
    }
  });

  it('a route to the same destination twice keeps the last, as ip route replace', () => {
    const t = planConnect(input()).topology;
    const routes = peerRoutes(t, 'nobody', 'wg9', ['10.5.0.0/24']);
    expect(routes.filter((r) => r.dst === '10.5.0.0/24')).toEqual([
      { dst: '10.5.0.0/24', via: '10.4.0.1', dev: 'wg9', onlink: true },
    ]);
    expect(routes).toContainEqual({ dst: '10.10.10.10/32', dev: 'wg9' });
  });

  it('fixed: never routes a leader’s endpoint into the tunnel (its internal IP is its endpoint: no NAT)', () => {
    const t = planConnect(input()).topology;
    const leader = t.segments[0];
    if (!leader?.endpoint?.ip || !leader.privateIPs[0]) throw new Error('fixture: no leader endpoint');
    // As on a network without NAT: the leader's endpoint is its internal IP.
    const same = {
      ...t,
      segments: [
        { ...leader, endpoint: { ...leader.endpoint, ip: leader.privateIPs[0] } },
        ...t.segments.slice(1),
      ],
    };
    const routes = peerRoutes(same, 'nobody', 'wg9', []);
    expect(routes.map((r) => r.dst)).not.toContain(`${leader.privateIPs[0]}/32`);
    expect(peerRoutes(t, 'nobody', 'wg9', []).map((r) => r.dst)).toContain(`${leader.privateIPs[0]}/32`);
  });
});
