import { CommandError } from '../errors';
import { ZERO_MAC } from '../fdb';
import { createFakeHostNet } from '../host-net';
import { formatIp, networkOf, normalizeIp, parseIp, prefixContains } from '../addr-math';
import { FakeBridgeFdb } from './fake-bridge-fdb';
import { FakeIpRoute } from './fake-ip-route';
import { FakeCommandRunner } from './fake-runner';
import { FakeSysctl } from './fake-sysctl';

async function error(p: Promise<unknown>): Promise<CommandError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CommandError);
  return e as CommandError;
}

describe('FakeIpRoute', () => {
  it('starts like a fresh namespace with loopback up', async () => {
    const ip = new FakeIpRoute();
    expect((await ip.listLinks()).map((l) => [l.name, l.up])).toEqual([['lo', true]]);
    expect((await ip.listAddresses()).map((a) => a.cidr)).toEqual(['127.0.0.1/8', '::1/128']);
    expect((await ip.listRules()).map((r) => r.priority)).toEqual([0, 32766, 32767]);
    expect((await ip.listRules({ family: 'inet6' })).map((r) => r.priority)).toEqual([0, 32766]);
  });

  it('adds connected routes for addresses on up links only, and drops them with the link', async () => {
    const ip = new FakeIpRoute();
    await ip.addVeth('a0', 'a1');
    await ip.addAddress('a0', '192.0.2.77/24');
    await ip.addAddress('a0', '2001:db8::1/64', { nodad: true });
    expect(await ip.listRoutes()).toEqual([]);
    await ip.setLink('a0', { up: true });
    expect(await ip.listRoutes()).toEqual([
      {
        family: 'inet',
        table: 'main',
        type: 'unicast',
        dst: '192.0.2.0/24',
        dev: 'a0',
        protocol: 'kernel',
        scope: 'link',
        prefsrc: '192.0.2.77',
      },
    ]);
    expect((await ip.listRoutes({ family: 'inet6' }))[0]).toMatchObject({
      dst: '2001:db8::/64',
      metric: 256,
    });
    await ip.replaceRoute({ dst: '198.51.100.0/24', via: '192.0.2.1', table: 100 });
    expect((await ip.listRoutes({ table: 100 }))[0]).toMatchObject({ dev: 'a0', gateway: '192.0.2.1' });
    await ip.deleteLink('a1'); // deleting one end of a veth deletes both
    expect(await ip.findLink('a0')).toBeUndefined();
    expect(await ip.listRoutes({ table: 'all' })).toEqual([]);
    expect(await ip.listAddresses({ family: 'inet' })).toHaveLength(1);
  });

  it('routeTo picks the longest prefix over an up link, like `ip route get`', async () => {
    const ip = new FakeIpRoute();
    await ip.addVeth('eth0', 'p0');
    await ip.addVeth('tun0', 'p1');
    await ip.addAddress('eth0', '192.0.2.10/24');
    await ip.addAddress('tun0', '203.0.113.2/24');
    await ip.setLink('eth0', { up: true });
    await ip.setLink('tun0', { up: true });
    expect(await ip.routeTo('198.51.100.7')).toBeUndefined();
    await ip.replaceRoute({ dst: 'default', via: '192.0.2.1' });
    await ip.replaceRoute({ dst: '128.0.0.0/1', via: '203.0.113.1', dev: 'tun0' });
    expect(await ip.routeTo('198.51.100.7')).toEqual({
      family: 'inet',
      table: 'main',
      type: 'unicast',
      dst: '198.51.100.7',
      gateway: '203.0.113.1',
      dev: 'tun0',
    });
    expect((await ip.routeTo('192.0.2.99'))?.dev).toBe('eth0');
    await ip.setLink('tun0', { up: false });
    expect(await ip.routeTo('198.51.100.7')).toMatchObject({ dev: 'eth0', gateway: '192.0.2.1' });
  });

  it('replace overwrites a route with the same destination, table and metric', async () => {
    const ip = new FakeIpRoute();
    await ip.addBridge('br0');
    await ip.setLink('br0', { up: true, mtu: 1400 });
    await ip.replaceRoute({ dst: '198.51.100.7/32', dev: 'br0', table: 5 });
    await ip.replaceRoute({ dst: '198.51.100.7', dev: 'br0', table: 5, protocol: 'static' });
    await ip.replaceRoute({ dst: '198.51.100.7', dev: 'br0', table: 5, metric: 10 });
    expect(
      (await ip.listRoutes({ table: 5 })).map((r) => `${r.dst} ${r.protocol ?? '-'} ${r.metric ?? 0}`),
    ).toEqual(['198.51.100.7 static 0', '198.51.100.7 - 10']);
    await ip.replaceRoute({ dst: '203.0.113.0/24', type: 'blackhole' });
    expect((await ip.listRoutes()).find((r) => r.type === 'blackhole')).toMatchObject({
      dst: '203.0.113.0/24',
    });
    await ip.replaceRoute({ dst: '198.18.0.0/15', via: '203.0.113.1', dev: 'br0', onlink: true });
  });

  it('manages bridge ports and vxlan details', async () => {
    const ip = new FakeIpRoute();
    await ip.addVeth('e0', 'p0', { peerNamespace: 'knt-other', mtu: 9000 });
    expect(await ip.getLink('e0')).toMatchObject({ kind: 'veth', mtu: 9000, linkNetnsId: 0 });
    expect(await ip.findLink('p0')).toBeUndefined();
    await ip.addVxlan('vx0', { id: 7, dstPort: 4789, dev: 'e0', local: '192.0.2.1', learning: false });
    expect(await ip.getLink('vx0')).toMatchObject({
      mtu: 8950,
      vxlan: { id: 7, port: 4789, dev: 'e0', local: '192.0.2.1', learning: false },
    });
    await ip.addVxlan('vx1', { id: 7, dstPort: 8472 }); // same VNI on another port is fine
    expect((await error(ip.setLink('vx0', { master: 'e0' }))).stderr).toBe(
      'RTNETLINK answers: Operation not supported',
    );
    await ip.addBridge('br0');
    await ip.setLink('vx0', { master: 'br0', mac: '02:00:00:00:00:42' });
    expect(await ip.getLink('vx0')).toMatchObject({ master: 'br0', mac: '02:00:00:00:00:42' });
    await ip.deleteLink('br0');
    expect((await ip.getLink('vx0')).master).toBeUndefined();
    expect((await error(ip.deleteLink('lo'))).kind).toBe('no-device');
  });

  it('assigns rule priorities like the kernel and deletes the first match', async () => {
    const ip = new FakeIpRoute();
    await ip.addRule({ table: 100 });
    await ip.addRule({ fwmark: 1, table: 100 });
    await ip.addRule({ priority: 500, to: '198.51.100.0/24', table: 'main' });
    expect((await ip.listRules()).map((r) => `${r.priority}:${r.table}`)).toEqual([
      '0:local',
      '500:main',
      '32764:100',
      '32765:100',
      '32766:main',
      '32767:default',
    ]);
    await ip.deleteRule({ table: 100 });
    expect((await ip.listRules()).find((r) => r.priority === 32764)).toBeUndefined();
    await ip.addRule({ priority: 500, to: '198.51.100.0/24', table: 7 }); // same priority, other table: allowed
    expect((await error(ip.addRule({ priority: 500, table: 7 }))).kind).toBe('exists');
  });

  it('flushes addresses per family', async () => {
    const ip = new FakeIpRoute();
    await ip.addVeth('a0', 'a1');
    await ip.addAddress('a0', '192.0.2.1/24');
    await ip.addAddress('a0', '2001:db8::1/64');
    await ip.flushAddresses('a0', { family: 'inet' });
    expect((await ip.listAddresses({ dev: 'a0' })).map((a) => a.cidr)).toEqual(['2001:db8::1/64']);
    await ip.flushAddresses('a0');
    expect(await ip.listAddresses({ dev: 'a0' })).toEqual([]);
    expect((await error(ip.flushAddresses('zz'))).stderr).toBe('Device "zz" does not exist.');
  });
});

