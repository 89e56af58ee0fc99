import { expectConverges, fakeVethNet } from '../test/fixtures/lab-net';
import { describeDrift } from './drift';
import { FakeCommandRunner } from './fakes/fake-runner';
import { ExecIpRoute } from './ip';
import type { RouteSpec } from './ip-types';
import { RouteTable } from './route-table';

const routes = (t: RouteTable) =>
  t.owned().then((rs) => rs.map((r) => `${r.dst} ${r.gateway ?? '-'} ${r.dev ?? '-'} ${r.metric ?? '-'}`));

const A: RouteSpec = { dst: '198.51.100.0/24', via: '192.0.2.2' };
const B: RouteSpec = { dst: '203.0.113.7/32', dev: 'v0' };
const C6: RouteSpec = { dst: '2001:db8:1::/64', via: '2001:db8::2' };

describe('RouteTable', () => {
  it('adds IPv4 and IPv6 routes with its table and protocol, and a second set changes nothing', async () => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 1107, protocol: 77 });
    const first = await table.set([A, B, C6]);
    expect(first.changed).toBe(true);
    expect(first.drift.map(describeDrift)).toEqual([
      'route 198.51.100.0/24 via 192.0.2.2 table 1107: missing',
      'route 203.0.113.7 dev v0 table 1107: missing',
      'route 2001:db8:1::/64 via 2001:db8::2 table 1107: missing',
    ]);
    expect(await routes(table)).toEqual([
      '198.51.100.0/24 192.0.2.2 v0 -',
      '203.0.113.7 - v0 -',
      '2001:db8:1::/64 2001:db8::2 v0 1024',
    ]);
    expect((await net.ip.listRoutes({ table: 1107 })).map((r) => r.protocol)).toEqual(['77', '77']);
    expect(await table.set([A, B, C6])).toEqual({ changed: false, drift: [] });
    expect(await table.drift()).toEqual([]);
  });

  it.each<[string, RouteSpec[], RouteSpec[], string[], string[]]>([
    [
      'a changed gateway is replaced in place',
      [A],
      [{ ...A, via: '192.0.2.3' }],
      ['route 198.51.100.0/24 via 192.0.2.3 table 1107: via 192.0.2.2 → 192.0.2.3'],
      ['198.51.100.0/24 192.0.2.3 v0 -'],
    ],
    [
      'a route no longer desired is removed',
      [A, B],
      [B],
      ['route 198.51.100.0/24 via 192.0.2.2 dev v0 table 1107: not desired'],
      ['203.0.113.7 - v0 -'],
    ],
    [
      'another metric is another route',
      [A],
      [{ ...A, metric: 10 }],
      [
        'route 198.51.100.0/24 via 192.0.2.2 metric 10 table 1107: missing',
        'route 198.51.100.0/24 via 192.0.2.2 dev v0 table 1107: not desired',
      ],
      ['198.51.100.0/24 192.0.2.2 v0 10'],
    ],
    [
      'type, source and scope are compared',
      [B],
      [{ ...B, src: '192.0.2.1', scope: 'link' }],
      ['route 203.0.113.7 dev v0 src 192.0.2.1 table 1107: src - → 192.0.2.1'],
      ['203.0.113.7 - v0 -'],
    ],
    [
      'a blackhole replaces a unicast route',
      [B],
      [{ dst: '203.0.113.7', type: 'blackhole' }],
      ['route blackhole 203.0.113.7 table 1107: type unicast → blackhole'],
      ['203.0.113.7 - - -'],
    ],
    [
      'host prefixes, IPv6 spelling and the IPv6 default metric compare equal',
      [{ dst: '2001:DB8:1:0::/64', via: '2001:db8::2', metric: 1024 }],
      [C6],
      [],
      ['2001:db8:1::/64 2001:db8::2 v0 1024'],
    ],
  ])('%s', async (_name, before, after, drift, live) => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 1107, protocol: 77 });
    await table.set(before);
    await expectConverges(table, after, drift, () => routes(table), live);
    expect(await table.drift()).toEqual([]);
  });

  it('never touches routes of another protocol or another table, in set and in cleanup', async () => {
    const net = await fakeVethNet();
    await net.ip.replaceRoute({ dst: '198.51.100.0/24', via: '192.0.2.9', table: 1107, protocol: 'static' });
    await net.ip.replaceRoute({ dst: '198.51.100.128/25', via: '192.0.2.9', table: 1107 });
    await net.ip.replaceRoute({ dst: '203.0.113.0/24', via: '192.0.2.9', table: 1108, protocol: 77 });
    const foreign = async () =>
      [
        ...(await net.ip.listRoutes({ table: 1107 })).filter((r) => r.protocol !== '77'),
        ...(await net.ip.listRoutes({ table: 1108 })),
      ].map((r) => `${r.table} ${r.dst} ${r.protocol ?? '-'}`);
    const before = await foreign();
    expect(before).toHaveLength(3);

    const table = new RouteTable(net.ip, { table: 1107, protocol: 77 });
    expect(await table.drift([])).toEqual([]);
    await table.set([{ dst: '192.0.2.128/25', via: '192.0.2.2' }, C6]);
    expect(await foreign()).toEqual(before);
    const cleanup = await table.cleanup();
    expect(cleanup.drift.map(describeDrift)).toEqual([
      'route 192.0.2.128/25 via 192.0.2.2 dev v0 table 1107: not desired',
      'route 2001:db8:1::/64 via 2001:db8::2 dev v0 metric 1024 table 1107: not desired',
    ]);
    expect(await table.owned()).toEqual([]);
    expect(await foreign()).toEqual(before);
    expect(await table.cleanup()).toEqual({ changed: false, drift: [] });
  });

  it('takes over a foreign route at a desired key (the kernel keeps one route per key)', async () => {
    const net = await fakeVethNet();
    await net.ip.replaceRoute({ dst: '198.51.100.0/24', via: '192.0.2.9', table: 1107, protocol: 'boot' });
    const table = new RouteTable(net.ip, { table: 1107, protocol: 77 });
    expect((await table.set([A])).drift.map((d) => d.kind)).toEqual(['missing']);
    expect((await net.ip.listRoutes({ table: 1107 })).map((r) => `${r.gateway} ${r.protocol}`)).toEqual([
      '192.0.2.2 77',
    ]);
  });

  it('drift reports without changing anything, against the last desired state by default', async () => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 'main', protocol: 'static' });
    expect(await table.drift()).toEqual([]);
    await table.set([A]);
    await net.ip.deleteRoute({ ...A, table: 'main' });
    expect((await table.drift()).map(describeDrift)).toEqual([
      'route 198.51.100.0/24 via 192.0.2.2: missing',
    ]);
    expect(await table.owned()).toEqual([]);
  });

  it('names protocols and tables as ip prints them (4 is static, 254 is main)', async () => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 254, protocol: 4 });
    await table.set([{ ...A, protocol: 'static', table: 'main' }]);
    expect((await net.ip.listRoutes()).find((r) => r.dst === A.dst)?.protocol).toBe('static');
    expect(await table.set([A])).toEqual({ changed: false, drift: [] });
  });

  it.each<[string, RouteSpec, RegExp]>([
    [
      'another table',
      { ...A, table: 100 },
      /route table 1107 proto 77: route 198.51.100.0\/24 names table 100/,
    ],
    ['another protocol', { ...A, protocol: 'static' }, /names protocol static: leave it out or use 77/],
    ['a bad prefix', { dst: '198.51.100.0/33', dev: 'v0' }, /route 198.51.100.0\/33: not a prefix/],
  ])('rejects a route with %s before running anything', async (_name, route, message) => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 1107, protocol: 77 });
    await expect(table.set([route])).rejects.toThrow(message);
    await expect(table.set([route])).rejects.toBeInstanceOf(TypeError);
    expect(await table.owned()).toEqual([]);
  });

  it('rejects a family it does not manage', async () => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 1107, protocol: 77, families: ['inet'] });
    await expect(table.set([C6])).rejects.toThrow(/is inet6, but this table manages inet only/);
  });

  it('the first failure stops the pass and is thrown; the next set carries on', async () => {
    const net = await fakeVethNet();
    const table = new RouteTable(net.ip, { table: 1107, protocol: 77 });
    const unreachable = { dst: '203.0.113.0/24', via: '198.18.0.1' };
    await expect(table.set([A, unreachable, B])).rejects.toMatchObject({
      message: expect.stringContaining('route replace 203.0.113.0/24 via 198.18.0.1 proto 77 table 1107'),
    });
    expect(await routes(table)).toEqual(['198.51.100.0/24 192.0.2.2 v0 -']);
    await table.set([A, B]);
    expect(await routes(table)).toEqual(['198.51.100.0/24 192.0.2.2 v0 -', '203.0.113.7 - v0 -']);
  });

  it('owns no IPv6 routes on a kernel without IPv6', async () => {
    const runner = new FakeCommandRunner((call) =>
      call.args.includes('-6')
        ? { exitCode: 255, stderr: 'RTNETLINK answers: Address family not supported by protocol' }
        : {
            stdout: '[{"dst":"198.51.100.0/24","gateway":"192.0.2.2","dev":"v0","protocol":"77","flags":[]}]',
          },
    );
    const table = new RouteTable(new ExecIpRoute(runner), { table: 1107, protocol: 77 });
    expect((await table.owned()).map((r) => r.dst)).toEqual(['198.51.100.0/24']);
    expect(runner.commandLines()).toEqual([
      'ip -j -4 route show table 1107',
      'ip -j -6 route show table 1107',
    ]);
  });
});
