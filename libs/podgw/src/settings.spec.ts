import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SettingsError, loadSettings, parseShellAssignments, renderSettings } from './index';

const dir = mkdtempSync(join(tmpdir(), 'knet-podgw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('settings.sh reading', () => {
  it('reads the shapes pod-gateway settings files use', () => {
    const text = [
      '#!/bin/sh',
      '# comment',
      '',
      'VXLAN_ID="43"',
      "export VPN_INTERFACE='wg0'",
      'GATEWAY_NAME="${gateway}"',
      'K8S_DNS_IPS=$K8S_DNS_ips',
      'DNS_LOCAL_CIDRS="local cluster.local" # trailing comment',
      'NOT_ROUTED_TO_GATEWAY_CIDRS="${UNSET:-10.0.0.0/8} $VXLAN_ID"',
      'ESCAPED="a\\"b\\$c"',
    ].join('\n');
    const env = { gateway: 'gw.vpn.svc.cluster.local', K8S_DNS_ips: '10.96.0.10' };
    const got = parseShellAssignments(text, 'settings.sh', (n) => env[n as keyof typeof env]);
    expect(got.map((a) => [a.key, a.value, a.origin])).toEqual([
      ['VXLAN_ID', '43', 'settings.sh:4'],
      ['VPN_INTERFACE', 'wg0', 'settings.sh:5'],
      ['GATEWAY_NAME', 'gw.vpn.svc.cluster.local', 'settings.sh:6'],
      ['K8S_DNS_IPS', '10.96.0.10', 'settings.sh:7'],
      ['DNS_LOCAL_CIDRS', 'local cluster.local', 'settings.sh:8'],
      ['NOT_ROUTED_TO_GATEWAY_CIDRS', '10.0.0.0/8 43', 'settings.sh:9'],
      ['ESCAPED', 'a"b$c', 'settings.sh:10'],
    ]);
  });

  it.each([
    ['if [ -z "$A" ]; then', /settings.sh:1: expected KEY=value/],
    ['A=$(hostname)', /settings.sh:1: A: command substitution/],
    ['A=`hostname`', /settings.sh:1: A: shell syntax "`"/],
    ['A=b c', /settings.sh:1: A: unquoted space before "c"; quote the value/],
    ['A="open', /settings.sh:1: A: unterminated double quote/],
    ['A=${B:=x}', /settings.sh:1: A: unsupported expansion/],
  ])('refuses %p with one line naming the line', (text, message) => {
    expect(() => parseShellAssignments(text, 'settings.sh')).toThrow(message);
  });
});

