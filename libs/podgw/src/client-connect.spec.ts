/**
 * A client pod's steps on @knet/host-net's in-memory fakes: finding the pod network's gateway,
 * isolating the pod, connecting to the gateway with a static address or a DHCP lease from a real
 * DhcpServer on an in-memory network, the gateway moving, and what fails how.
 */
import { DhcpServer, DhcpTimeoutError, FakeDhcpNetwork, type DhcpLease } from '@knet/dhcp';
import { CommandNotFoundError, FakePinger } from '@knet/host-net';
import { errorMessage, silentLogger } from '@knet/runtime';
import { until } from '@knet/testing';
import {
  LeaseRefusedError,
  checkLease,
  connectToGateway,
  dhcpClientFor,
  discoverFacts,
  isolatePod,
} from './client-connect';
import { planClient } from './client-plan';
import {
  createFakeClientPod,
  startFakeGatewayDhcp,
  type FakeClientPod,
  type FakeClientPodOptions,
} from './fake-pods';
import { GatewayUnreachableError } from './gateway-locate';
import { loadSettings } from './settings';

/** The pod, its facts and plan, as client-init computes them. */
async function client(options: FakeClientPodOptions = {}) {
  const pod = await createFakeClientPod(options);
  const facts = await discoverFacts(pod.ctx);
  return { ...pod, facts, plan: planClient(pod.ctx.settings, pod.ctx.nat, facts) };
}

/** Our routes (protocol 77) as `dst via gw dev` lines. */
async function ourRoutes(pod: FakeClientPod, family: 'inet' | 'inet6' = 'inet'): Promise<string[]> {
  return (await pod.net.ip.listRoutes({ family }))
    .filter((r) => r.protocol === '77')
    .map((r) => [r.dst, r.gateway && `via ${r.gateway}`, `dev ${r.dev}`].filter(Boolean).join(' '));
}

/** Our INPUT chain's rules as the client should have them for the gateway pod `ip`. */
const guardFor = (ip: string) => [
  `-A KNET-PGW-IN -s ${ip}/32 -i eth0 -p udp -m udp --dport 4789 -j ACCEPT`,
  '-A KNET-PGW-IN -p udp -m udp --dport 4789 -j DROP',
  '-A KNET-PGW-IN -i vxlan0 -p udp -m udp --dport 68 -j ACCEPT',
  '-A KNET-PGW-IN -p udp -m udp --dport 68 -j DROP',
];

/** Our INPUT chain's rules (IPv4). */
const inputGuard = async (pod: FakeClientPod) =>
  (await pod.net.iptables.listRules('filter')).split('\n').filter((l) => l.startsWith('-A KNET-PGW-IN '));

const defaults = async (pod: FakeClientPod, family: 'inet' | 'inet6') =>
  (await pod.net.ip.listRoutes({ family })).filter((r) => r.dst === 'default').map((r) => r.dev);

describe('discoverFacts: the pod network gateway', () => {
  it.each([
    ['from the default routes', {}, '192.0.2.1', '2001:db8::1'],
    [
      'K8S_DEFAULT_GW (IPv4) overrides the IPv4 one',
      { K8S_DEFAULT_GW: '192.0.2.254' },
      '192.0.2.254',
      '2001:db8::1',
    ],
    [
      'K8S_DEFAULT_GW (IPv6) overrides the IPv6 one',
      { K8S_DEFAULT_GW: '2001:db8::fe' },
      '192.0.2.1',
      '2001:db8::fe',
    ],
  ])('%s', async (_what, env, v4, v6) => {
    const { facts } = await client({ env });
    expect(facts).toMatchObject({ podInterface: 'eth0', podGateway4: v4, podGateway6: v6 });
  });

  it('on a second run, with the default routes gone, from the routes we kept', async () => {
    const c = await client({ env: { NOT_ROUTED_TO_GATEWAY_CIDRS: '198.51.100.0/28 2001:db8:1::/48' } });
    await isolatePod(c.ctx, c.plan, c.facts);
    expect(await defaults(c, 'inet')).toEqual([]);
    expect(await discoverFacts(c.ctx)).toEqual(c.facts);
  });

  it('none: no default route and nothing of ours', async () => {
    const c = await createFakeClientPod();
    await c.net.ip.deleteRoute({ dst: 'default', via: '192.0.2.1' });
    expect((await discoverFacts(c.ctx)).podGateway4).toBeUndefined();
  });
});