describe('FakeBridgeFdb', () => {
  it('works without a link registry and keeps (mac, dev, dst) unique', async () => {
    const fdb = new FakeBridgeFdb();
    await fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' });
    await fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' });
    await fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3' });
    await fdb.replace({ mac: '02:00:00:00:00:05', dev: 'vx0', dst: '192.0.2.5', state: 'dynamic' });
    await fdb.replace({ mac: '02:00:00:00:00:05', dev: 'vx0', dst: '192.0.2.6', target: 'master' });
    expect(await fdb.list({ dev: 'vx0' })).toEqual([
      { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2', flags: ['self'], state: 'permanent' },
      { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3', flags: ['self'], state: 'permanent' },
      { mac: '02:00:00:00:00:05', dev: 'vx0', dst: '192.0.2.6', flags: ['master'], state: 'permanent' },
    ]);
    await fdb.delete({ mac: '02:00:00:00:00:05', dev: 'vx0' });
    expect((await error(fdb.delete({ mac: '02:00:00:00:00:05', dev: 'vx0' }))).exitCode).toBe(255);
  });
});

describe('FakeSysctl', () => {
  it('knows the common keys, per-interface keys of existing links, and rejects others', async () => {
    const net = createFakeHostNet({ sysctls: { 'net.core.somaxconn': '4096' } });
    expect(await net.sysctl.get('net.core.somaxconn')).toBe('4096');
    await net.sysctl.set('net.ipv4.conf.default.rp_filter', 2);
    await net.ip.addBridge('br0');
    expect(await net.sysctl.get('net.ipv4.conf.br0.rp_filter')).toBe('2');
    await net.sysctl.set('net.ipv4.conf.br0.rp_filter', 0);
    expect(await net.sysctl.get('net.ipv4.conf.br0.rp_filter')).toBe('0');
    await net.ip.deleteLink('br0');
    expect((await error(net.sysctl.get('net.ipv4.conf.br0.rp_filter'))).kind).toBe('not-found');
    const plain = new FakeSysctl();
    expect((await error(plain.set('net.ipv4.nosuch', 1))).message).toBe(
      'sysctl -q -w net.ipv4.nosuch=1 failed (exit 1): sysctl: cannot stat /proc/sys/net/ipv4/nosuch: No such file or directory',
    );
  });
});

describe('FakeCommandRunner', () => {
  it('records calls and scripts failures with the namespace prefix', async () => {
    const r = new FakeCommandRunner((c) =>
      c.cmd === 'false' ? { exitCode: 1, stderr: 'nope' } : { stdout: 'ok' },
    );
    expect(await r.run('echo', ['x'])).toEqual({ stdout: 'ok', stderr: '' });
    const e = await error(r.run('false', [], { namespace: 'knt-a' }));
    expect(e.message).toBe('ip netns exec knt-a false failed (exit 1): nope');
    expect(r.commandLines()).toEqual(['echo x', 'false']);
  });
});

describe('addr-math', () => {
  it.each([
    ['192.0.2.77/24', '192.0.2.0/24'],
    ['2001:db8:0:0:1::5/64', '2001:db8::/64'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
  ])('networkOf(%s) = %s', (cidr, net) => {
    expect(networkOf(cidr)).toBe(net);
  });

  it('formats and compares addresses', () => {
    expect(normalizeIp('2001:DB8:0:0::1')).toBe('2001:db8::1');
    expect(normalizeIp('::')).toBe('::');
    expect(formatIp(true, parseIp('fe80::1:0:0:1')!.value)).toBe('fe80::1:0:0:1');
    expect(prefixContains('192.0.2.0/24', '192.0.2.200')).toBe(true);
    expect(prefixContains('192.0.2.0/24', '192.0.3.1')).toBe(false);
    expect(prefixContains('2001:db8::/64', '2001:db8::99')).toBe(true);
    expect(prefixContains('192.0.2.0/24', '2001:db8::1')).toBe(false);
    expect(parseIp('300.1.1.1')).toBeUndefined();
    expect(parseIp('1::2::3')).toBeUndefined();
  });
});
