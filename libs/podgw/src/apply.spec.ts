/**
 * The gateway's plan applied through @knet/host-net's in-memory fakes: a fresh pod, a drifted one,
 * idempotence, the kill switch's rules and command failures. test/apply.test.ts does the same
 * against the kernel in a network namespace.
 */
import { CommandError, ipArgs, ipFailure, sysctlArgs, type FakeHostNet } from '@knet/host-net';
import { RecordingLogger } from '@knet/runtime';
import { applyGatewayPlan, connectedRoutes, ensureGatewayRules } from './apply';
import { createFakeGatewayPod as gatewayPod } from './fake-pods';
import { planGateway, type GatewayPlan } from './gateway-plan';
import { parseNatConf } from './natconf';
import { loadSettings } from './settings';

const ENV = { VPN_INTERFACE: 'tun0', VPN_TRAFFIC_PORT: '1194', VPN_INTERFACE_MTU: '1400' };

/** The fake gateway pod's connected routes, as discoverGatewayFacts finds them. */
const CONNECTED = [
  { dst: '192.0.2.0/24', dev: 'eth0' },
  { dst: '198.51.100.0/24', dev: 'tun0' },
];

function plan(env: Record<string, string> = ENV, natText = 'web 10 tcp:8080:80', podGateway = '192.0.2.1') {
  const { settings } = loadSettings({ env });
  const nat = parseNatConf(natText, 'nat.conf', { firstDynamicIp: settings.firstDynamicIp });
  return planGateway(settings, nat, { podInterface: 'eth0', podGateway, connected: CONNECTED });
}

/** `-S` of a table without the built-in chains' policies. */
async function rules(net: FakeHostNet, family: 'iptables' | 'ip6tables', table: string): Promise<string[]> {
  return (await net[family].listRules(table)).split('\n').filter((l) => l !== '' && !l.startsWith('-P '));
}

/** Our filter chains and the jumps into them (IPv4 and IPv6): INPUT guard and kill switch. */
const FILTER_CHAINS = [
  '-N KNET-PGW-IN',
  '-N KNET-PGW-FWD',
  '-N KNET-PGW-OUT',
  '-A INPUT -j KNET-PGW-IN',
  '-A FORWARD -j KNET-PGW-FWD',
  '-A OUTPUT -j KNET-PGW-OUT',
];

/** The VXLAN peers of the plan: VPN_LOCAL_CIDRS (default) and the pod interface's subnet. */
const PEERS = ['10.0.0.0/8', '192.168.0.0/16', '192.0.2.0/24'];

/** The INPUT guard (IPv4): DHCP only from vxlan0, VXLAN only from the peers, from the VPN only replies. */
const INPUT_GUARD = [
  '-A KNET-PGW-IN -i vxlan0 -p udp -m udp --dport 67 -j ACCEPT',
  '-A KNET-PGW-IN -p udp -m udp --dport 67 -j DROP',
  ...PEERS.map((c) => `-A KNET-PGW-IN -s ${c} -i eth0 -p udp -m udp --dport 4789 -j ACCEPT`),
  '-A KNET-PGW-IN -p udp -m udp --dport 4789 -j DROP',
  '-A KNET-PGW-IN -i tun0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-A KNET-PGW-IN -i tun0 -j DROP',
];

/** The INPUT guard (IPv6): from the VPN only replies and neighbour discovery. */
const INPUT_GUARD6 = [
  '-A KNET-PGW-IN -i tun0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  ...[133, 134, 135, 136].map(
    (t) => `-A KNET-PGW-IN -i tun0 -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`,
  ),
  '-A KNET-PGW-IN -i tun0 -j DROP',
];

/** The first rules of the kill switch's OUTPUT chain: loopback, VPN, overlay (IPv4: VXLAN to the peers), ports. */
const outFirst = (family: 4 | 6) => [
  '-A KNET-PGW-OUT -o lo -j ACCEPT',
  '-A KNET-PGW-OUT -o tun0 -j ACCEPT',
  '-A KNET-PGW-OUT -o vxlan0 -j ACCEPT',
  ...(family === 4
    ? PEERS.map((c) => `-A KNET-PGW-OUT -d ${c} -o eth0 -p udp -m udp --dport 4789 -j ACCEPT`)
    : []),
  '-A KNET-PGW-OUT -p udp -m udp --dport 1194 -j ACCEPT',
  '-A KNET-PGW-OUT -p tcp -m tcp --dport 1194 -j ACCEPT',
];