describe('isolatePod', () => {
  it('keeps NOT_ROUTED and the cluster DNS on the pod network, removes the default routes, guards IPv6', async () => {
    const c = await client({
      env: { NOT_ROUTED_TO_GATEWAY_CIDRS: '198.51.100.0/28 10.96.0.0/12 2001:db8:1::/48' },
    });
    expect(await isolatePod(c.ctx, c.plan, c.facts)).toEqual([
      'route 198.51.100.0/28 via 192.0.2.1 dev eth0: missing',
      'route 10.96.0.0/12 via 192.0.2.1 dev eth0: missing',
      'route 2001:db8:1::/48 via 2001:db8::1 dev eth0: missing',
      'route 198.51.100.10 via 192.0.2.1 dev eth0: missing',
      'deleted default route via 192.0.2.1',
      'deleted IPv6 default route via 2001:db8::1',
      'ip6tables: missing-chain KNET-PGW-V6, jumps OUTPUT',
    ]);
    expect(await ourRoutes(c)).toEqual([
      '198.51.100.0/28 via 192.0.2.1 dev eth0',
      '10.96.0.0/12 via 192.0.2.1 dev eth0',
      '198.51.100.10 via 192.0.2.1 dev eth0',
    ]);
    expect(await ourRoutes(c, 'inet6')).toEqual(['2001:db8:1::/48 via 2001:db8::1 dev eth0']);
    expect([await defaults(c, 'inet'), await defaults(c, 'inet6')]).toEqual([[], []]);
    expect((await c.net.ip6tables.listRules('filter')).split('\n')).toEqual(
      expect.arrayContaining([
        '-A OUTPUT -j KNET-PGW-V6',
        '-A KNET-PGW-V6 -o lo -j ACCEPT',
        '-A KNET-PGW-V6 -d 2001:db8:1::/48 -j ACCEPT',
        '-A KNET-PGW-V6 -j REJECT --reject-with icmp6-adm-prohibited',
      ]),
    );
    expect(await isolatePod(c.ctx, c.plan, c.facts)).toEqual([]);
  });

  it("skips a NOT_ROUTED CIDR that is the pod's own subnet: the kernel's on-link route stays", async () => {
    // A bridge CNI whose pod CIDR is the node's subnet: replacing the connected route with one via
    // the pod gateway left that gateway off-link, and the next route via it failed (real node).
    const pod = await createFakeClientPod({
      env: { NOT_ROUTED_TO_GATEWAY_CIDRS: '192.0.2.0/24 10.96.0.0/12' },
    });
    const connected = (await pod.net.ip.listRoutes({ family: 'inet' })).filter(
      (r) => r.protocol === 'kernel',
    );
    const facts = await discoverFacts(pod.ctx);
    expect(facts.connected).toContainEqual({ dst: '192.0.2.0/24', dev: 'eth0' });
    await isolatePod(pod.ctx, planClient(pod.ctx.settings, undefined, facts), facts);
    expect(await ourRoutes(pod)).toEqual([
      '10.96.0.0/12 via 192.0.2.1 dev eth0',
      '198.51.100.10 via 192.0.2.1 dev eth0',
    ]);
    expect((await pod.net.ip.listRoutes({ family: 'inet' })).filter((r) => r.protocol === 'kernel')).toEqual(
      connected,
    );
  });

  it('leaves a default route over vxlan0 (ours, from an earlier run) alone', async () => {
    const c = await client({ hostname: 'web-0', natConf: 'web 10' });
    await isolatePod(c.ctx, c.plan, c.facts);
    await connectToGateway(c.ctx, c.plan, c.facts);
    expect(await isolatePod(c.ctx, c.plan, c.facts)).toEqual([]);
    expect(await defaults(c, 'inet')).toEqual(['vxlan0']);
  });

  it('without a pod network gateway: a GatewayUnreachableError that says what to set, nothing changed', async () => {
    const c = await createFakeClientPod();
    await c.net.ip.deleteRoute({ dst: 'default', via: '192.0.2.1' });
    const facts = await discoverFacts(c.ctx);
    const err = await isolatePod(c.ctx, planClient(c.ctx.settings, undefined, facts), facts).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayUnreachableError);
    expect(errorMessage(err)).toBe(
      "cannot find the pod network's gateway: no default route on eth0 and K8S_DEFAULT_GW is not set",
    );
    expect(await defaults(c, 'inet6')).toEqual(['eth0']);
  });
});

