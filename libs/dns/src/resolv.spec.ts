import { ipv4Nameservers, parseResolvConf } from './resolv';

describe('parseResolvConf', () => {
  it('reads nameservers in order, IPv4 and IPv6, and the search list', () => {
    const conf = parseResolvConf(
      [
        '# written by the VPN client',
        'nameserver 10.8.0.1',
        '   nameserver\t2001:db8::53  # trailing comment',
        '; another comment',
        'nameserver fe80::1%eth0',
        'search Default.svc.cluster.local. svc.cluster.local cluster.local',
        'options ndots:5',
      ].join('\n'),
    );
    expect(conf.nameservers).toEqual(['10.8.0.1', '2001:db8::53', 'fe80::1%eth0']);
    expect(conf.search).toEqual(['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
  });

  it('skips what is not an IP address and duplicates', () => {
    const conf = parseResolvConf(
      'nameserver dns.example\nnameserver 1.1.1.1\nnameserver 1.1.1.1\nnameserver\nNAMESERVER 9.9.9.9\n',
    );
    expect(conf.nameservers).toEqual(['1.1.1.1']);
  });

  it('handles CRLF, empty files and the older domain keyword', () => {
    expect(parseResolvConf('nameserver 10.0.0.10\r\ndomain example.org\r\n')).toEqual({
      nameservers: ['10.0.0.10'],
      search: ['example.org'],
      options: [],
    });
    expect(parseResolvConf('')).toEqual({ nameservers: [], search: [], options: [] });
  });

  it('reads options in order, a later one of a name replacing the earlier (the webhook copies them)', () => {
    const conf = parseResolvConf('options ndots:5 timeout:2\noptions rotate ndots:2 # comment\n');
    expect(conf.options).toEqual([
      { name: 'timeout', value: '2' },
      { name: 'rotate' },
      { name: 'ndots', value: '2' },
    ]);
  });

  it('ipv4Nameservers keeps the IPv4 ones (DNS_LOCAL_SERVER default)', () => {
    expect(ipv4Nameservers(parseResolvConf('nameserver fd00::10\nnameserver 10.96.0.10\n'))).toEqual([
      '10.96.0.10',
    ]);
  });
});
