import { generateWireGuardKeyPair, generateWireGuardPresharedKey } from '@knet/crypto';
import { describeDrift } from './drift';
import { createFakeHostNet, type FakeHostNet } from './host-net';
import { WireGuardDevice, type WireGuardDeviceConfig } from './wireguard-device';
import type { WireGuard } from './wireguard';

const me = generateWireGuardKeyPair();
const b = generateWireGuardKeyPair();
const c = generateWireGuardKeyPair();
const psk = generateWireGuardPresharedKey();

const CONFIG: WireGuardDeviceConfig = {
  privateKey: me.privateKey,
  listenPort: 51820,
  peers: [
    { publicKey: b.publicKey, endpoint: '192.0.2.2:51820', allowedIps: ['10.4.0.2/32', '198.51.100.0/24'] },
    { publicKey: c.publicKey, allowedIps: ['10.4.0.3/32'], persistentKeepalive: 25 },
  ],
};

/** The fake wg, counting the calls that change something. */
function counting(net: FakeHostNet): { wg: WireGuard; writes: string[] } {
  const writes: string[] = [];
  const wg: WireGuard = {
    createInterface: (n, o) => (writes.push('create'), net.wg.createInterface(n, o)),
    deleteInterface: (n) => (writes.push('delete'), net.wg.deleteInterface(n)),
    set: (n, o) => (writes.push('set'), net.wg.set(n, o)),
    syncconf: (n, cfg) => (writes.push('syncconf'), net.wg.syncconf(n, cfg)),
    show: (n) => net.wg.show(n),
    showAll: () => net.wg.showAll(),
  };
  return { wg, writes };
}

const short = (key: string) => (key === b.publicKey ? 'b' : key === c.publicKey ? 'c' : key);
const described = (drift: Parameters<typeof describeDrift>[0][]) =>
  drift.map((d) => describeDrift(d).replace(b.publicKey, 'b').replace(c.publicKey, 'c'));