describe('connectToGateway with a static address (nat.conf)', () => {
  const options = { hostname: 'web-0', natConf: 'web 10 tcp:8080:80' };

  it('routes the pod over vxlan0 to the gateway pod, checks it answers, and changes nothing the second time', async () => {
    const c = await client(options);
    await isolatePod(c.ctx, c.plan, c.facts);
    const conn = await connectToGateway(c.ctx, c.plan, c.facts);
    expect(conn).toEqual({
      gatewayIp: '192.0.2.10',
      address: '172.16.0.10/24',
      lease: undefined,
      changes: [
        'iptables: missing-chain KNET-PGW-IN, jumps INPUT',
        'link vxlan0 (vxlan id 42 dstport 4789 dev eth0): missing',
        'fdb 00:00:00:00:00:00 dst 192.0.2.10 dev vxlan0: missing',
        'route 192.0.2.10 via 192.0.2.1 dev eth0: missing',
        'address 172.16.0.10/24 dev vxlan0: missing',
        'route default via 172.16.0.1 dev vxlan0: missing',
      ],
    });
    expect(await c.net.ip.getLink('vxlan0')).toMatchObject({
      up: true,
      vxlan: { id: 42, port: 4789, dev: 'eth0', learning: false },
    });
    expect(await c.net.fdb.list({ dev: 'vxlan0' })).toEqual([
      { mac: '00:00:00:00:00:00', dev: 'vxlan0', dst: '192.0.2.10', flags: ['self'], state: 'permanent' },
    ]);
    expect(c.net.ping.sent).toEqual([{ address: '172.16.0.1', device: 'vxlan0' }]);
    // One route protocol per concern: the way to the gateway pod, the default route over vxlan0.
    const byProtocol = (await c.net.ip.listRoutes()).map((r) => `${r.protocol ?? '-'} ${r.dst} ${r.dev}`);
    expect(byProtocol.filter((r) => /^7[89] /.test(r)).sort()).toEqual([
      '78 192.0.2.10 eth0',
      '79 default vxlan0',
    ]);

    expect((await connectToGateway(c.ctx, c.plan, c.facts)).changes).toEqual([]);
  });

  /** A client connected to its gateway, with a neighbour entry for NET.1 (the gateway's vxlan0 MAC). */
  async function connectedWithNeighbour() {
    const c = await client(options);
    await isolatePod(c.ctx, c.plan, c.facts);
    await connectToGateway(c.ctx, c.plan, c.facts);
    await c.net.ip.replaceNeighbour({
      dst: '172.16.0.1',
      dev: 'vxlan0',
      lladdr: '02:00:5e:00:53:01',
      nud: 'reachable',
    });
    return c;
  }

  it('the gateway pod moved: the flood entry and the route follow it, stale neighbours are forgotten', async () => {
    const c = await connectedWithNeighbour();
    c.ctx.settings.gatewayName = '192.0.2.11';
    const conn = await connectToGateway(c.ctx, c.plan, c.facts);
    expect(conn.gatewayIp).toBe('192.0.2.11');
    expect(conn.changes).toEqual([
      'iptables: chain-rules KNET-PGW-IN',
      'fdb 00:00:00:00:00:00 dst 192.0.2.11 dev vxlan0: missing',
      'fdb 00:00:00:00:00:00 dst 192.0.2.10 dev vxlan0: not desired',
      'neighbour 172.16.0.1 on vxlan0 forgotten',
      'route 192.0.2.11 via 192.0.2.1 dev eth0: missing',
      'route 192.0.2.10 via 192.0.2.1 dev eth0: not desired',
    ]);
    expect((await c.net.fdb.list({ dev: 'vxlan0' })).map((e) => e.dst)).toEqual(['192.0.2.11']);
    expect(await c.net.ip.listNeighbours({ dev: 'vxlan0' })).toEqual([]);
    // The overlay is now taken from the new gateway pod only.
    expect(await inputGuard(c)).toEqual(guardFor('192.0.2.11'));
  });

  it('the overlay only from the gateway pod: an INPUT guard in our chain, before vxlan0 exists', async () => {
    const c = await client(options);
    const order: string[] = [];
    const restore = c.net.iptables.restore.bind(c.net.iptables);
    jest.spyOn(c.net.iptables, 'restore').mockImplementation(async (payload) => {
      order.push('iptables');
      return restore(payload);
    });
    const addVxlan = c.net.ip.addVxlan.bind(c.net.ip);
    jest.spyOn(c.net.ip, 'addVxlan').mockImplementation(async (...args) => {
      order.push('vxlan0');
      return addVxlan(...args);
    });
    await connectToGateway(c.ctx, c.plan, c.facts);
    expect(order).toEqual(['iptables', 'vxlan0']);
    expect((await c.net.iptables.listRules('filter')).split('\n')).toContain('-A INPUT -j KNET-PGW-IN');
    expect(await inputGuard(c)).toEqual(guardFor('192.0.2.10'));
  });

  it('the gateway re-created with its old pod IP: its old MAC (neighbour of NET.1) is forgotten', async () => {
    const c = await connectedWithNeighbour();
    const conn = await connectToGateway(c.ctx, c.plan, c.facts);
    expect(conn.gatewayIp).toBe('192.0.2.10');
    expect(conn.changes).toEqual(['neighbour 172.16.0.1 on vxlan0 forgotten']);
    expect(await c.net.ip.listNeighbours({ dev: 'vxlan0' })).toEqual([]);
  });

  it('the gateway does not answer: CONNECTION_RETRY_COUNT pings, then a GatewayUnreachableError with what to check', async () => {
    const c = await client({ ...options, env: { CONNECTION_RETRY_COUNT: '3' }, gatewayAnswers: false });
    await isolatePod(c.ctx, c.plan, c.facts);
    const err = await connectToGateway(c.ctx, c.plan, c.facts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayUnreachableError);
    expect(errorMessage(err)).toBe(
      'gateway 172.16.0.1 (pod 192.0.2.10) does not answer over vxlan0: ' +
        "is UDP 4789 allowed between pods, this pod's IP in the gateway's VXLAN_CLIENT_CIDRS, and VXLAN_ID 42 the same on the gateway?",
    );
    expect(c.net.ping.sent).toEqual(Array(3).fill({ address: '172.16.0.1', device: 'vxlan0' }));
    // Routed (over the overlay) but not through a gateway that answers: nothing leaks meanwhile.
    expect(await defaults(c, 'inet')).toEqual(['vxlan0']);
  });

  it('no ping in the image: the CommandNotFoundError naming the package, not "unreachable"', async () => {
    const c = await client(options);
    const net = { ...c.net, ping: new FakePinger({ installed: false }) };
    const err = await connectToGateway({ ...c.ctx, net }, c.plan, c.facts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandNotFoundError);
    expect(errorMessage(err)).toMatch(
      /^ping: command not found \(install the Debian package "iputils-ping"\)/,
    );
  });

  it.each([
    [
      '',
      'GATEWAY_NAME is empty: set it (or the webhook\'s "gateway" env var) to the gateway pod\'s DNS name',
    ],
    ['2001:db8::10', 'GATEWAY_NAME 2001:db8::10: the overlay runs over IPv4; give an IPv4 address or a name'],
  ])('GATEWAY_NAME %j: a GatewayUnreachableError before anything changes', async (name, message) => {
    const c = await client(options);
    c.ctx.settings.gatewayName = name;
    await expect(connectToGateway(c.ctx, c.plan, c.facts)).rejects.toThrow(
      new GatewayUnreachableError(message),
    );
    expect(await c.net.ip.findLink('vxlan0')).toBeUndefined();
  });
});

