import { loadSettings, parseNatConf, planClient, planGateway } from './index';

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
    });
    expect(plan).toMatchSnapshot();
  });

  it('without a VPN interface: NAT only, no filter (as pod-gateway)', () => {
    const s = settingsWith({ VPN_INTERFACE: '' });
    const plan = planGateway(s, nat, { podInterface: 'eth0', podGateway: undefined });
    expect(plan.iptables).toEqual([
      {
        table: 'nat',
        chains: { 'KNET-PGW-POST': ['-s 172.16.0.0/24 ! -o vxlan0 -j MASQUERADE'] },
        jumps: [{ fromChain: 'POSTROUTING', rule: '-j KNET-PGW-POST', position: 'prepend' }],
      },
    ]);
    expect(plan.ip6tables).toEqual([]);
    expect(plan.routes).toEqual([]);
  });

  it('kill switch off: forwards and rejects unsolicited VPN traffic, but drops nothing else', () => {
    const s = settingsWith({ VPN_BLOCK_OTHER_TRAFFIC: 'false' });
    const plan = planGateway(s, [], { podInterface: 'eth0', podGateway: '192.0.2.1' });
    expect(plan.iptables.find((t) => t.table === 'filter')?.chains).toEqual({
      'KNET-PGW-FWD': [
        '-o vxlan0 -m conntrack --ctstate RELATED,ESTABLISHED --ctdir REPLY -j ACCEPT',
        '-i tun0 -j REJECT --reject-with icmp-port-unreachable',
      ],
    });
    expect(plan.ip6tables).toEqual([]);
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

  it('takes a lease when the pod is not in nat.conf; skips routes of a family without a gateway', () => {
    const s = settingsWith({ NOT_ROUTED_TO_GATEWAY_CIDRS: '10.96.0.0/12 fd00::/8' });
    const plan = planClient(s, undefined, { ...facts, podGateway6: undefined });
    expect(plan.staticAddress).toBeUndefined();
    expect(plan.podRoutes.map((r) => r.dst)).toEqual(['10.96.0.0/12']);
  });
});
