import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFakeGatewayPod } from './fake-pods';
import { discoverGatewayFacts, gatewaySummary } from './gateway-facts';
import { planGateway } from './gateway-plan';
import { parseNatConf } from './natconf';
import { loadSettings } from './settings';

let dir: string;
let resolvConf: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'podgw-facts-'));
  resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, 'nameserver 10.96.0.10\nnameserver fd00::10\nsearch vpn.svc.cluster.local\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const settings = (env: Record<string, string> = {}) => loadSettings({ env }).settings;
const options = () => ({ podInterface: 'eth0', stateDir: join(dir, 'state'), resolvConf });

/** The fake gateway pod's connected routes (its eth0 and tun0 subnets). */
const CONNECTED = [
  { dst: '192.0.2.0/24', dev: 'eth0' },
  { dst: '198.51.100.0/24', dev: 'tun0' },
];

describe('discoverGatewayFacts', () => {
  it("the default route's gateway, the original resolv.conf's IPv4 nameservers (kept for later runs), the connected routes", async () => {
    const net = await createFakeGatewayPod();
    const facts = await discoverGatewayFacts(net, settings(), options());
    expect(facts).toEqual({
      podInterface: 'eth0',
      podGateway: '192.0.2.1',
      clusterDns: ['10.96.0.10'],
      connected: CONNECTED,
    });
    // The VPN client rewrites resolv.conf; a restarted gateway-init still finds the cluster DNS.
    writeFileSync(resolvConf, 'nameserver 203.0.113.53\n');
    expect(await discoverGatewayFacts(net, settings(), options())).toEqual(facts);
  });

  it('K8S_DEFAULT_GW and DNS_LOCAL_SERVER win', async () => {
    const net = await createFakeGatewayPod();
    const s = settings({ K8S_DEFAULT_GW: '192.0.2.254', DNS_LOCAL_SERVER: '10.96.0.53' });
    expect(await discoverGatewayFacts(net, s, options())).toEqual({
      podInterface: 'eth0',
      podGateway: '192.0.2.254',
      clusterDns: ['10.96.0.53'],
      connected: CONNECTED,
    });
  });

  it('no default route: no pod gateway (VPN_LOCAL_CIDRS are not routed)', async () => {
    const net = await createFakeGatewayPod();
    await net.ip.deleteRoute({ dst: 'default', via: '192.0.2.1' });
    expect((await discoverGatewayFacts(net, settings(), options())).podGateway).toBeUndefined();
  });

  it('a dry run reads resolv.conf where it is and writes nothing', async () => {
    const net = await createFakeGatewayPod();
    const facts = await discoverGatewayFacts(net, settings(), { ...options(), dryRun: true });
    expect(facts.clusterDns).toEqual(['10.96.0.10']);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });
});

describe('gatewaySummary', () => {
  it.each([
    [{ VPN_INTERFACE: 'tun0' }, 'tun0', true],
    [{ VPN_INTERFACE: 'tun0', VPN_BLOCK_OTHER_TRAFFIC: 'false' }, 'tun0', false],
    [{ VPN_INTERFACE: '' }, null, false],
  ])('%j: VPN interface %j, kill switch %j', (env, vpnInterface, killSwitch) => {
    const s = settings(env);
    const nat = parseNatConf('web 10 tcp:8080:80,udp:51413\nfixed 11', 'nat.conf', { firstDynamicIp: 20 });
    const plan = planGateway(s, nat, { podInterface: 'eth0', podGateway: '192.0.2.1' });
    expect(gatewaySummary(plan, { settings: s, nat }, ['a', 'b'])).toEqual({
      address: '172.16.0.1/24',
      vxlan: { id: 42, port: 4789, dev: 'eth0' },
      vpnInterface,
      killSwitch,
      portForwards: 2,
      changes: 2,
    });
  });
});
