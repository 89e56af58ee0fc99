import { loadSettings } from '@knet/podgw';
import { parseResolvConf } from './resolv';
import { SplitTable, normalizeDomain, reverseZones, splitRulesFromSettings } from './split';

describe('SplitTable', () => {
  const table = new SplitTable([
    { domain: 'local', servers: ['10.96.0.10'] },
    { domain: 'Cluster.Local.', servers: ['10.96.0.11#5353', '10.96.0.12'] },
    { domain: 'corp.example', servers: ['fd00::53'] },
    { domain: 'empty.example', servers: [] },
  ]);
  const match = (name: string) => table.match(name)?.map((u) => `${u.address}#${u.port}`);

  it('matches the domain itself and names under it, longest suffix first', () => {
    expect(match('local')).toEqual(['10.96.0.10#53']);
    expect(match('printer.local')).toEqual(['10.96.0.10#53']);
    expect(match('cluster.local')).toEqual(['10.96.0.11#5353', '10.96.0.12#53']);
    expect(match('kube-dns.kube-system.svc.cluster.local')).toEqual(['10.96.0.11#5353', '10.96.0.12#53']);
    expect(match('a.corp.example')).toEqual(['fd00::53#53']);
  });

  it('matches whole labels only', () => {
    expect(match('notlocal')).toBeUndefined();
    expect(match('x.notcluster.local')).toEqual(['10.96.0.10#53']);
    expect(match('example')).toBeUndefined();
    expect(match('example.com')).toBeUndefined();
  });

  it('ignores rules without servers', () => {
    expect(match('a.empty.example')).toBeUndefined();
    expect(table.domains().sort()).toEqual(['cluster.local', 'corp.example', 'local']);
  });

  it('rejects bad server addresses', () => {
    expect(() => new SplitTable([{ domain: 'x', servers: ['not-an-ip'] }])).toThrow(RangeError);
    expect(() => new SplitTable([{ domain: 'x', servers: ['10.0.0.1#0'] }])).toThrow(RangeError);
  });

  it('normalizes domains', () => {
    expect(normalizeDomain(' .Example.COM. ')).toBe('example.com');
  });
});

describe('splitRulesFromSettings', () => {
  const resolv = parseResolvConf('nameserver 10.96.0.10\nnameserver fd00::10\nnameserver 10.96.0.11\n');
  const settings = (env: NodeJS.ProcessEnv) => loadSettings({ env }).settings;

  it('defaults: "local" and the reverse zones of VPN_LOCAL_CIDRS to the IPv4 nameservers of the original resolv.conf', () => {
    const servers = ['10.96.0.10', '10.96.0.11'];
    const defaults = [
      { domain: 'local', servers },
      { domain: '10.in-addr.arpa', servers },
      { domain: '168.192.in-addr.arpa', servers },
    ];
    expect(splitRulesFromSettings(settings({}), resolv)).toEqual(defaults);
    expect(
      splitRulesFromSettings(settings({ DNS_LOCAL_CIDRS: 'local', DNS_LOCAL_SERVER: '' }), resolv),
    ).toEqual(defaults);
  });

  it('several domains, an explicit server, the reverse zones of both cluster-range settings', () => {
    const s = settings({
      DNS_LOCAL_CIDRS: 'cluster.local  corp.example,lan',
      DNS_LOCAL_SERVER: '10.0.0.53',
      VPN_LOCAL_CIDRS: '10.96.0.0/12',
      NOT_ROUTED_TO_GATEWAY_CIDRS: '10.100.0.0/16 fd00:10::/32',
    });
    expect(splitRulesFromSettings(s, resolv).map((r) => r.domain)).toEqual([
      'cluster.local',
      'corp.example',
      'lan',
      ...Array.from({ length: 16 }, (_, i) => `${96 + i}.10.in-addr.arpa`),
      // 10.100.0.0/16 is inside 10.96.0.0/12: no zone of its own
      '0.1.0.0.0.0.d.f.ip6.arpa',
    ]);
    expect(splitRulesFromSettings(s, resolv)[0]).toEqual({ domain: 'cluster.local', servers: ['10.0.0.53'] });
  });

  it('nothing when there is no server to use, or no domain', () => {
    expect(splitRulesFromSettings(settings({}), parseResolvConf('nameserver fd00::10\n'))).toEqual([]);
    expect(
      splitRulesFromSettings(settings({ DNS_LOCAL_CIDRS: '', DNS_LOCAL_SERVER: '10.0.0.53' }), resolv),
    ).toEqual([]);
  });
});

describe('reverseZones', () => {
  it.each([
    ['10.0.0.0/8', ['10.in-addr.arpa']],
    ['192.168.0.0/16', ['168.192.in-addr.arpa']],
    ['192.0.2.0/24', ['2.0.192.in-addr.arpa']],
    ['192.0.2.7', ['7.2.0.192.in-addr.arpa']],
    ['172.16.0.0/12', Array.from({ length: 16 }, (_, i) => `${16 + i}.172.in-addr.arpa`)],
    ['198.51.100.0/28', Array.from({ length: 16 }, (_, i) => `${i}.100.51.198.in-addr.arpa`)],
    ['198.51.100.17/30', ['16', '17', '18', '19'].map((o) => `${o}.100.51.198.in-addr.arpa`)],
    ['2001:db8::/32', ['8.b.d.0.1.0.0.2.ip6.arpa']],
    ['fd00::/20', ['0.0.0.d.f.ip6.arpa']],
    ['fd00:a::/31', ['a.0.0.0.0.0.d.f.ip6.arpa', 'b.0.0.0.0.0.d.f.ip6.arpa']],
    ['0.0.0.0/0', []],
    ['128.0.0.0/1', []], // not a cluster range
    ['fd00::/12', []],
    ['bad', []],
    ['10.0.0.0/33', []],
  ])('%s → %p', (cidr, zones) => {
    expect(reverseZones(cidr)).toEqual(zones);
  });
});
