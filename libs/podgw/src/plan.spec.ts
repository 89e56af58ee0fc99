import {
  clientInputFilter,
  loadSettings,
  parseNatConf,
  planClient,
  planGateway,
  vxlanPeerCidrs,
} from './index';

const settingsWith = (env: Record<string, string>) => loadSettings({ env }).settings;
const nat = parseNatConf('web 10 tcp:8080:80,udp:51413', 'nat.conf', { firstDynamicIp: 20 });

describe('planGateway', () => {
  it('with a VPN interface, port forwards and the kill switch', () => {
    const s = settingsWith({
      VPN_INTERFACE: 'tun0',
      VPN_TRAFFIC_PORT: '1194',
      VPN_LOCAL_CIDRS: '10.0.0.0/8 fd00::/8',
      SNAT_IP: '198.51.100.7',
      VPN_INTERFACE_MTU: '1380',
    });
    const plan = planGateway(s, nat, {
      podInterface: 'eth0',
      podGateway: '192.0.2.1',
      clusterDns: ['172.20.0.10', 'fd00::10'],
      connected: [
        { dst: '192.0.2.0/24', dev: 'eth0' },
        { dst: '198.51.100.0/24', dev: 'tun0' },
        { dst: '2001:db8::/64', dev: 'eth0' },
      ],
    });
    expect(plan).toMatchSnapshot();
  });

  it('without a VPN interface: NAT, and the INPUT guard for DHCP and the overlay (no kill switch, as pod-gateway)', () => {
    const s = settingsWith({ VPN_INTERFACE: '', VPN_LOCAL_CIDRS: '10.0.0.0/8' });
    const plan = planGateway(s, nat, { podInterface: 'eth0', podGateway: undefined });
    expect(plan.iptables).toEqual([
      {
        table: 'nat',
        chains: { 'KNET-PGW-POST': ['-s 172.16.0.0/24 ! -o vxlan0 -j MASQUERADE'] },
        jumps: [{ fromChain: 'POSTROUTING', rule: '-j KNET-PGW-POST', position: 'prepend' }],
      },
      {
        table: 'filter',
        chains: {
          'KNET-PGW-IN': [
            '-i vxlan0 -p udp -m udp --dport 67 -j ACCEPT',
            '-p udp -m udp --dport 67 -j DROP',
            '-s 10.0.0.0/8 -i eth0 -p udp -m udp --dport 4789 -j ACCEPT',
            '-p udp -m udp --dport 4789 -j DROP',
          ],
        },
        jumps: [{ fromChain: 'INPUT', rule: '-j KNET-PGW-IN', position: 'prepend' }],
      },
    ]);
    expect(plan.ip6tables).toEqual([]);
    expect(plan.routes).toEqual([]);
  });

  it('kill switch off: forwards and rejects unsolicited VPN traffic, drops nothing else; the INPUT guard stays', () => {
    const s = settingsWith({ VPN_BLOCK_OTHER_TRAFFIC: 'false', VPN_LOCAL_CIDRS: '10.0.0.0/8' });
    const plan = planGateway(s, [], { podInterface: 'eth0', podGateway: '192.0.2.1' });
    expect(plan.iptables.find((t) => t.table === 'filter')?.chains).toEqual({
      'KNET-PGW-IN': [
        '-i vxlan0 -p udp -m udp --dport 67 -j ACCEPT',
        '-p udp -m udp --dport 67 -j DROP',
        '-s 10.0.0.0/8 -i eth0 -p udp -m udp --dport 4789 -j ACCEPT',
        '-p udp -m udp --dport 4789 -j DROP',
        '-i tun0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-i tun0 -j DROP',
      ],
      'KNET-PGW-FWD': [
        '-o vxlan0 -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
        '-i tun0 -j REJECT --reject-with icmp-port-unreachable',
      ],
    });
    expect(plan.ip6tables).toEqual([
      {
        table: 'filter',
        chains: {
          'KNET-PGW-IN': [
            '-i tun0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
            ...[133, 134, 135, 136].map((t) => `-i tun0 -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`),
            '-i tun0 -j DROP',
          ],
        },
        jumps: [{ fromChain: 'INPUT', rule: '-j KNET-PGW-IN', position: 'prepend' }],
      },
    ]);
  });

  it('no client ↔ client forwarding over the overlay with the kill switch (the README claimed it; nothing answers their ARP)', () => {
    const plan = planGateway(settingsWith({}), [], { podInterface: 'eth0', podGateway: '192.0.2.1' });
    const fwd = plan.iptables.find((t) => t.table === 'filter')?.chains['KNET-PGW-FWD'] ?? [];
    expect(fwd).toContain('-i vxlan0 -o tun0 -j ACCEPT');
    expect(fwd).not.toContain('-i vxlan0 -o vxlan0 -j ACCEPT');
  });

  it("VPN_LOCAL_CIDRS holding a connected prefix: no route replaces the kernel's on-link one", () => {
    const s = settingsWith({ VPN_LOCAL_CIDRS: '192.0.2.0/24 10.0.0.0/8 fd00::/8' });
    const connected = [
      { dst: '192.0.2.0/24', dev: 'eth0' },
      { dst: 'fd00::/64', dev: 'eth0' },
    ];
    const plan = planGateway(s, [], { podInterface: 'eth0', podGateway: '192.0.2.1', connected });
    expect(plan.routes.map((r) => r.dst)).toEqual(['10.0.0.0/8']);
  });
});

