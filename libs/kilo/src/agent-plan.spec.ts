import { generateWireGuardKeyPair } from '@knet/crypto';
import {
  dnsNames,
  localNode,
  planAgent,
  type LocalFacts,
  type PlanInput,
  type PlanOptions,
} from './agent-plan';
import type { KiloNode } from './types';

const NOW = 1_700_000_000;
const keys = { a: generateWireGuardKeyPair(), b: generateWireGuardKeyPair(), c: generateWireGuardKeyPair() };

const facts: LocalFacts = {
  hostname: 'a',
  publicKey: keys.a.publicKey,
  privateKey: keys.a.privateKey,
  externalIP: '198.51.100.1/24',
  internalIP: '192.0.2.1/24',
  port: 51820,
  granularity: 'location',
};

function node(name: string, over: Partial<KiloNode> = {}): KiloNode {
  return {
    name,
    noInternalIP: false,
    lastSeen: NOW,
    leader: false,
    location: 'east',
    persistentKeepalive: 0,
    discoveredEndpoints: {},
    allowedLocationIPs: [],
    ...over,
  };
}

const options: PlanOptions = {
  granularity: 'location',
  subnet: '10.4.0.0/16',
  serviceCIDRs: [],
  stableWireGuardIPs: true,
  strategy: 'always',
  compatibility: '',
  local: true,
  cni: true,
  iptablesForwardRules: false,
  iface: 'kilo0',
  mtu: 1420,
};

describe('localNode (Kilo handleLocal)', () => {
  it.each([
    [
      'no Node yet: everything from the host',
      undefined,
      { endpoint: { ip: '198.51.100.1', port: 51820 }, internalIP: '192.0.2.1/24' },
    ],
    [
      'force-endpoint and force-internal-ip win',
      node('a', { endpoint: { dns: 'a.example.com', port: 51821 }, internalIP: '192.0.2.9/24' }),
      { endpoint: { dns: 'a.example.com', port: 51821 }, internalIP: '192.0.2.9/24' },
    ],
    ['force-internal-ip "-": none', node('a', { noInternalIP: true }), { noInternalIP: true }],
  ])('%s', (_name, observed, want) => {
    const n = localNode(observed, facts, NOW);
    expect(n).toMatchObject({
      name: 'a',
      key: keys.a.publicKey,
      lastSeen: NOW,
      granularity: 'location',
      ...want,
    });
    if (observed?.noInternalIP) expect(n.internalIP).toBeUndefined();
  });

  it('keeps what users set (leader, location, keepalive, allowed-location-ips, pod CIDR)', () => {
    const observed = node('a', {
      leader: true,
      location: 'west',
      persistentKeepalive: 25,
      allowedLocationIPs: ['192.0.2.128/25'],
      subnet: '10.2.1.0/24',
    });
    expect(localNode(observed, facts, NOW)).toMatchObject({
      leader: true,
      location: 'west',
      persistentKeepalive: 25,
      allowedLocationIPs: ['192.0.2.128/25'],
      subnet: '10.2.1.0/24',
    });
  });
});

describe('planAgent', () => {
  const a = localNode(node('a', { subnet: '10.2.1.0/24', internalIP: '192.0.2.1/24' }), facts, NOW);
  const b = node('b', {
    key: keys.b.publicKey,
    endpoint: { ip: '198.51.100.2', port: 51820 },
    internalIP: '192.0.2.2/24',
    subnet: '10.2.2.0/24',
  });
  const c = node('c', {
    key: keys.c.publicKey,
    endpoint: { dns: 'c.example.com', port: 51820 },
    internalIP: '203.0.113.3/24',
    subnet: '10.2.3.0/24',
    location: 'west',
  });
  const input = (over: Partial<PlanInput> = {}): PlanInput => ({
    nodes: [a, b, c],
    peers: [],
    hostname: 'a',
    privateKey: keys.a.privateKey,
    privateInterface: 'eth0',
    discovered: {},
    resolved: new Map([['c.example.com', '203.0.113.3']]),
    now: NOW,
    options,
    ...over,
  });

  it('a leader: device up with its WireGuard CIDR, a peer per other location (DNS resolved), routes split by table, no protocol', () => {
    const p = planAgent(input());
    if (!p.ready) throw new Error(p.reason);
    expect(p.wireGuardIP).toBe('10.4.0.1/16');
    expect(p.datapath.addresses).toEqual(['10.4.0.1/16']);
    expect(p.datapath.wireguard).toMatchObject({ listenPort: 51820, mtu: 1420, up: true });
    expect(p.datapath.wireguard.peers.map((x) => [x.publicKey, x.endpoint])).toEqual([
      [keys.c.publicKey, '203.0.113.3:51820'],
    ]);
    expect(p.datapath.tunnelAddress).toBe('10.2.1.1/32');
    expect(p.datapath.routes.kilo.length).toBeGreaterThan(0);
    for (const r of [...p.datapath.routes.main, ...p.datapath.routes.kilo, ...p.datapath.rules]) {
      expect(r.protocol).toBeUndefined();
    }
    expect(p.datapath.iptables.inet.map((s) => s.table).sort()).toEqual(['filter', 'nat']);
  });

  it('a member: device down, no address, routes via the leader', () => {
    const p = planAgent(
      input({ nodes: [a, b, c].map((n) => (n.name === 'b' ? { ...n, leader: true } : n)) }),
    );
    if (!p.ready) throw new Error(p.reason);
    expect(p.datapath.leader).toBe(false);
    expect(p.datapath.wireguard.up).toBe(false);
    expect(p.datapath.addresses).toEqual([]);
    expect(p.wireGuardIP).toBeUndefined();
    expect(p.datapath.routes.main.some((r) => r.dst === '10.2.3.0/24' && r.via === '192.0.2.2')).toBe(true);
  });

  it.each([
    [
      'the local node is stale',
      [{ ...a, lastSeen: NOW - 61 }, b, c],
      'last seen 61 s ago (kilo.squat.ai/last-seen)',
    ],
    ['the local node is missing', [b, c], 'its Node is not seen yet'],
    [
      'the local node has no pod CIDR',
      [{ ...a, subnet: undefined }, b, c],
      "no pod CIDR (the Node's spec.podCIDR: the controller manager's --allocate-node-cidrs sets it)",
    ],
    [
      'the local node has no key and no endpoint yet',
      [{ ...a, key: '', endpoint: undefined }, b, c],
      'no endpoint yet (kilo.squat.ai/endpoint), no WireGuard key yet (kilo.squat.ai/key)',
    ],
  ])('not ready when %s (nothing applied), and says why', (_n, nodes, why) => {
    const p = planAgent(input({ nodes }));
    expect(p).toMatchObject({ ready: false, reason: `local node a is not ready yet: ${why}` });
  });

  it('--encapsulate never: no tunnel address', () => {
    const p = planAgent(input({ options: { ...options, strategy: 'never' } }));
    expect(p.ready && p.datapath.tunnelAddress).toBeUndefined();
  });

  it('dnsNames lists each DNS endpoint once, sorted', () => {
    expect(
      dnsNames(
        [a, b, c, { ...c, name: 'd' }],
        [
          {
            name: 'p',
            allowedIPs: ['10.5.0.1/32'],
            publicKey: keys.b.publicKey,
            endpoint: { dns: 'p.example.com', port: 1 },
          },
        ],
      ),
    ).toEqual(['c.example.com', 'p.example.com']);
  });
});
