import { ExecaRunner, createHostNet } from '@knet/host-net';
import { NetLab, type NetHost } from '@knet/testing';
import { applyGatewayPlan, createFakeGatewayPod, loadSettings, parseNatConf, planGateway } from '../src';

jest.setTimeout(60_000);

let lab: NetLab;
let gw: NetHost;

beforeAll(async () => {
  lab = await NetLab.create();
  gw = await lab.addHost('gw');
  const node = await lab.addHost('node');
  const vpn = await lab.addHost('vpn');
  await lab.link(gw, node, {
    a: { ifname: 'eth0', address: '192.0.2.10/24' },
    b: { address: '192.0.2.1/24' },
  });
  await lab.link(gw, vpn, {
    a: { ifname: 'tun0', address: '198.51.100.2/24' },
    b: { address: '198.51.100.1/24' },
  });
  await gw.ip('route', 'add', 'default', 'via', '192.0.2.1');
});
afterAll(() => lab?.dispose());

const net = () => createHostNet(new ExecaRunner({ prefix: gw.commandPrefix }));
const plan = (env: Record<string, string>, natText = '') => {
  const { settings } = loadSettings({ env });
  return planGateway(
    settings,
    parseNatConf(natText, 'nat.conf', { firstDynamicIp: settings.firstDynamicIp }),
    {
      podInterface: 'eth0',
      podGateway: '192.0.2.1',
    },
  );
};

describe('gateway plan on a real network namespace', () => {
  const env = { VPN_INTERFACE: 'tun0', VPN_TRAFFIC_PORT: '1194', VPN_INTERFACE_MTU: '1400' };

  it('applies everything, and a second run changes nothing', async () => {
    const first = await applyGatewayPlan(net(), plan(env, 'web 10 tcp:8080:80'));
    // Exactly what the fakes report for the same pod (src/apply.spec.ts tests on them).
    expect(first).toEqual(
      await applyGatewayPlan(await createFakeGatewayPod(), plan(env, 'web 10 tcp:8080:80')),
    );
    expect(first).toContain('link vxlan0 (vxlan id 42 dstport 4789 dev eth0): missing');
    expect(await applyGatewayPlan(net(), plan(env, 'web 10 tcp:8080:80'))).toEqual([]);

    const details = (await gw.ip('-d', 'link', 'show', 'vxlan0')).replace(/\s+/g, ' ');
    expect(details).toMatch(/mtu 1400 /);
    expect(details).toMatch(/vxlan id 42 dev eth0 srcport \d+ \d+ dstport 4789/);
    expect(await gw.ip('rule', 'show', 'pref', '50')).toMatch(/from all lookup main suppress_prefixlength 0/);
    const natRules = (await gw.exec('iptables', ['-t', 'nat', '-S'])).stdout;
    expect(natRules).toContain('-A PREROUTING -j KNET-PGW-PRE');
    expect(natRules).toContain(
      '-A KNET-PGW-PRE -i tun0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.16.0.10:80',
    );
    expect(natRules).toContain('-A KNET-PGW-POST -s 172.16.0.0/24 ! -o vxlan0 -j MASQUERADE');
    const filter = (await gw.exec('iptables', ['-S'])).stdout;
    expect(filter).toContain('-A FORWARD -j KNET-PGW-FWD');
    expect(filter).toContain('-A KNET-PGW-OUT -j DROP');
    expect((await gw.exec('ip6tables', ['-S'])).stdout).toContain('-A OUTPUT -j KNET-PGW-OUT');
  });

  it('converges when the settings change: forwards and kill switch removed, VNI changed', async () => {
    const changes = await applyGatewayPlan(
      net(),
      plan({ ...env, VPN_BLOCK_OTHER_TRAFFIC: 'false', VXLAN_ID: '43' }),
    );
    expect(changes).toEqual(
      expect.arrayContaining(['link vxlan0 (vxlan id 43 dstport 4789 dev eth0): id 42 → 43 (recreate)']),
    );
    const natRules = (await gw.exec('iptables', ['-t', 'nat', '-S'])).stdout;
    expect(natRules).not.toContain('KNET-PGW-PRE');
    const filter = (await gw.exec('iptables', ['-S'])).stdout;
    expect(filter).not.toContain('KNET-PGW-OUT');
    expect(filter).toContain('-A KNET-PGW-FWD -i tun0 -j REJECT --reject-with icmp-port-unreachable');
    // The kill switch's chains are gone; the INPUT guard (from the VPN only replies) stays.
    expect((await gw.exec('ip6tables', ['-S'])).stdout).not.toMatch(/KNET-PGW-(FWD|OUT)/);
    expect((await gw.exec('ip6tables', ['-S'])).stdout).toContain('-A INPUT -j KNET-PGW-IN');
    expect(
      await applyGatewayPlan(net(), plan({ ...env, VPN_BLOCK_OTHER_TRAFFIC: 'false', VXLAN_ID: '43' })),
    ).toEqual([]);
  });
});