describe('loadSettings', () => {
  it('has pod-gateway defaults, except VXLAN port 4789', () => {
    const { settings, origins, warnings } = loadSettings({ env: {} });
    expect(settings).toEqual({
      gatewayName: '',
      k8sDnsIps: [],
      notRoutedToGatewayCidrs: [],
      vxlanId: 42,
      vxlanPort: 4789,
      vxlanNetwork: '172.16.0',
      firstDynamicIp: 20,
      vpnInterface: 'tun0',
      vpnBlockOtherTraffic: true,
      vpnTrafficPorts: [443],
      vpnLocalCidrs: ['10.0.0.0/8', '192.168.0.0/16'],
      vxlanClientCidrs: [],
      dnsLocalDomains: ['local'],
      dnsLocalServers: [],
      snatIp: undefined,
      vpnInterfaceMtu: undefined,
      connectionRetryCount: 1,
      k8sDefaultGw: undefined,
      gatewayEnableDnssec: true,
      resolvConfCopy: '/etc/resolv_copy.conf',
      iptablesNft: false,
    });
    expect(origins.VXLAN_ID).toBe('default');
    expect(warnings).toEqual([]);
  });

  it('layers defaults < webhook env < files in order < env of the same name', () => {
    const a = file('a.sh', 'VXLAN_ID=100\nVXLAN_PORT=0\nVPN_INTERFACE=wg0\nTYPO_SETTING=1\n');
    const b = file('b.sh', 'VXLAN_ID=200\nVPN_TRAFFIC_PORT="1194 51820"\nVPN_INTERFACE=""\n');
    const { settings, origins, warnings } = loadSettings({
      files: [{ path: a }, { path: b }, { path: join(dir, 'missing.sh') }],
      env: {
        gateway: 'gw.example',
        K8S_DNS_ips: '10.96.0.10 fd00::a',
        VXLAN_ID: '300',
        VPN_BLOCK_OTHER_TRAFFIC: 'no',
      },
    });
    expect(settings.vxlanId).toBe(300);
    expect(origins.VXLAN_ID).toBe('env VXLAN_ID');
    expect(settings.vxlanPort).toBe(4789); // "0" meant the kernel's 8472 in pod-gateway
    expect(settings.vpnInterface).toBeUndefined();
    expect(origins.VPN_INTERFACE).toBe(`${b}:3`);
    expect(settings.vpnTrafficPorts).toEqual([1194, 51820]);
    expect(settings.gatewayName).toBe('gw.example');
    expect(settings.k8sDnsIps).toEqual(['10.96.0.10', 'fd00::a']);
    expect(settings.vpnBlockOtherTraffic).toBe(false);
    expect(warnings).toEqual([`${a}:4: unknown setting TYPO_SETTING (ignored)`]);
  });

  it.each([
    [{ VXLAN_ID: 'abc' }, 'VXLAN_ID="abc" (from env VXLAN_ID): must be an integer from 1 to 16777215'],
    [
      { VXLAN_IP_NETWORK: '172.16' },
      'VXLAN_IP_NETWORK="172.16" (from env VXLAN_IP_NETWORK): must be the first three octets',
    ],
    [{ NOT_ROUTED_TO_GATEWAY_CIDRS: '10.0.0.0/33' }, '"10.0.0.0/33" is not a CIDR like 10.0.0.0/8'],
    [
      { VPN_BLOCK_OTHER_TRAFFIC: 'maybe' },
      'VPN_BLOCK_OTHER_TRAFFIC="maybe" (from env VPN_BLOCK_OTHER_TRAFFIC): must be true or false',
    ],
    [{ K8S_DNS_IPS: 'kube-dns' }, '"kube-dns" is not an IP address'],
    [{ SNAT_IP: '203.0.113.1', VPN_INTERFACE: '' }, 'SNAT_IP (from env SNAT_IP) needs VPN_INTERFACE'],
    [{ VPN_INTERFACE: 'a-very-long-interface' }, 'must be an interface name (1-15 characters)'],
    [
      { VXLAN_CLIENT_CIDRS: '10.0.0.0/8 fd00::/8' },
      'VXLAN_CLIENT_CIDRS="10.0.0.0/8 fd00::/8" (from env VXLAN_CLIENT_CIDRS): "fd00::/8" is IPv6: the overlay runs over IPv4',
    ],
  ])('refuses %p', (env, message) => {
    expect(() => loadSettings({ env })).toThrow(SettingsError);
    expect(() => loadSettings({ env })).toThrow(message);
  });

  it('ignores Kubernetes service links that share a setting name (a Service named "vxlan" sets VXLAN_PORT)', () => {
    const a = file('links.sh', 'VXLAN_PORT=4790\n');
    const { settings, origins, warnings } = loadSettings({
      files: [{ path: a }],
      env: { VXLAN_PORT: 'udp://10.96.7.1:4789', VPN_TRAFFIC_PORT: 'tcp://10.96.7.2:1194' },
    });
    expect(settings.vxlanPort).toBe(4790);
    expect(origins.VXLAN_PORT).toBe(`${a}:1`);
    expect(settings.vpnTrafficPorts).toEqual([443]); // the default
    expect(warnings).toEqual([
      'env VXLAN_PORT="udp://10.96.7.1:4789" looks like a Kubernetes service link (a Service named "vxlan" in this namespace), not a setting: ignored (set enableServiceLinks: false in the pod spec to be rid of it)',
      'env VPN_TRAFFIC_PORT="tcp://10.96.7.2:1194" looks like a Kubernetes service link (a Service named "vpn-traffic" in this namespace), not a setting: ignored, the default applies (set enableServiceLinks: false in the pod spec to be rid of it)',
    ]);
  });

  it('names the file and line of a bad value, and a required file that is missing', () => {
    const bad = file('bad.sh', '\nVXLAN_GATEWAY_FIRST_DYNAMIC_IP=300\n');
    expect(() => loadSettings({ files: [{ path: bad }], env: {} })).toThrow(
      `VXLAN_GATEWAY_FIRST_DYNAMIC_IP="300" (from ${bad}:2): must be an integer from 2 to 254`,
    );
    expect(() => loadSettings({ files: [{ path: join(dir, 'nope.sh'), required: true }], env: {} })).toThrow(
      `settings file ${join(dir, 'nope.sh')} does not exist`,
    );
  });

  it('round-trips what renderSettings writes', () => {
    const p = file(
      'r.sh',
      renderSettings({ GATEWAY_NAME: 'gw', DNS_LOCAL_CIDRS: 'a b', SNAT_IP: '', VPN_TRAFFIC_PORT: '1194' }),
    );
    const { settings } = loadSettings({ files: [{ path: p }], env: {} });
    expect([
      settings.gatewayName,
      settings.dnsLocalDomains,
      settings.snatIp,
      settings.vpnTrafficPorts,
    ]).toEqual(['gw', ['a', 'b'], undefined, [1194]]);
  });
});