/** In this order: the kill switch (filter) before anything that forwards. */
const FRESH_CHANGES = [
  'iptables: missing-chain KNET-PGW-IN, missing-chain KNET-PGW-FWD, missing-chain KNET-PGW-OUT, jumps INPUT, jumps FORWARD, jumps OUTPUT',
  'iptables: FORWARD policy DROP',
  'iptables: OUTPUT policy DROP',
  'ip6tables: missing-chain KNET-PGW-IN, missing-chain KNET-PGW-FWD, missing-chain KNET-PGW-OUT, jumps INPUT, jumps FORWARD, jumps OUTPUT',
  'ip6tables: FORWARD policy DROP',
  'ip6tables: OUTPUT policy DROP',
  'iptables: missing-chain KNET-PGW-POST, missing-chain KNET-PGW-PRE, jumps PREROUTING, jumps POSTROUTING',
  'sysctl net.ipv4.ip_forward=1',
  'link vxlan0 (vxlan id 42 dstport 4789 dev eth0): missing',
  'address 172.16.0.1/24 dev vxlan0: missing',
  'rule pref 50 from all lookup main suppress_prefixlength 0: missing',
  'route 10.0.0.0/8 via 192.0.2.1 dev eth0: missing',
  'route 192.168.0.0/16 via 192.0.2.1 dev eth0: missing',
];