describe('vxlanPeerCidrs: where the gateway takes the overlay from', () => {
  const connected = [
    { dst: '192.0.2.0/24', dev: 'eth0' },
    { dst: '198.51.100.0/24', dev: 'tun0' },
    { dst: '2001:db8::/64', dev: 'eth0' },
    { dst: '10.1.0.0/16', dev: 'eth0' },
  ];

  it("default: VPN_LOCAL_CIDRS (IPv4) and the pod interface's IPv4 subnets, once each", () => {
    const s = settingsWith({ VPN_LOCAL_CIDRS: '10.0.0.0/8 192.0.2.0/24 fd00::/8' });
    expect(vxlanPeerCidrs(s, { podInterface: 'eth0', connected })).toEqual([
      '10.0.0.0/8',
      '192.0.2.0/24',
      '10.1.0.0/16',
    ]);
  });

  it('VXLAN_CLIENT_CIDRS, when set, is all of it', () => {
    const s = settingsWith({ VXLAN_CLIENT_CIDRS: '10.244.0.0/16 10.245.0.0/16' });
    expect(vxlanPeerCidrs(s, { podInterface: 'eth0', connected })).toEqual([
      '10.244.0.0/16',
      '10.245.0.0/16',
    ]);
    const plan = planGateway(s, [], { podInterface: 'eth0', podGateway: '192.0.2.1', connected });
    const filter = plan.iptables.find((t) => t.table === 'filter')!;
    expect(filter.chains['KNET-PGW-IN']?.filter((r) => r.includes('4789'))).toEqual([
      '-s 10.244.0.0/16 -i eth0 -p udp -m udp --dport 4789 -j ACCEPT',
      '-s 10.245.0.0/16 -i eth0 -p udp -m udp --dport 4789 -j ACCEPT',
      '-p udp -m udp --dport 4789 -j DROP',
    ]);
    expect(filter.chains['KNET-PGW-OUT']?.filter((r) => r.includes('4789'))).toEqual([
      '-d 10.244.0.0/16 -o eth0 -p udp -m udp --dport 4789 -j ACCEPT',
      '-d 10.245.0.0/16 -o eth0 -p udp -m udp --dport 4789 -j ACCEPT',
    ]);
  });
});

describe('planClient', () => {
  const facts = { podInterface: 'eth0', podGateway4: '192.0.2.1', podGateway6: 'fe80::1' };

  it('keeps NOT_ROUTED and the cluster DNS on the pod network; static address from nat.conf', () => {
    const s = settingsWith({
      NOT_ROUTED_TO_GATEWAY_CIDRS: '10.96.0.0/12 fd00:10:96::/112',
      K8S_DNS_IPS: '10.96.0.10',
    });
    expect(planClient(s, nat[0], facts)).toMatchSnapshot();
  });

  it('the INPUT guard: the overlay only from the gateway pod, DHCP replies only from vxlan0', () => {
    const s = settingsWith({ VXLAN_PORT: '8472' });
    expect(clientInputFilter(s, facts, '192.0.2.10')).toEqual({
      table: 'filter',
      chains: {
        'KNET-PGW-IN': [
          '-s 192.0.2.10/32 -i eth0 -p udp -m udp --dport 8472 -j ACCEPT',
          '-p udp -m udp --dport 8472 -j DROP',
          '-i vxlan0 -p udp -m udp --dport 68 -j ACCEPT',
          '-p udp -m udp --dport 68 -j DROP',
        ],
      },
      jumps: [{ fromChain: 'INPUT', rule: '-j KNET-PGW-IN', position: 'prepend' }],
    });
  });

  it("leaves out a NOT_ROUTED CIDR that is a connected prefix (the pod's own subnet)", () => {
    const s = settingsWith({
      NOT_ROUTED_TO_GATEWAY_CIDRS: '192.0.2.0/24 10.96.0.0/12',
      K8S_DNS_IPS: '192.0.2.53',
    });
    const plan = planClient(s, undefined, { ...facts, connected: [{ dst: '192.0.2.0/24', dev: 'eth0' }] });
    expect(plan.podRoutes.map((r) => r.dst)).toEqual(['10.96.0.0/12', '192.0.2.53/32']);
  });

  it('takes a lease when the pod is not in nat.conf; skips routes of a family without a gateway', () => {
    const s = settingsWith({ NOT_ROUTED_TO_GATEWAY_CIDRS: '10.96.0.0/12 fd00::/8' });
    const plan = planClient(s, undefined, { ...facts, podGateway6: undefined });
    expect(plan.staticAddress).toBeUndefined();
    expect(plan.podRoutes.map((r) => r.dst)).toEqual(['10.96.0.0/12']);
  });
});