describe('connectToGateway with a DHCP lease', () => {
  let network: FakeDhcpNetwork;
  let server: DhcpServer;

  beforeEach(async () => {
    ({ network, server } = await startFakeGatewayDhcp({ mtu: 1380 }));
  });
  afterEach(() => server.stop());

  it('takes a lease, uses its router and MTU, and keeps the address on the next run', async () => {
    const c = await client({ dhcp: network });
    await isolatePod(c.ctx, c.plan, c.facts);
    const conn = await connectToGateway(c.ctx, c.plan, c.facts);
    expect(conn.address).toBe('172.16.0.20/24');
    expect(conn.lease).toMatchObject({
      address: '172.16.0.20',
      router: '172.16.0.1',
      serverId: '172.16.0.1',
      mtu: 1380,
    });
    expect(conn.changes).toEqual([
      'iptables: missing-chain KNET-PGW-IN, jumps INPUT',
      'link vxlan0 (vxlan id 42 dstport 4789 dev eth0): missing',
      'fdb 00:00:00:00:00:00 dst 192.0.2.10 dev vxlan0: missing',
      'route 192.0.2.10 via 192.0.2.1 dev eth0: missing',
      'route 255.255.255.255 dev vxlan0: missing',
      'vxlan0 mtu 1380 (from DHCP)',
      'address 172.16.0.20/24 dev vxlan0: missing',
      'route default via 172.16.0.1 dev vxlan0: missing',
    ]);
    // The pod's hostname and stable client id reached the server.
    expect(server.pool.activeLeases(Date.now())).toEqual([
      expect.objectContaining({
        ip: '172.16.0.20',
        hostname: 'client-0',
        clientKey: `id:00${Buffer.from('client-0').toString('hex')}`,
      }),
    ]);

    const again = await connectToGateway(c.ctx, c.plan, c.facts);
    expect([again.address, again.changes]).toEqual(['172.16.0.20/24', []]);
  });

  it('one pod name in two namespaces: a lease each, and one RELEASE frees only its own', async () => {
    const [a, b] = [
      await client({ dhcp: network, namespace: 'team-a' }),
      await client({ dhcp: network, namespace: 'team-b' }),
    ];
    const leases = [];
    for (const c of [a, b]) {
      await isolatePod(c.ctx, c.plan, c.facts);
      leases.push((await connectToGateway(c.ctx, c.plan, c.facts)).lease!);
    }
    expect(leases.map((l) => l.address)).toEqual(['172.16.0.20', '172.16.0.21']);
    const id = (ns: string) => `id:00${Buffer.from(`${ns}/client-0`).toString('hex')}`;
    const active = () =>
      server.pool
        .activeLeases(Date.now())
        .map((l) => [l.ip, l.clientKey])
        .sort();
    expect(active()).toEqual([
      ['172.16.0.20', id('team-a')],
      ['172.16.0.21', id('team-b')],
    ]);
    // team-a's pod goes away and releases its lease: team-b's stays.
    a.dhcpHost.addresses.add(leases[0]!.address); // a pod sends from its overlay address, as the kernel does
    await (await dhcpClientFor(a.ctx)).release(leases[0]!);
    await until('the RELEASE to reach the server', () => active().length === 1);
    expect(active()).toEqual([['172.16.0.21', id('team-b')]]);
  });

  it('VPN_INTERFACE_MTU set: the MTU from DHCP does not override it', async () => {
    const c = await client({ dhcp: network, env: { VPN_INTERFACE_MTU: '1400' } });
    await isolatePod(c.ctx, c.plan, c.facts);
    const conn = await connectToGateway(c.ctx, c.plan, c.facts);
    expect(conn.changes).not.toContain('vxlan0 mtu 1380 (from DHCP)');
    expect((await c.net.ip.getLink('vxlan0')).mtu).toBe(1400);
  });

  it.each([
    [
      'an address outside the overlay',
      { serverAddress: '10.9.0.1', pool: { network: '10.9.0.0/24', leaseTimeSec: 3600 } },
      'refused the DHCP lease 10.9.0.20/24 router 10.9.0.1 from 10.9.0.1 on vxlan0: the address is outside the overlay 172.16.0.0/24 (VXLAN_IP_NETWORK); ' +
        'is VXLAN_IP_NETWORK the same on the gateway, or another DHCP server answering on the overlay?',
    ],
    [
      'a router other than the gateway',
      {
        serverAddress: '172.16.0.99',
        router: '172.16.0.99',
        pool: { network: '172.16.0.0/24', leaseTimeSec: 3600 },
      },
      'refused the DHCP lease 172.16.0.20/24 router 172.16.0.99 from 172.16.0.99 on vxlan0: the router must be the gateway 172.16.0.1; ' +
        'is VXLAN_IP_NETWORK the same on the gateway, or another DHCP server answering on the overlay?',
    ],
    [
      'another prefix length',
      { serverAddress: '172.16.0.1', pool: { network: '172.16.0.0/16', leaseTimeSec: 3600 } },
      'refused the DHCP lease 172.16.0.20/16 router 172.16.0.1 from 172.16.0.1 on vxlan0: the overlay is a /24, not a /16; ' +
        'is VXLAN_IP_NETWORK the same on the gateway, or another DHCP server answering on the overlay?',
    ],
  ])(
    'a lease the gateway cannot have given (%s): refused, no address and no default route',
    async (_what, rogue, message) => {
      await server.stop();
      const other = new FakeDhcpNetwork();
      const impostor = new DhcpServer({
        ...rogue,
        logger: silentLogger,
        socketFactory: other.host('impostor', rogue.serverAddress).socketFactory,
      });
      await impostor.start();
      try {
        const c = await client({ dhcp: other });
        await isolatePod(c.ctx, c.plan, c.facts);
        const err = await connectToGateway(c.ctx, c.plan, c.facts).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(LeaseRefusedError);
        expect(errorMessage(err)).toBe(message);
        expect(await c.net.ip.listAddresses({ dev: 'vxlan0', family: 'inet' })).toEqual([]);
        expect(await defaults(c, 'inet')).toEqual([]);
      } finally {
        await impostor.stop();
      }
    },
  );

  it('no DHCP server: a DhcpTimeoutError that says what was sent and heard', async () => {
    await server.stop();
    const c = await client({ dhcp: network, dhcpTimeoutMs: 300 });
    await isolatePod(c.ctx, c.plan, c.facts);
    const err = await connectToGateway(c.ctx, c.plan, c.facts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DhcpTimeoutError);
    expect(errorMessage(err)).toMatch(
      /^vxlan0: no DHCP lease within 300 ms: sent \d+ DISCOVER; heard 0 OFFER, 0 ACK, 0 NAK; no OFFER: either the server has no free address .* or it is unreachable over vxlan0 .*\)$/,
    );
    // Isolated, no default route anywhere.
    expect(await defaults(c, 'inet')).toEqual([]);
  });
});