describe('applyGatewayPlan on a fresh gateway pod', () => {
  let net: FakeHostNet;
  beforeEach(async () => {
    net = await gatewayPod();
  });

  it('makes every part of the plan true and reports each change', async () => {
    expect(await applyGatewayPlan(net, plan())).toEqual(FRESH_CHANGES);

    expect(await net.sysctl.get('net.ipv4.ip_forward')).toBe('1');
    expect(await net.ip.getLink('vxlan0')).toMatchObject({
      kind: 'vxlan',
      up: true,
      mtu: 1400,
      vxlan: { id: 42, port: 4789, dev: 'eth0', learning: true },
    });
    expect((await net.ip.listAddresses({ dev: 'vxlan0' })).map((a) => a.cidr)).toEqual(['172.16.0.1/24']);
    expect(await net.ip.listRules()).toContainEqual({
      family: 'inet',
      priority: 50,
      from: 'all',
      table: 'main',
      suppressPrefixLength: 0,
      protocol: '77',
    });
    const ours = (await net.ip.listRoutes()).filter((r) => r.protocol === '77');
    expect(ours.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`)).toEqual([
      '10.0.0.0/8 via 192.0.2.1 dev eth0',
      '192.168.0.0/16 via 192.0.2.1 dev eth0',
    ]);
    expect(await rules(net, 'iptables', 'nat')).toEqual([
      '-N KNET-PGW-POST',
      '-N KNET-PGW-PRE',
      '-A PREROUTING -j KNET-PGW-PRE',
      '-A POSTROUTING -j KNET-PGW-POST',
      '-A KNET-PGW-POST -s 172.16.0.0/24 ! -o vxlan0 -j MASQUERADE',
      '-A KNET-PGW-PRE -i tun0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.16.0.10:80',
    ]);
  });

  it('changes nothing the second time (nor the third)', async () => {
    await applyGatewayPlan(net, plan());
    expect(await applyGatewayPlan(net, plan())).toEqual([]);
    expect(await applyGatewayPlan(net, plan())).toEqual([]);
  });

  it("VPN_LOCAL_CIDRS holding the pod's own subnet: the kernel's connected route stays as it is", async () => {
    const env = { ...ENV, VPN_LOCAL_CIDRS: '192.0.2.0/24 10.0.0.0/8' };
    const { settings } = loadSettings({ env });
    const facts = { podInterface: 'eth0', podGateway: '192.0.2.1', connected: await connectedRoutes(net) };
    expect(facts.connected).toContainEqual({ dst: '192.0.2.0/24', dev: 'eth0' });
    const changes = await applyGatewayPlan(net, planGateway(settings, [], facts));
    expect(changes.filter((c) => c.startsWith('route '))).toEqual([
      'route 10.0.0.0/8 via 192.0.2.1 dev eth0: missing',
    ]);
    const subnet = (await net.ip.listRoutes({ family: 'inet' })).filter((r) => r.dst === '192.0.2.0/24');
    expect(subnet).toEqual([expect.objectContaining({ dev: 'eth0', protocol: 'kernel', scope: 'link' })]);
    expect(subnet[0]?.gateway).toBeUndefined();
  });

  it('a kernel without IPv6 (ipv6.disable=1): no ip6tables at all, one log line, the rest as usual', async () => {
    const get = net.sysctl.get.bind(net.sysctl);
    jest
      .spyOn(net.sysctl, 'get')
      .mockImplementation(async (key) =>
        key.startsWith('net.ipv6.')
          ? ipFailure(
              sysctlArgs.get(key),
              255,
              `sysctl: cannot stat /proc/sys/${key.replace(/\./g, '/')}: No such file or directory`,
              'sysctl',
            )
          : get(key),
      );
    const restore6 = jest.spyOn(net.ip6tables, 'restore');
    const listed6 = jest.spyOn(net.ip6tables, 'listRules');
    const logger = new RecordingLogger();
    const changes = await applyGatewayPlan(net, plan(), logger);
    expect(changes).toEqual(FRESH_CHANGES.filter((c) => !c.startsWith('ip6tables')));
    expect(restore6).not.toHaveBeenCalled();
    expect(listed6).not.toHaveBeenCalled();
    expect(logger.lines.filter((l) => l.msg.includes('IPv6'))).toEqual([
      expect.objectContaining({
        level: 'info',
        msg: 'IPv6 is disabled in this kernel (no net.ipv6 sysctls, ipv6.disable=1): no ip6tables rules needed, none applied',
      }),
    ]);
    expect(await applyGatewayPlan(net, plan(), logger)).toEqual([]);
    // gateway-sidecar re-applies the rules every few seconds: the kernel is asked once, and the
    // missing IPv6 said once.
    expect(await ensureGatewayRules(net, plan(), logger)).toEqual([]);
    const asked = (net.sysctl.get as jest.Mock).mock.calls.filter(([k]) => String(k).startsWith('net.ipv6.'));
    expect(asked).toHaveLength(1);
    expect(logger.lines.filter((l) => l.msg.includes('IPv6'))).toHaveLength(1);
  });

  it('without a pod-network gateway: no VPN_LOCAL_CIDRS routes, everything else', async () => {
    const changes = await applyGatewayPlan(
      net,
      planGateway(loadSettings({ env: ENV }).settings, [], { podInterface: 'eth0', podGateway: undefined }),
    );
    expect(changes.filter((c) => c.startsWith('route '))).toEqual([]);
    expect(changes).toContain('link vxlan0 (vxlan id 42 dstport 4789 dev eth0): missing');
  });
});

describe('the kill switch, as rules in our own chains', () => {
  let net: FakeHostNet;
  beforeEach(async () => {
    net = await gatewayPod();
    await applyGatewayPlan(net, plan());
  });

  it('on: forwarded traffic goes to the VPN, the overlay or VPN_LOCAL_CIDRS, or is dropped', async () => {
    expect(await rules(net, 'iptables', 'filter')).toEqual([
      ...FILTER_CHAINS,
      ...INPUT_GUARD,
      '-A KNET-PGW-FWD -d 172.16.0.10/32 -i tun0 -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A KNET-PGW-FWD -o vxlan0 -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
      '-A KNET-PGW-FWD -i tun0 -j REJECT --reject-with icmp-port-unreachable',
      '-A KNET-PGW-FWD -i vxlan0 -o tun0 -j ACCEPT',
      '-A KNET-PGW-FWD -d 10.0.0.0/8 -j ACCEPT',
      '-A KNET-PGW-FWD -d 192.168.0.0/16 -j ACCEPT',
      '-A KNET-PGW-FWD -j DROP',
      ...outFirst(4),
      '-A KNET-PGW-OUT -d 10.0.0.0/8 -j ACCEPT',
      '-A KNET-PGW-OUT -d 192.168.0.0/16 -j ACCEPT',
      '-A KNET-PGW-OUT -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
      '-A KNET-PGW-OUT -j DROP',
    ]);
    // FORWARD and OUTPUT get the DROP policy too: a flush of the chains (a VPN container's script)
    // leaves the gateway closed until gateway-sidecar puts our jumps back.
    expect(await net.iptables.listRules('filter')).toMatch(/^-P FORWARD DROP\n-P OUTPUT DROP$/m);
  });

  it('on: IPv6 is cut off the same way, neighbour discovery allowed', async () => {
    expect(await rules(net, 'ip6tables', 'filter')).toEqual([
      ...FILTER_CHAINS,
      ...INPUT_GUARD6,
      '-A KNET-PGW-FWD -o vxlan0 -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
      '-A KNET-PGW-FWD -i vxlan0 -o tun0 -j ACCEPT',
      '-A KNET-PGW-FWD -j DROP',
      ...outFirst(6),
      '-A KNET-PGW-OUT -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
      ...[133, 134, 135, 136].map(
        (t) => `-A KNET-PGW-OUT -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`,
      ),
      '-A KNET-PGW-OUT -j DROP',
    ]);
  });

  it('turned off: the OUTPUT chain and the DROPs go, the INPUT guard stays; foreign rules stay', async () => {
    await net.iptables.command(['-A', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'REJECT']);
    const off = plan({ ...ENV, VPN_BLOCK_OTHER_TRAFFIC: 'false' }, '');
    expect(await applyGatewayPlan(net, off)).toEqual([
      'iptables: chain-rules KNET-PGW-FWD, stale-chain KNET-PGW-OUT, jumps OUTPUT',
      'ip6tables: stale-chain KNET-PGW-FWD, stale-chain KNET-PGW-OUT, jumps FORWARD, jumps OUTPUT',
      'iptables: stale-chain KNET-PGW-PRE, jumps PREROUTING',
    ]);
    expect(await rules(net, 'iptables', 'filter')).toEqual([
      '-N KNET-PGW-IN',
      '-N KNET-PGW-FWD',
      '-A INPUT -j KNET-PGW-IN',
      '-A FORWARD -j KNET-PGW-FWD',
      '-A OUTPUT -p tcp -m tcp --dport 25 -j REJECT --reject-with icmp-port-unreachable',
      ...INPUT_GUARD,
      '-A KNET-PGW-FWD -o vxlan0 -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
      '-A KNET-PGW-FWD -i tun0 -j REJECT --reject-with icmp-port-unreachable',
    ]);
    expect(await rules(net, 'ip6tables', 'filter')).toEqual([
      '-N KNET-PGW-IN',
      '-A INPUT -j KNET-PGW-IN',
      ...INPUT_GUARD6,
    ]);
    expect(await applyGatewayPlan(net, off)).toEqual([]);
    // …and on again.
    expect(await applyGatewayPlan(net, plan())).toEqual([
      'iptables: chain-rules KNET-PGW-FWD, missing-chain KNET-PGW-OUT, jumps OUTPUT',
      'ip6tables: missing-chain KNET-PGW-FWD, missing-chain KNET-PGW-OUT, jumps FORWARD, jumps OUTPUT',
      'iptables: missing-chain KNET-PGW-PRE, jumps PREROUTING',
    ]);
  });

  it('without a VPN interface: NAT, and the INPUT guard for DHCP and the overlay (no kill switch, as pod-gateway)', async () => {
    await applyGatewayPlan(net, plan({ VPN_INTERFACE: '' }, ''));
    expect(await rules(net, 'iptables', 'filter')).toEqual([
      '-N KNET-PGW-IN',
      '-A INPUT -j KNET-PGW-IN',
      ...INPUT_GUARD.filter((r) => !r.includes('tun0')),
    ]);
    expect(await rules(net, 'ip6tables', 'filter')).toEqual([]);
    expect(await rules(net, 'iptables', 'nat')).toEqual([
      '-N KNET-PGW-POST',
      '-A POSTROUTING -j KNET-PGW-POST',
      '-A KNET-PGW-POST -s 172.16.0.0/24 ! -o vxlan0 -j MASQUERADE',
    ]);
  });

  it('SNAT_IP: SNAT on the VPN interface before the MASQUERADE', async () => {
    await applyGatewayPlan(net, plan({ ...ENV, SNAT_IP: '198.51.100.7' }));
    expect(await rules(net, 'iptables', 'nat')).toContain(
      '-A KNET-PGW-POST -s 172.16.0.0/24 -o tun0 -j SNAT --to-source 198.51.100.7',
    );
  });
});

/** Something changed behind our back after a converged run, and what the next run reports. */
const DRIFT: [string, (net: FakeHostNet) => Promise<unknown>, string[]][] = [
  [
    'ip_forward turned off',
    (net) => net.sysctl.set('net.ipv4.ip_forward', '0'),
    ['sysctl net.ipv4.ip_forward=1'],
  ],
  [
    'vxlan0 down',
    (net) => net.ip.setLink('vxlan0', { up: false }),
    ['link vxlan0 (vxlan id 42 dstport 4789 dev eth0): up no → yes'],
  ],
  [
    'vxlan0 MTU changed',
    (net) => net.ip.setLink('vxlan0', { mtu: 1450 }),
    ['link vxlan0 (vxlan id 42 dstport 4789 dev eth0): mtu 1450 → 1400'],
  ],
  [
    'vxlan0 rebuilt with another VNI (its address went with it)',
    async (net) => {
      await net.ip.deleteLink('vxlan0');
      await net.ip.addVxlan('vxlan0', { id: 7, dstPort: 4789, dev: 'eth0', mtu: 1400 });
    },
    [
      'link vxlan0 (vxlan id 42 dstport 4789 dev eth0): id 7 → 42 (recreate)',
      'address 172.16.0.1/24 dev vxlan0: missing',
    ],
  ],
  [
    'vxlan0 with learning off',
    async (net) => {
      await net.ip.deleteLink('vxlan0');
      await net.ip.addVxlan('vxlan0', { id: 42, dstPort: 4789, dev: 'eth0', mtu: 1400, learning: false });
    },
    [
      'link vxlan0 (vxlan id 42 dstport 4789 dev eth0): learning off → on (recreate)',
      'address 172.16.0.1/24 dev vxlan0: missing',
    ],
  ],
  [
    'a device of another kind named vxlan0',
    async (net) => {
      await net.ip.deleteLink('vxlan0');
      net.ip.addLinkOfKind('vxlan0', 'dummy');
    },
    [
      'link vxlan0 (vxlan id 42 dstport 4789 dev eth0): kind dummy → vxlan (recreate)',
      'address 172.16.0.1/24 dev vxlan0: missing',
    ],
  ],
  [
    'another address on vxlan0',
    (net) => net.ip.addAddress('vxlan0', '172.16.0.99/24'),
    ['address 172.16.0.99/24 dev vxlan0: not desired'],
  ],
  [
    'the address changed',
    async (net) => {
      await net.ip.deleteAddress('vxlan0', '172.16.0.1/24');
      await net.ip.addAddress('vxlan0', '172.16.1.1/24');
    },
    // Reported missing first; removed first (vxlan0 has one IPv4 address at a time).
    ['address 172.16.0.1/24 dev vxlan0: missing', 'address 172.16.1.1/24 dev vxlan0: not desired'],
  ],
  [
    'the policy rule deleted',
    (net) => net.ip.deleteRule({ priority: 50 }),
    ['rule pref 50 from all lookup main suppress_prefixlength 0: missing'],
  ],
  [
    'a VPN_LOCAL_CIDRS route through another gateway',
    (net) => net.ip.replaceRoute({ dst: '10.0.0.0/8', via: '192.0.2.254', dev: 'eth0', protocol: '77' }),
    ['route 10.0.0.0/8 via 192.0.2.1 dev eth0: via 192.0.2.254 → 192.0.2.1'],
  ],
  [
    'a VPN_LOCAL_CIDRS route deleted',
    (net) => net.ip.deleteRoute({ dst: '192.168.0.0/16' }),
    ['route 192.168.0.0/16 via 192.0.2.1 dev eth0: missing'],
  ],
  [
    'the jump into our FORWARD chain deleted, a foreign ACCEPT appended',
    async (net) => {
      await net.iptables.command(['-D', 'FORWARD', '-j', 'KNET-PGW-FWD']);
      await net.iptables.command(['-A', 'FORWARD', '-j', 'ACCEPT']);
    },
    ['iptables: jumps FORWARD'],
  ],
  [
    "the kill switch's DROP deleted",
    (net) => net.iptables.command(['-D', 'KNET-PGW-OUT', '-j', 'DROP']),
    ['iptables: chain-rules KNET-PGW-OUT'],
  ],
  [
    'a port forward deleted from the nat table',
    (net) => net.iptables.command(['-t', 'nat', '-F', 'KNET-PGW-PRE']),
    ['iptables: chain-rules KNET-PGW-PRE'],
  ],
  [
    'the IPv6 OUTPUT chain flushed',
    (net) => net.ip6tables.command(['-F', 'KNET-PGW-OUT']),
    ['ip6tables: chain-rules KNET-PGW-OUT'],
  ],
  [
    'a foreign rule appended to a built-in chain (not ours: left alone)',
    (net) => net.iptables.command(['-A', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'REJECT']),
    [],
  ],
  [
    'a foreign rule inserted above our jump (ours goes back to the top; theirs stays)',
    (net) => net.iptables.command(['-I', 'OUTPUT', '-p', 'tcp', '--dport', '25', '-j', 'REJECT']),
    ['iptables: jumps OUTPUT'],
  ],
  [
    'a route of ours no longer desired (VPN_LOCAL_CIDRS changed since)',
    (net) => net.ip.replaceRoute({ dst: '172.20.0.0/16', via: '192.0.2.1', dev: 'eth0', protocol: '77' }),
    ['route 172.20.0.0/16 via 192.0.2.1 dev eth0: not desired'],
  ],
  [
    'a foreign route (not ours: left alone)',
    (net) => net.ip.replaceRoute({ dst: '203.0.113.0/24', dev: 'tun0' }),
    [],
  ],
];

describe('applyGatewayPlan on a drifted gateway pod', () => {
  it.each(DRIFT)('%s', async (_what, drift, expected) => {
    const net = await gatewayPod();
    await applyGatewayPlan(net, plan());
    await drift(net);
    const foreign = (await rules(net, 'iptables', 'filter')).filter((r) => r.includes('--dport 25'));
    expect(await applyGatewayPlan(net, plan())).toEqual(expected);
    expect(await applyGatewayPlan(net, plan())).toEqual([]);
    expect((await rules(net, 'iptables', 'filter')).filter((r) => r.includes('--dport 25'))).toEqual(foreign);
  });

  it('keeps foreign rules and routes through a repair', async () => {
    const net = await gatewayPod();
    await applyGatewayPlan(net, plan());
    await net.iptables.command(['-A', 'FORWARD', '-s', '203.0.113.0/24', '-j', 'ACCEPT']);
    await net.ip.replaceRoute({ dst: '203.0.113.0/24', dev: 'tun0' });
    await net.iptables.command(['-D', 'FORWARD', '-j', 'KNET-PGW-FWD']);
    await applyGatewayPlan(net, plan());
    expect(await rules(net, 'iptables', 'filter')).toEqual(
      expect.arrayContaining(['-A FORWARD -j KNET-PGW-FWD', '-A FORWARD -s 203.0.113.0/24 -j ACCEPT']),
    );
    expect((await net.ip.listRoutes()).map((r) => r.dst)).toContain('203.0.113.0/24');
  });

  it('follows a settings change: new VNI and port, forwards removed', async () => {
    const net = await gatewayPod();
    await applyGatewayPlan(net, plan());
    const changed = plan({ ...ENV, VXLAN_ID: '43', VXLAN_PORT: '8472' }, '');
    expect(await applyGatewayPlan(net, changed)).toEqual([
      'iptables: chain-rules KNET-PGW-IN, chain-rules KNET-PGW-FWD, chain-rules KNET-PGW-OUT',
      'iptables: stale-chain KNET-PGW-PRE, jumps PREROUTING',
      'link vxlan0 (vxlan id 43 dstport 8472 dev eth0): id 42 → 43, dstport 4789 → 8472 (recreate)',
      'address 172.16.0.1/24 dev vxlan0: missing',
    ]);
    expect(await applyGatewayPlan(net, changed)).toEqual([]);
  });
});

/** A failing step: the command's error (one line: argv, exit code, stderr), and the state it left. */
describe('applyGatewayPlan when a command fails', () => {
  const failures: [string, (net: FakeHostNet) => Promise<unknown> | void, GatewayPlan, RegExp, string][] = [
    [
      'no pod interface: the overlay has no underlay',
      (net) => net.ip.deleteLink('eth0'),
      plan(),
      /^ip link add vxlan0 mtu 1400 type vxlan id 42 dstport 4789 dev eth0 learning failed \(exit 255\): Cannot find device "eth0"$/,
      'no-device',
    ],
    [
      'the VNI is taken by another device',
      (net) => net.ip.addVxlan('vx-other', { id: 42, dstPort: 4789, dev: 'eth0' }),
      plan(),
      /^ip link add vxlan0 .* failed \(exit 2\): Error: A VXLAN device with the specified VNI already exists\.$/,
      'exists',
    ],
    [
      'the pod gateway is not on the pod network',
      () => undefined,
      plan(ENV, '', '203.0.113.1'),
      /^ip -4 route replace 10\.0\.0\.0\/8 via 203\.0\.113\.1 .*failed \(exit 2\): Error: Nexthop has invalid gateway\.$/,
      'other',
    ],
    [
      'no NET_ADMIN: adding the rule is not permitted',
      (net) => {
        jest
          .spyOn(net.ip, 'addRule')
          .mockImplementationOnce(async (spec) =>
            ipFailure(ipArgs.addRule(spec), 2, 'RTNETLINK answers: Operation not permitted'),
          );
      },
      plan(),
      /^ip -4 rule add priority 50 from all table main suppress_prefixlength 0 protocol 77 failed \(exit 2\): RTNETLINK answers: Operation not permitted$/,
      'permission',
    ],
    [
      '/proc/sys read-only (an unprivileged container)',
      (net) => {
        jest
          .spyOn(net.sysctl, 'set')
          .mockImplementationOnce(async (key, value) =>
            ipFailure(
              sysctlArgs.set(key, value),
              255,
              `sysctl: setting key "${key}": Read-only file system`,
              'sysctl',
            ),
          );
      },
      plan(),
      /^sysctl -q -w net\.ipv4\.ip_forward=1 failed \(exit 255\): sysctl: setting key "net\.ipv4\.ip_forward": Read-only file system$/,
      'other',
    ],
    [
      'iptables-restore refuses a match the kernel lacks',
      (net) => {
        jest.spyOn(net.iptables, 'restore').mockImplementationOnce(async () => {
          throw new CommandError({
            command: ['iptables-restore', '-w', '5', '--noflush'],
            exitCode: 2,
            stderr:
              "iptables-restore v1.8.9 (nf_tables): Couldn't load match `conntrack':No such file or directory\n\nError occurred at line: 9",
          });
        });
      },
      plan(),
      /^iptables-restore -w 5 --noflush failed \(exit 2\): iptables-restore v1\.8\.9 \(nf_tables\): Couldn't load match `conntrack':No such file or directory; Error occurred at line: 9$/,
      'not-found',
    ],
  ];

  it.each(failures)('%s', async (_what, setUp, p, message, kind) => {
    const net = await gatewayPod();
    await setUp(net);
    const err = await applyGatewayPlan(net, p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).message).toMatch(message);
    expect((err as CommandError).message).not.toContain('\n');
    expect((err as CommandError).kind).toBe(kind);
  });

  it('fails closed: a kill switch that cannot be committed leaves forwarding off and no vxlan0', async () => {
    const net = await gatewayPod();
    const restore = net.iptables.restore.bind(net.iptables);
    jest.spyOn(net.iptables, 'restore').mockImplementation(async (payload) => {
      if (payload.includes('*filter')) throw new Error('iptables-restore: line 2 failed');
      return restore(payload);
    });
    await expect(applyGatewayPlan(net, plan())).rejects.toThrow('iptables-restore: line 2 failed');
    expect(await net.sysctl.get('net.ipv4.ip_forward')).not.toBe('1');
    expect((await net.ip.listLinks()).map((l) => l.name)).not.toContain('vxlan0');
    expect((await net.ip.listRoutes()).filter((r) => r.protocol === '77')).toEqual([]);
  });

  it('a failure part-way leaves nothing that a second run does not finish', async () => {
    const net = await gatewayPod();
    jest
      .spyOn(net.ip, 'addRule')
      .mockImplementationOnce(async (spec) =>
        ipFailure(ipArgs.addRule(spec), 2, 'RTNETLINK answers: Operation not permitted'),
      );
    await expect(applyGatewayPlan(net, plan())).rejects.toThrow('Operation not permitted');
    // The steps before the rule stay done; the retry does the rest, and then nothing.
    expect(await applyGatewayPlan(net, plan())).toEqual(FRESH_CHANGES.slice(10));
    expect(await applyGatewayPlan(net, plan())).toEqual([]);
  });
});
