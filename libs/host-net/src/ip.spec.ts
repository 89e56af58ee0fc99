import {
  ADDRS,
  FDB,
  FDB_VX0,
  globalAddress,
  LINKS_DETAILED,
  NEIGHS,
  ROUTES6,
  ROUTES_ALL,
  ROUTES_TABLE_100,
  RULES,
  RULES6,
  table100Routes,
  WG_LINK_USERSPACE,
} from '../test/fixtures/captured';
import { CommandError, OutputParseError } from './errors';
import { fdbArgs, parseFdb, ExecBridgeFdb, ZERO_MAC } from './fdb';
import { FakeCommandRunner } from './fakes/fake-runner';
import { ExecIpRoute } from './ip';
import { ipArgs } from './ip-args';
import { parseAddresses, parseLinks, parseNeighbours, parseRoutes, parseRules } from './ip-parse';
import { ExecSysctl, sysctlArgs } from './sysctl';

describe('ip -j parsers on captured output', () => {
  it('links: kinds, master, veth peer netns, vxlan details', () => {
    const links = parseLinks(LINKS_DETAILED);
    expect(links.map((l) => [l.name, l.kind ?? '-', l.up, l.mtu, l.master ?? '-'])).toEqual([
      ['lo', '-', true, 65536, '-'],
      ['ve0', 'veth', true, 1450, '-'],
      ['br0', 'bridge', true, 1400, '-'],
      ['vx0', 'vxlan', true, 1400, 'br0'],
    ]);
    expect(links[1]).toMatchObject({ linkNetnsId: 0, mac: '86:1d:75:3b:7c:8b', operState: 'UP' });
    expect(links[3]!.vxlan).toEqual({ id: 42, port: 4789, local: '192.0.2.1', dev: 've0', learning: false });
    expect(links[2]!.flags).toContain('NO-CARRIER');
    expect(parseLinks(WG_LINK_USERSPACE)[0]).toMatchObject({ name: 'wg0', kind: 'tun', mtu: 1420, up: true });
  });

  it('addresses: v4 and v6, scopes, tentative', () => {
    const addrs = parseAddresses(ADDRS);
    expect(addrs.map((a) => `${a.dev} ${a.cidr} ${a.scope}${a.tentative ? ' tentative' : ''}`)).toEqual([
      'lo 127.0.0.1/8 host',
      'lo ::1/128 host',
      've0 192.0.2.1/24 global',
      've0 2001:db8::1/64 global',
      've0 fe80::841d:75ff:fe3b:7c8b/64 link tentative',
      'vx0 fe80::80b0:cdff:fea9:8a5b/64 link tentative',
    ]);
    expect(addrs[2]).toEqual(globalAddress());
  });

  it('routes: the queried table fills in, table all keeps each table', () => {
    expect(parseRoutes(ROUTES_TABLE_100, 'inet', '100')).toEqual(table100Routes());
    const all = parseRoutes(ROUTES_ALL, 'inet', 'all');
    expect(new Set(all.map((r) => r.table))).toEqual(new Set(['100', 'main', 'local']));
    expect(all.find((r) => r.dst === '203.0.113.0/24')).toEqual({
      family: 'inet',
      table: 'main',
      type: 'unicast',
      dst: '203.0.113.0/24',
      dev: 've0',
      protocol: 'static',
      scope: 'link',
      prefsrc: '192.0.2.1',
    });
    expect(all.find((r) => r.dst === '127.0.0.1')).toMatchObject({
      type: 'local',
      table: 'local',
      scope: 'host',
    });
    expect(parseRoutes(ROUTES6, 'inet6', 'main')[0]).toEqual({
      family: 'inet6',
      table: 'main',
      type: 'unicast',
      dst: '2001:db8::/64',
      dev: 've0',
      protocol: 'kernel',
      metric: 256,
    });
  });

  it('rules: prefixes, fwmark/mask, defaults', () => {
    expect(parseRules(RULES, 'inet')).toEqual([
      { family: 'inet', priority: 0, from: 'all', table: 'local' },
      { family: 'inet', priority: 1000, from: '192.0.2.0/24', to: '198.51.100.0/24', table: '100' },
      { family: 'inet', priority: 1001, from: 'all', fwmark: 0x10, fwmask: 0xff, table: '100' },
      { family: 'inet', priority: 32766, from: 'all', table: 'main' },
      { family: 'inet', priority: 32767, from: 'all', table: 'default' },
    ]);
    expect(parseRules(RULES6, 'inet6')[1]).toEqual({
      family: 'inet6',
      priority: 1002,
      from: '2001:db8::/64',
      table: '100',
    });
    expect(parseRules('[{"priority":5,"src":"192.0.2.7","table":"7"}]', 'inet')[0]!.from).toBe('192.0.2.7');
  });

  it('neighbours: states, missing lladdr, dev filled in when filtered', () => {
    expect(parseNeighbours(NEIGHS)).toEqual([
      { family: 'inet', dst: '192.0.2.2', dev: 've0', lladdr: 'c6:46:08:a0:d3:be', state: ['REACHABLE'] },
      { family: 'inet', dst: '192.0.2.3', dev: 've0', state: ['INCOMPLETE'] },
      { family: 'inet', dst: '192.0.2.9', dev: 've0', lladdr: '02:00:00:00:00:09', state: ['PERMANENT'] },
    ]);
    expect(
      parseNeighbours('[{"dst":"2001:db8::9","lladdr":"02:00:00:00:00:09","state":["STALE"]}]', 'eth0')[0],
    ).toMatchObject({
      family: 'inet6',
      dev: 'eth0',
    });
  });

  it('fdb: vxlan all-zeros remotes, bridge entries, dev filled in', () => {
    expect(parseFdb(FDB_VX0, 'vx0')).toEqual([
      { mac: '82:b0:cd:a9:8a:5b', dev: 'vx0', master: 'br0', flags: [], state: 'permanent' },
      { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2', flags: ['self'], state: 'permanent' },
      { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3', flags: ['self'], state: 'permanent' },
    ]);
    const all = parseFdb(FDB);
    expect(all.filter((e) => e.dst).map((e) => `${e.dev} ${e.dst}`)).toEqual([
      'vx0 192.0.2.2',
      'vx0 192.0.2.3',
    ]);
    expect(new Set(all.map((e) => e.dev))).toEqual(new Set(['ve0', 'br0', 'vx0']));
  });

  it('rejects malformed output with a one-line OutputParseError', () => {
    expect(() => parseLinks('not json', 'ip -j -d link show')).toThrow(OutputParseError);
    expect(() => parseLinks('[{"ifname":"x"}]', 'ip -j -d link show')).toThrow(
      /^could not parse the output of ip -j -d link show: 0\.ifindex: /,
    );
    expect(parseLinks('')).toEqual([]);
  });
});

describe('ip argv builders', () => {
  it.each<[string, string[], string]>([
    [
      'veth',
      ipArgs.addVeth('a0', 'b0', { peerNamespace: 'knt-x', mtu: 1400 }),
      'link add a0 mtu 1400 type veth peer name b0 netns knt-x',
    ],
    ['bridge', ipArgs.addBridge('br0'), 'link add br0 type bridge'],
    [
      'vxlan',
      ipArgs.addVxlan('vx0', {
        id: 42,
        dstPort: 4789,
        local: '192.0.2.1',
        dev: 'eth0',
        learning: false,
        ttl: 64,
      }),
      'link add vx0 type vxlan id 42 dstport 4789 local 192.0.2.1 dev eth0 nolearning ttl 64',
    ],
    [
      'vxlan learning',
      ipArgs.addVxlan('vx0', { id: 1, dstPort: 8472, learning: true }),
      'link add vx0 type vxlan id 1 dstport 8472 learning',
    ],
    ['wireguard', ipArgs.addWireGuard('wg0'), 'link add wg0 type wireguard'],
    [
      'set',
      ipArgs.setLink('vx0', { mtu: 1400, master: 'br0', up: true }),
      'link set dev vx0 mtu 1400 master br0 up',
    ],
    ['nomaster', ipArgs.setLink('vx0', { master: null, up: false }), 'link set dev vx0 nomaster down'],
    ['addr v4', ipArgs.addAddress('eth0', '192.0.2.1/24'), '-4 addr add 192.0.2.1/24 dev eth0'],
    ['addr host', ipArgs.addAddress('eth0', '192.0.2.1'), '-4 addr add 192.0.2.1/32 dev eth0'],
    [
      'addr v6',
      ipArgs.addAddress('eth0', '2001:db8::1/64', { nodad: true }),
      '-6 addr add 2001:db8::1/64 dev eth0 nodad',
    ],
    ['flush', ipArgs.flushAddresses('eth0', { family: 'inet6' }), '-6 addr flush dev eth0'],
    ['routes', ipArgs.listRoutes({ table: 100, family: 'inet6' }), '-j -6 route show table 100'],
    [
      'route',
      ipArgs.replaceRoute({
        dst: '198.51.100.0/24',
        via: '192.0.2.2',
        dev: 'eth0',
        src: '192.0.2.1',
        table: 100,
        metric: 5,
        protocol: 'static',
        onlink: true,
        mtu: 1400,
      }),
      '-4 route replace 198.51.100.0/24 via 192.0.2.2 dev eth0 src 192.0.2.1 proto static metric 5 table 100 onlink mtu 1400',
    ],
    [
      'default v6',
      ipArgs.replaceRoute({ dst: 'default', via: '2001:db8::1' }),
      '-6 route replace default via 2001:db8::1',
    ],
    [
      'blackhole',
      ipArgs.replaceRoute({ dst: '203.0.113.0/24', type: 'blackhole', table: 7 }),
      '-4 route replace blackhole 203.0.113.0/24 table 7',
    ],
    [
      'route del',
      ipArgs.deleteRoute({ dst: '198.51.100.0/24', table: 100 }),
      '-4 route del 198.51.100.0/24 table 100',
    ],
    [
      'rule',
      ipArgs.addRule({
        priority: 1000,
        from: '192.0.2.0/24',
        to: '198.51.100.0/24',
        fwmark: 0x10,
        fwmask: 0xff,
        iif: 'eth0',
        table: 100,
      }),
      '-4 rule add priority 1000 from 192.0.2.0/24 to 198.51.100.0/24 fwmark 0x10/0xff iif eth0 table 100',
    ],
    [
      'rule v6',
      ipArgs.deleteRule({ from: '2001:db8::/64', table: 'main' }),
      '-6 rule del from 2001:db8::/64 table main',
    ],
    [
      'neigh',
      ipArgs.replaceNeighbour({ dst: '192.0.2.9', dev: 'eth0', lladdr: '02:00:00:00:00:09' }),
      '-4 neigh replace 192.0.2.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent',
    ],
    [
      'neigh del',
      ipArgs.deleteNeighbour({ dst: '2001:db8::9', dev: 'eth0' }),
      '-6 neigh del 2001:db8::9 dev eth0',
    ],
    [
      'fdb append',
      fdbArgs.change('append', { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' }),
      'fdb append 00:00:00:00:00:00 dev vx0 dst 192.0.2.2 self permanent',
    ],
    [
      'fdb replace',
      fdbArgs.change('replace', {
        mac: '02:AA:00:00:00:01',
        dev: 'vx0',
        dst: '192.0.2.2',
        vni: 7,
        target: 'master',
        state: 'static',
      }),
      'fdb replace 02:aa:00:00:00:01 dev vx0 dst 192.0.2.2 vni 7 master static',
    ],
    [
      'fdb del',
      fdbArgs.change('del', { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' }),
      'fdb del 00:00:00:00:00:00 dev vx0 dst 192.0.2.2',
    ],
    ['sysctl get', sysctlArgs.get('net.ipv4.conf.eth0.rp_filter'), '-n net.ipv4.conf.eth0.rp_filter'],
    ['sysctl set', sysctlArgs.set('net.ipv4.ip_forward', 1), '-q -w net.ipv4.ip_forward=1'],
  ])('%s', (_name, args, want) => {
    expect(args.join(' ')).toBe(want);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['long name', () => ipArgs.addBridge('a-very-long-name0'), /invalid interface name/],
    ['space in name', () => ipArgs.addVeth('a b', 'c'), /invalid interface name/],
    ['vni', () => ipArgs.addVxlan('vx0', { id: 1 << 24, dstPort: 4789 }), /invalid VXLAN id/],
    ['no changes', () => ipArgs.setLink('eth0', {}), /no changes/],
    ['mac', () => fdbArgs.change('append', { mac: 'zz', dev: 'vx0' }), /invalid MAC/],
    ['sysctl key', () => sysctlArgs.get('net/../../etc'), /invalid sysctl key/],
    ['sysctl value', () => sysctlArgs.set('net.ipv4.ip_forward', '1\n2'), /newline/],
  ])('rejects %s', (_name, fn, err) => {
    expect(fn).toThrow(err);
  });
});

describe('ExecIpRoute / ExecBridgeFdb / ExecSysctl over a scripted runner', () => {
  it('runs ip with the built argv and parses -j output', async () => {
    const runner = new FakeCommandRunner((c) =>
      c.args.includes('-j') ? { stdout: ROUTES_TABLE_100 } : undefined,
    );
    const ip = new ExecIpRoute(runner);
    expect(await ip.listRoutes({ table: 100 })).toHaveLength(2);
    await ip.addAddress('eth0', '192.0.2.1/24');
    expect(runner.commandLines()).toEqual([
      'ip -j -4 route show table 100',
      'ip -4 addr add 192.0.2.1/24 dev eth0',
    ]);
  });

  it('treats a numbered table that does not exist yet as empty', async () => {
    const runner = new FakeCommandRunner(() => ({
      exitCode: 2,
      stderr: 'Error: ipv4: FIB table does not exist.\nDump terminated',
    }));
    expect(await new ExecIpRoute(runner).listRoutes({ table: 55 })).toEqual([]);
  });

  it('routeTo asks `ip route get` and gives undefined for an unreachable destination', async () => {
    const runner = new FakeCommandRunner((c) =>
      c.args.includes('203.0.113.9')
        ? { exitCode: 2, stderr: 'RTNETLINK answers: Network is unreachable' }
        : {
            stdout:
              '[{"dst":"198.51.100.7","gateway":"192.0.2.1","dev":"tun0","prefsrc":"192.0.2.10","flags":[],"uid":0,"cache":[]}]',
          },
    );
    const ip = new ExecIpRoute(runner);
    expect(await ip.routeTo('198.51.100.7')).toMatchObject({ dst: '198.51.100.7', dev: 'tun0' });
    expect(await ip.routeTo('203.0.113.9')).toBeUndefined();
    expect(runner.commandLines()).toEqual([
      'ip -j -4 route get 198.51.100.7',
      'ip -j -4 route get 203.0.113.9',
    ]);
    const broken = new FakeCommandRunner(() => ({ exitCode: 1, stderr: 'Error: inet prefix is expected' }));
    await expect(new ExecIpRoute(broken).routeTo('198.51.100.7')).rejects.toThrow(/inet prefix/);
  });

  it('findLink returns undefined for a missing device and rethrows other errors', async () => {
    const missing = new FakeCommandRunner(() => ({ exitCode: 1, stderr: 'Device "eth9" does not exist.' }));
    expect(await new ExecIpRoute(missing).findLink('eth9')).toBeUndefined();
    const broken = new FakeCommandRunner(() => ({
      exitCode: 2,
      stderr: 'RTNETLINK answers: Operation not permitted',
    }));
    await expect(new ExecIpRoute(broken).findLink('eth9')).rejects.toBeInstanceOf(CommandError);
  });

  it('fills in the dev of fdb and neighbour lists filtered by dev', async () => {
    const runner = new FakeCommandRunner((c) => ({
      stdout: c.cmd === 'bridge' ? FDB_VX0 : '[{"dst":"192.0.2.9","state":["FAILED"]}]',
    }));
    expect((await new ExecBridgeFdb(runner).list({ dev: 'vx0' })).every((e) => e.dev === 'vx0')).toBe(true);
    expect((await new ExecIpRoute(runner).listNeighbours({ dev: 'eth0' }))[0]!.dev).toBe('eth0');
    expect(runner.commandLines()).toEqual(['bridge -j fdb show dev vx0', 'ip -j neigh show dev eth0']);
  });

  it('sysctl trims values', async () => {
    const runner = new FakeCommandRunner(() => ({ stdout: '1\n' }));
    expect(await new ExecSysctl(runner).get('net.ipv4.ip_forward')).toBe('1');
  });
});