describe('WireGuardDevice', () => {
  it('creates and configures the device, and configures again only when something differs', async () => {
    const net = createFakeHostNet({ kernelWireGuard: false });
    const { wg, writes } = counting(net);
    const dev = new WireGuardDevice({ wg, ip: net.ip }, { name: 'wg0' });
    expect(described((await dev.set({ ...CONFIG, mtu: 1380 })).drift)).toEqual(['wireguard wg0: missing']);
    expect(writes).toEqual(['create', 'syncconf']);
    expect(await net.ip.getLink('wg0')).toMatchObject({ kind: 'tun', up: true, mtu: 1380 });
    const state = await net.wg.show('wg0');
    expect(state).toMatchObject({ publicKey: me.publicKey, listenPort: 51820, fwmark: null });
    expect(state.peers.map((p) => [short(p.publicKey), p.allowedIps, p.persistentKeepalive])).toEqual([
      ['b', ['10.4.0.2/32', '198.51.100.0/24'], null],
      ['c', ['10.4.0.3/32'], 25],
    ]);
    expect(await dev.set({ ...CONFIG, mtu: 1380 })).toEqual({ changed: false, drift: [] });
    expect(writes).toEqual(['create', 'syncconf']);
  });

  it.each<[string, (cfg: WireGuardDeviceConfig) => WireGuardDeviceConfig, string[], string[]]>([
    [
      'a new private key',
      (cfg) => ({ ...cfg, privateKey: generateWireGuardKeyPair().privateKey }),
      ['wireguard wg0: private key differs'],
      ['syncconf'],
    ],
    [
      'another listen port',
      (cfg) => ({ ...cfg, listenPort: 51821 }),
      ['wireguard wg0: listen port 51820 → 51821'],
      ['syncconf'],
    ],
    ['an fwmark', (cfg) => ({ ...cfg, fwmark: 0x20 }), ['wireguard wg0: fwmark off → 0x20'], ['syncconf']],
    [
      'a peer gone and one added',
      (cfg) => ({ ...cfg, peers: [cfg.peers[0]!, { publicKey: generateWireGuardKeyPair().publicKey }] }),
      [expect.stringMatching(/^wireguard-peer .+ on wg0: missing$/), 'wireguard-peer c on wg0: not desired'],
      ['syncconf'],
    ],
    [
      'allowed IPs and endpoint of a peer',
      (cfg) => ({
        ...cfg,
        peers: [
          { ...cfg.peers[0]!, endpoint: '[2001:DB8::2]:51820', allowedIps: ['10.4.0.2/32'] },
          cfg.peers[1]!,
        ],
      }),
      [
        'wireguard-peer b on wg0: endpoint 192.0.2.2:51820 → [2001:db8::2]:51820, allowed ips 10.4.0.2/32,198.51.100.0/24 → 10.4.0.2/32',
      ],
      ['syncconf'],
    ],
    [
      'keepalive off (a wg set: syncconf keeps it)',
      (cfg) => ({ ...cfg, peers: [cfg.peers[0]!, { ...cfg.peers[1]!, persistentKeepalive: 0 }] }),
      ['wireguard-peer c on wg0: keepalive 25 → off'],
      ['set'],
    ],
    [
      'a preshared key added',
      (cfg) => ({ ...cfg, peers: [{ ...cfg.peers[0]!, presharedKey: psk }, cfg.peers[1]!] }),
      ['wireguard-peer b on wg0: preshared key to add'],
      ['syncconf'],
    ],
    [
      'MTU and down, in place',
      (cfg) => ({ ...cfg, mtu: 1300, up: false }),
      ['wireguard wg0: mtu 1420 → 1300, up yes → no'],
      [],
    ],
    [
      'allowed IPs spelt otherwise compare equal',
      (cfg) => ({
        ...cfg,
        peers: [{ ...cfg.peers[0]!, allowedIps: ['198.51.100.7/24', '10.4.0.2/32'] }, cfg.peers[1]!],
      }),
      [],
      [],
    ],
  ])('%s', async (_name, change, drift, writes) => {
    const net = createFakeHostNet();
    const counted = counting(net);
    const dev = new WireGuardDevice({ wg: counted.wg, ip: net.ip }, { name: 'wg0' });
    await dev.set(CONFIG);
    counted.writes.length = 0;
    const want = change(CONFIG);
    expect(described(await dev.drift(want))).toEqual(drift);
    expect(described((await dev.set(want)).drift)).toEqual(drift);
    expect(counted.writes).toEqual(writes);
    expect(await dev.drift()).toEqual([]);
  });

  it('removes a preshared key by re-adding the peer, and configures a key it did not set once', async () => {
    const net = createFakeHostNet();
    const withPsk = { ...CONFIG, peers: [{ ...CONFIG.peers[0]!, presharedKey: psk }, CONFIG.peers[1]!] };
    await new WireGuardDevice(net, { name: 'wg0' }).set(withPsk);
    const counted = counting(net);
    const dev = new WireGuardDevice({ wg: counted.wg, ip: net.ip }, { name: 'wg0' });
    expect(described(await dev.drift(withPsk))).toEqual([
      'wireguard-peer b on wg0: preshared key not known to be the desired one',
    ]);
    await dev.set(withPsk);
    expect(await dev.drift()).toEqual([]);
    expect(described((await dev.set(CONFIG)).drift)).toEqual([
      'wireguard-peer b on wg0: preshared key to remove',
    ]);
    expect(counted.writes).toEqual(['syncconf', 'set', 'syncconf']);
    expect((await net.wg.show('wg0')).peers.map((p) => p.hasPresharedKey)).toEqual([false, false]);
    expect(await dev.drift()).toEqual([]);
  });

  it('keeps the listen port it finds when none is desired', async () => {
    const net = createFakeHostNet();
    const dev = new WireGuardDevice(net, { name: 'wg0' });
    const { listenPort: _port, ...noPort } = CONFIG;
    await dev.set(noPort);
    const port = (await net.wg.show('wg0')).listenPort;
    await dev.set({ ...noPort, fwmark: 0x20 });
    expect((await net.wg.show('wg0')).listenPort).toBe(port);
  });

  it('refuses a device of another kind by that name, and cleanup deletes only a WireGuard device', async () => {
    const net = createFakeHostNet();
    await net.ip.addBridge('wg0');
    const dev = new WireGuardDevice(net, { name: 'wg0' });
    expect(described(await dev.drift(CONFIG))).toEqual(['wireguard wg0: kind bridge → wireguard']);
    await expect(dev.set(CONFIG)).rejects.toThrow(
      'wireguard wg0: a bridge device of that name exists: delete it or choose another name',
    );
    expect(await dev.cleanup()).toEqual({ changed: false, drift: [] });
    await net.ip.deleteLink('wg0');
    await dev.set(CONFIG);
    expect((await dev.cleanup()).drift.map(describeDrift)).toEqual(['wireguard wg0: not desired']);
    expect(await net.ip.findLink('wg0')).toBeUndefined();
    expect(await dev.cleanup()).toEqual({ changed: false, drift: [] });
  });

  it('validates keys before running anything, and never puts a key in a message', async () => {
    const net = createFakeHostNet();
    const dev = new WireGuardDevice(net, { name: 'wg0' });
    const bad = { ...CONFIG, privateKey: 'secret-but-bad' };
    const err = await dev.set(bad).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: expect.stringMatching(/invalid WireGuard private key/) });
    expect(err).not.toMatchObject({ message: expect.stringContaining('secret-but-bad') });
    expect(await net.ip.findLink('wg0')).toBeUndefined();
    await expect(dev.drift()).rejects.toThrow('wireguard wg0: no desired state yet');
  });
});
