import { loadSettings } from '@knet/podgw';
import { parseResolvConf } from './resolv';
import { SplitTable, normalizeDomain, splitRulesFromSettings } from './split';

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

  it('defaults: "local" to the IPv4 nameservers of the original resolv.conf', () => {
    expect(splitRulesFromSettings(settings({}), resolv)).toEqual([
      { domain: 'local', servers: ['10.96.0.10', '10.96.0.11'] },
    ]);
    expect(
      splitRulesFromSettings(settings({ DNS_LOCAL_CIDRS: 'local', DNS_LOCAL_SERVER: '' }), resolv),
    ).toEqual([{ domain: 'local', servers: ['10.96.0.10', '10.96.0.11'] }]);
  });

  it('several domains, an explicit server', () => {
    const s = settings({ DNS_LOCAL_CIDRS: 'cluster.local  corp.example,lan', DNS_LOCAL_SERVER: '10.0.0.53' });
    expect(splitRulesFromSettings(s, resolv)).toEqual([
      { domain: 'cluster.local', servers: ['10.0.0.53'] },
      { domain: 'corp.example', servers: ['10.0.0.53'] },
      { domain: 'lan', servers: ['10.0.0.53'] },
    ]);
  });

  it('nothing when there is no server to use, or no domain', () => {
    expect(splitRulesFromSettings(settings({}), parseResolvConf('nameserver fd00::10\n'))).toEqual([]);
    expect(
      splitRulesFromSettings(settings({ DNS_LOCAL_CIDRS: '', DNS_LOCAL_SERVER: '10.0.0.53' }), resolv),
    ).toEqual([]);
  });
});
