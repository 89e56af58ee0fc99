import { readFileSync } from 'node:fs';
import { NetLab } from '@knet/testing';
import { CommandError, ZERO_MAC } from '../src';
import { globalAddress, table100Routes } from './fixtures/captured';
import { hostNetFor } from './helpers';

jest.setTimeout(60_000);

let lab: NetLab;
afterEach(async () => {
  await lab?.dispose();
});

describe('ip wrappers in network namespaces', () => {
  it('configures two hosts through the wrappers and they ping over a veth', async () => {
    lab = await NetLab.create();
    const a = await lab.addHost('a');
    const b = await lab.addHost('b');
    await lab.createVeth(a, 'eth0', b, 'eth0');
    const na = hostNetFor(a).net;
    const nb = hostNetFor(b).net;

    await na.ip.addAddress('eth0', '192.0.2.1/24');
    await nb.ip.addAddress('eth0', '192.0.2.2/24');
    await na.ip.setLink('eth0', { up: true, mtu: 1400 });
    await nb.ip.setLink('eth0', { up: true, mtu: 1400 });

    const link = await na.ip.getLink('eth0');
    expect(link).toMatchObject({
      name: 'eth0',
      kind: 'veth',
      up: true,
      mtu: 1400,
      linkNetnsId: expect.any(Number),
    });
    expect(await na.ip.listAddresses({ dev: 'eth0', family: 'inet' })).toEqual([globalAddress('eth0')]);
    expect(await na.ip.listRoutes()).toContainEqual(
      expect.objectContaining({
        dst: '192.0.2.0/24',
        dev: 'eth0',
        table: 'main',
        protocol: 'kernel',
        prefsrc: '192.0.2.1',
      }),
    );
    expect(await a.ping('192.0.2.2')).toBe(true);
    expect(await b.ping('192.0.2.1')).toBe(true);

    const dup = await na.ip.addAddress('eth0', '192.0.2.1/24').catch((e: unknown) => e);
    expect(dup).toBeInstanceOf(CommandError);
    expect((dup as CommandError).kind).toBe('exists');
    expect((dup as CommandError).message).toBe(
      `ip netns exec ${a.name} ip -4 addr add 192.0.2.1/24 dev eth0 failed (exit 2): Error: ipv4: Address already assigned.`,
    );

    await na.ip.setLink('eth0', { up: false });
    expect(await a.ping('192.0.2.2')).toBe(false);
  });

  it('builds a vxlan over a veth with fdb, routes, rules, neighbours and sysctls', async () => {
    const rootForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    lab = await NetLab.create();
    const a = await lab.addHost('a');
    const b = await lab.addHost('b');
    await lab.link(a, b, { a: { address: '192.0.2.1/24' }, b: { address: '192.0.2.2/24' } });
    const { ip, fdb, sysctl } = hostNetFor(a).net;
    const remote = hostNetFor(b).net;

    // VXLAN 42 on both ends; on a it is a bridge port, on b it carries the overlay address itself.
    await ip.addVxlan('vx0', { id: 42, dstPort: 4789, local: '192.0.2.1', dev: 'eth0', learning: false });
    await ip.addBridge('br0');
    await ip.setLink('vx0', { master: 'br0', up: true });
    await ip.setLink('br0', { up: true });
    await ip.addAddress('br0', '203.0.113.1/24');
    await remote.ip.addVxlan('vx0', {
      id: 42,
      dstPort: 4789,
      local: '192.0.2.2',
      dev: 'eth0',
      learning: false,
    });
    await remote.ip.setLink('vx0', { up: true });
    await remote.ip.addAddress('vx0', '203.0.113.2/24');

    const vx = await ip.getLink('vx0');
    expect(vx).toMatchObject({
      kind: 'vxlan',
      master: 'br0',
      vxlan: { id: 42, port: 4789, local: '192.0.2.1', dev: 'eth0', learning: false },
    });
    expect(vx.mtu).toBe(1450);
    expect((await ip.listLinks()).map((l) => l.name).sort()).toEqual(['br0', 'eth0', 'lo', 'vx0']);

    // No remote yet: nothing crosses the tunnel.
    expect(await a.ping('203.0.113.2')).toBe(false);
    await fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' });
    await fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3' });
    await fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2' }); // already there: no-op
    await remote.fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.1' });
    const zeros = (await fdb.list({ dev: 'vx0' })).filter((e) => e.mac === ZERO_MAC);
    expect(zeros).toEqual([
      { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.2', flags: ['self'], state: 'permanent' },
      { mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3', flags: ['self'], state: 'permanent' },
    ]);
    await a.waitForPing('203.0.113.2', { timeoutMs: 5_000 });
    await fdb.delete({ mac: ZERO_MAC, dev: 'vx0', dst: '192.0.2.3' });
    expect((await fdb.list({ dev: 'vx0' })).filter((e) => e.mac === ZERO_MAC).map((e) => e.dst)).toEqual([
      '192.0.2.2',
    ]);
    const learned = await fdb.list();
    expect(learned.some((e) => e.dev === 'vx0' && e.master === 'br0')).toBe(true);

    // Routes in a numbered table, v4 and v6.
    expect(await ip.listRoutes({ table: 100 })).toEqual([]);
    await ip.replaceRoute({ dst: '198.51.100.0/24', via: '192.0.2.2', table: 100 });
    await ip.replaceRoute({ dst: 'default', via: '192.0.2.2', table: 100, metric: 5 });
    await ip.replaceRoute({
      dst: '198.51.100.0/24',
      via: '192.0.2.2',
      dev: 'eth0',
      table: 100,
      protocol: 'static',
    });
    const [viaDefault, viaPrefix] = table100Routes('eth0');
    expect(await ip.listRoutes({ table: 100 })).toEqual([viaDefault, { ...viaPrefix, protocol: 'static' }]);
    await ip.addAddress('eth0', '2001:db8::1/64', { nodad: true });
    await ip.replaceRoute({ dst: '2001:db8:1::/64', via: '2001:db8::2', table: 100 });
    expect(await ip.listRoutes({ table: 100, family: 'inet6' })).toContainEqual(
      expect.objectContaining({
        family: 'inet6',
        dst: '2001:db8:1::/64',
        gateway: '2001:db8::2',
        table: '100',
      }),
    );
    expect(await ip.listRoutes({ table: 'all' })).toContainEqual(
      expect.objectContaining({ dst: '198.51.100.0/24', table: '100' }),
    );
    await ip.deleteRoute({ dst: '198.51.100.0/24', table: 100 });
    const gone = await ip.deleteRoute({ dst: '198.51.100.0/24', table: 100 }).catch((e: unknown) => e);
    expect(gone).toMatchObject({
      kind: 'not-found',
      stderr: 'RTNETLINK answers: No such process',
      exitCode: 2,
    });

    // Policy rules.
    await ip.addRule({ priority: 1000, from: '192.0.2.0/24', to: '198.51.100.0/24', table: 100 });
    await ip.addRule({ priority: 1001, fwmark: 0x10, fwmask: 0xff, table: 100 });
    await ip.addRule({ priority: 1002, from: '2001:db8::/64', table: 100 });
    expect((await ip.listRules()).filter((r) => r.priority >= 1000 && r.priority < 2000)).toEqual([
      { family: 'inet', priority: 1000, from: '192.0.2.0/24', to: '198.51.100.0/24', table: '100' },
      { family: 'inet', priority: 1001, from: 'all', fwmark: 16, fwmask: 255, table: '100' },
    ]);
    expect((await ip.listRules({ family: 'inet6' })).map((r) => r.from)).toContain('2001:db8::/64');
    const dupRule = await ip
      .addRule({ priority: 1000, from: '192.0.2.0/24', to: '198.51.100.0/24', table: 100 })
      .catch((e: unknown) => e);
    expect(dupRule).toMatchObject({ kind: 'exists' });
    await ip.deleteRule({ priority: 1001 });
    expect(await ip.deleteRule({ priority: 1001 }).catch((e: unknown) => e)).toMatchObject({
      kind: 'not-found',
    });

    // Neighbours.
    await ip.replaceNeighbour({ dst: '192.0.2.9', dev: 'eth0', lladdr: '02:00:00:00:00:09' });
    expect(await ip.listNeighbours({ dev: 'eth0' })).toContainEqual({
      family: 'inet',
      dst: '192.0.2.9',
      dev: 'eth0',
      lladdr: '02:00:00:00:00:09',
      state: ['PERMANENT'],
    });
    await ip.deleteNeighbour({ dst: '192.0.2.9', dev: 'eth0' });
    expect(
      await ip.deleteNeighbour({ dst: '192.0.2.9', dev: 'eth0' }).catch((e: unknown) => e),
    ).toMatchObject({
      kind: 'not-found',
    });

    // sysctl is per namespace; the root namespace is untouched.
    expect(await sysctl.get('net.ipv4.ip_forward')).toBe('0');
    await sysctl.set('net.ipv4.ip_forward', 1);
    await sysctl.set('net.ipv4.conf.eth0.rp_filter', 2);
    expect(await sysctl.get('net.ipv4.ip_forward')).toBe('1');
    expect(await sysctl.get('net.ipv4.conf.eth0.rp_filter')).toBe('2');
    expect(await remote.sysctl.get('net.ipv4.ip_forward')).toBe('0');
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')).toBe(rootForward);
    expect(await sysctl.get('net.ipv4.nosuch').catch((e: unknown) => e)).toMatchObject({ kind: 'not-found' });

    // Deleting the bridge port and the bridge.
    await ip.setLink('vx0', { master: null });
    expect((await ip.getLink('vx0')).master).toBeUndefined();
    await ip.deleteLink('br0');
    await ip.deleteLink('vx0');
    expect(await ip.findLink('vx0')).toBeUndefined();
    expect(await ip.getLink('vx0').catch((e: unknown) => e)).toMatchObject({ kind: 'no-device' });
  });
});
