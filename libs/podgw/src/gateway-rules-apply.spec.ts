import { createFakeHostNet } from '@knet/host-net';
import { ensureGatewayRules } from './apply';
import { planGateway } from './gateway-plan';
import { loadSettings } from './settings';

const plan = (env: Record<string, string>) =>
  planGateway(loadSettings({ files: [], env }).settings, [], {
    podInterface: 'eth0',
    podGateway: '192.0.2.1',
  });
const ON = { VPN_INTERFACE: 'tun0', VPN_BLOCK_OTHER_TRAFFIC: 'true' };

describe('ensureGatewayRules', () => {
  it('with the kill switch: our chains, then DROP policies on FORWARD and OUTPUT (IPv4 and IPv6); then nothing', async () => {
    const net = createFakeHostNet();
    const changes = await ensureGatewayRules(net, plan(ON));
    expect(changes).toEqual(
      expect.arrayContaining([
        'iptables: FORWARD policy DROP',
        'iptables: OUTPUT policy DROP',
        'ip6tables: FORWARD policy DROP',
        'ip6tables: OUTPUT policy DROP',
      ]),
    );
    expect(await net.iptables.command(['-S', 'FORWARD'])).toMatch(
      /^-P FORWARD DROP\n-A FORWARD -j KNET-PGW-FWD/,
    );
    expect(await ensureGatewayRules(net, plan(ON))).toEqual([]);
  });

  it('a flush (a VPN down script) keeps the gateway closed: the policy stays, and the next run restores our jumps', async () => {
    const net = createFakeHostNet();
    await ensureGatewayRules(net, plan(ON));
    await net.iptables.command(['-F']);
    expect(await net.iptables.command(['-S', 'FORWARD'])).toBe('-P FORWARD DROP\n');
    const repaired = await ensureGatewayRules(net, plan(ON));
    expect(repaired).toHaveLength(1);
    expect(repaired[0]).toMatch(/^iptables: /);
    expect(await net.iptables.command(['-S', 'OUTPUT'])).toContain('-A OUTPUT -j KNET-PGW-OUT');
  });

  it('without the kill switch leaves the policies alone', async () => {
    const net = createFakeHostNet();
    const off = { VPN_BLOCK_OTHER_TRAFFIC: 'false' };
    expect(plan(off).killSwitch).toBe(false);
    await ensureGatewayRules(net, plan(off));
    expect(await net.iptables.command(['-S', 'FORWARD'])).toMatch(/^-P FORWARD ACCEPT/);
  });
});
