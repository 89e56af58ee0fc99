import { generateWireGuardKeyPair } from '@knet/crypto';
import { NetLab, type NetHost } from '@knet/testing';
import {
  AddressSet,
  describeDrift,
  FdbSet,
  RouteTable,
  RuleSet,
  VxlanDevice,
  WireGuardDevice,
  type HostNet,
  type WireGuardDeviceConfig,
} from '../src';
import { hostNetFor } from './helpers';

jest.setTimeout(90_000);

let lab: NetLab;
afterEach(async () => {
  await lab?.dispose();
});

/** An overlay host's drivers, as pod-gateway and kilo-agent hold them. */
function overlay(net: HostNet) {
  return {
    vxlan: new VxlanDevice(net.ip, { name: 'vx0' }),
    addresses: new AddressSet(net.ip, { dev: 'vx0', family: 'inet' }),
    flood: new FdbSet(net.fdb, { dev: 'vx0' }),
    routes: new RouteTable(net.ip, { table: 1107, protocol: 77 }),
    rules: new RuleSet(net.ip, { protocol: 77 }),
    loopback: new AddressSet(net.ip, { dev: 'lo', owned: ['203.0.113.0/24'] }),
  };
}

describe('desired-state drivers on the kernel', () => {
  it('build a VXLAN overlay with policy routing that carries traffic, converge, and clean up', async () => {
    lab = await NetLab.create();
    const a = await lab.addHost('a');
    const b = await lab.addHost('b');
    await lab.link(a, b, {
      a: { ifname: 'eth0', address: '192.0.2.1/24' },
      b: { ifname: 'eth0', address: '192.0.2.2/24' },
    });
    const na = hostNetFor(a).net;
    const nb = hostNetFor(b).net;
    const da = overlay(na);
    const db = overlay(nb);
    const vx = { id: 42, dstPort: 4789, dev: 'eth0', learning: false };

    const apply = async (d: ReturnType<typeof overlay>, self: string, peer: string) => [
      ...(await d.vxlan.set(vx)).drift,
      ...(await d.addresses.set([`198.51.100.${self}/24`])).drift,
      ...(await d.flood.set([{ dst: `192.0.2.${peer}` }])).drift,
    ];
    await apply(db, '2', '1');
    await db.loopback.set(['203.0.113.7/32']);
    expect((await apply(da, '1', '2')).map(describeDrift)).toEqual([
      'link vx0 (vxlan id 42 dstport 4789 dev eth0): missing',
      'address 198.51.100.1/24 dev vx0: missing',
      'fdb 00:00:00:00:00:00 dst 192.0.2.2 dev vx0: missing',
    ]);
    // 203.0.113.0/24 only through table 1107, chosen by a rule.
    await da.routes.set([{ dst: '203.0.113.0/24', via: '198.51.100.2', dev: 'vx0' }]);
    expect(await na.ping.ping('203.0.113.7')).toMatchObject({ answered: false });
    await da.rules.set([{ priority: 1107, to: '203.0.113.0/24', table: 1107 }]);
    expect(await na.ping.ping('203.0.113.7', { count: 5 })).toMatchObject({ answered: true });
    expect(await apply(da, '1', '2')).toEqual([]);

    // The flood list moved to a VTEP that is not there: traffic stops; moved back, it flows again.
    await da.flood.set([{ dst: '192.0.2.9' }]);
    await na.ip.deleteNeighbour({ dst: '198.51.100.2', dev: 'vx0' }).catch(() => undefined);
    expect(await na.ping.ping('203.0.113.7')).toMatchObject({ answered: false });
    expect((await da.flood.set([{ dst: '192.0.2.2' }])).drift.map(describeDrift)).toEqual([
      'fdb 00:00:00:00:00:00 dst 192.0.2.2 dev vx0: missing',
      'fdb 00:00:00:00:00:00 dst 192.0.2.9 dev vx0: not desired',
    ]);
    expect(await na.ping.ping('203.0.113.7', { count: 5 })).toMatchObject({ answered: true });

    // A new VNI rebuilds the device: its address and flood list are set again after it.
    const rebuilt = await da.vxlan.set({ ...vx, id: 43 });
    expect(rebuilt.drift[0]).toMatchObject({ kind: 'changed', recreate: true });
    expect((await da.addresses.drift()).map((d) => d.kind)).toEqual(['missing']);

    for (const d of [da.rules, da.routes, da.flood, da.addresses, da.vxlan]) await d.cleanup();
    expect(await na.ip.findLink('vx0')).toBeUndefined();
    expect((await na.ip.listRules()).map((r) => r.priority)).toEqual([0, 32766, 32767]);
    expect(await na.ip.listRoutes({ table: 1107 })).toEqual([]);
    await db.loopback.cleanup();
    expect((await nb.ip.listAddresses({ dev: 'lo' })).map((x) => x.cidr)).toEqual(['127.0.0.1/8', '::1/128']);
  });

  it('keep a WireGuard tunnel up: configured once, sessions kept across changes, then removed', async () => {
    lab = await NetLab.create();
    // Private mount namespaces: each host's wireguard-go socket lives in its own /var/run/wireguard.
    const a = await lab.addHost('a', { privateMounts: true });
    const b = await lab.addHost('b', { privateMounts: true });
    await lab.link(a, b, { a: { address: '192.0.2.1/24' }, b: { address: '192.0.2.2/24' } });
    const ka = generateWireGuardKeyPair();
    const kb = generateWireGuardKeyPair();
    const ends = [
      {
        host: a,
        key: ka,
        peer: kb,
        ip: '10.4.0.1',
        peerIp: '10.4.0.2',
        endpoint: '192.0.2.2:51821',
        port: 51820,
      },
      {
        host: b,
        key: kb,
        peer: ka,
        ip: '10.4.0.2',
        peerIp: '10.4.0.1',
        endpoint: '192.0.2.1:51820',
        port: 51821,
      },
    ];
    const config = (e: (typeof ends)[number], extra: string[] = []): WireGuardDeviceConfig => ({
      privateKey: e.key.privateKey,
      listenPort: e.port,
      peers: [
        { publicKey: e.peer.publicKey, endpoint: e.endpoint, allowedIps: [`${e.peerIp}/32`, ...extra] },
      ],
    });
    const devices = ends.map((e) => {
      const net = hostNetFor(e.host).net;
      return {
        net,
        host: e.host as NetHost,
        wg: new WireGuardDevice(net, { name: 'wg0' }),
        addresses: new AddressSet(net.ip, { dev: 'wg0', owned: ['10.4.0.0/16'] }),
      };
    });
    for (const [i, d] of devices.entries()) {
      const e = ends[i]!;
      expect((await d.wg.set(config(e))).drift.map(describeDrift)).toEqual(['wireguard wg0: missing']);
      await d.addresses.set([`${e.ip}/16`]);
    }
    const [da, db] = devices as [(typeof devices)[number], (typeof devices)[number]];
    await a.waitForPing('10.4.0.2', { timeoutMs: 20_000 });
    const handshake = (await da.net.wg.show('wg0')).peers[0]?.latestHandshake;
    expect(handshake).toBeInstanceOf(Date);

    expect(await da.wg.set(config(ends[0]!))).toEqual({ changed: false, drift: [] });
    const more = await da.wg.set(config(ends[0]!, ['198.51.100.0/24']));
    expect(more.drift.map(describeDrift)).toEqual([
      `wireguard-peer ${kb.publicKey} on wg0: allowed ips 10.4.0.2/32 → 10.4.0.2/32,198.51.100.0/24`,
    ]);
    // syncconf kept the session: the handshake is still the one from before.
    expect((await da.net.wg.show('wg0')).peers[0]?.latestHandshake).toEqual(handshake);
    expect(await da.net.ping.ping('10.4.0.2')).toMatchObject({ answered: true });

    expect((await db.wg.cleanup()).drift.map(describeDrift)).toEqual(['wireguard wg0: not desired']);
    expect(await db.net.ip.findLink('wg0')).toBeUndefined();
    expect(await da.net.ping.ping('10.4.0.2')).toMatchObject({ answered: false });
    await da.wg.cleanup();
    expect(await da.net.ip.findLink('wg0')).toBeUndefined();
  });
});