describe('checkLease', () => {
  const settings = loadSettings({ env: { VXLAN_IP_NETWORK: '10.200.7' } }).settings;
  const lease = (address: string, extra: Partial<DhcpLease> = {}): DhcpLease => ({
    interface: 'vxlan0',
    address,
    prefixLength: 24,
    subnetMask: '255.255.255.0',
    router: '10.200.7.1',
    dnsServers: ['10.200.7.1'],
    serverId: '10.200.7.1',
    leaseTimeSec: 3600,
    t1: 1800,
    t2: 3150,
    obtainedAt: 0,
    ...extra,
  });

  it.each([
    ['10.200.7.2', {}],
    ['10.200.7.254', {}],
    ['10.200.7.20', { router: undefined }],
  ])('takes %s %j', (address, extra) => {
    expect(() => checkLease(settings, lease(address, extra))).not.toThrow();
  });

  it.each([
    ['10.200.8.20', {}, 'the address is outside the overlay 10.200.7.0/24 (VXLAN_IP_NETWORK)'],
    ['10.200.7.1', {}, "10.200.7.1 is the overlay's network, broadcast or gateway address"],
    ['10.200.7.0', {}, "10.200.7.0 is the overlay's network, broadcast or gateway address"],
    ['10.200.7.255', {}, "10.200.7.255 is the overlay's network, broadcast or gateway address"],
    ['10.200.7.20', { prefixLength: 16 }, 'the overlay is a /24, not a /16'],
    ['10.200.7.20', { router: '10.200.7.5' }, 'the router must be the gateway 10.200.7.1'],
  ])('refuses %s %j: %s', (address, extra, why) => {
    expect(() => checkLease(settings, lease(address, extra))).toThrow(LeaseRefusedError);
    expect(() => checkLease(settings, lease(address, extra))).toThrow(`on vxlan0: ${why}; `);
  });
});
