import { fakeVethNet } from '../test/fixtures/lab-net';
import { describeDrift } from './drift';
import { VxlanDevice, type VxlanDeviceConfig } from './vxlan-device';

const VX: VxlanDeviceConfig = { id: 42, dstPort: 4789, dev: 'v0', learning: false };

describe('VxlanDevice', () => {
  it('creates the device up, and a second set changes nothing', async () => {
    const net = await fakeVethNet();
    const dev = new VxlanDevice(net.ip, { name: 'vx0' });
    const first = await dev.set({ ...VX, mtu: 1400 });
    expect(first.drift.map(describeDrift)).toEqual(['link vx0 (vxlan id 42 dstport 4789 dev v0): missing']);
    expect(await net.ip.getLink('vx0')).toMatchObject({
      kind: 'vxlan',
      up: true,
      mtu: 1400,
      vxlan: { id: 42, port: 4789, dev: 'v0', learning: false },
    });
    expect(await dev.set({ ...VX, mtu: 1400 })).toEqual({ changed: false, drift: [] });
    expect(await dev.drift()).toEqual([]);
  });

  it.each<[string, VxlanDeviceConfig, string, boolean]>([
    ['another VNI', { ...VX, id: 43 }, 'id 42 → 43', true],
    ['another port', { ...VX, dstPort: 4790 }, 'dstport 4789 → 4790', true],
    ['another underlay', { ...VX, dev: 'v1' }, 'dev v0 → v1', true],
    ['another local address', { ...VX, local: '192.0.2.1' }, 'local - → 192.0.2.1', true],
    ['learning', { ...VX, learning: true }, 'learning off → on', true],
    ['another MTU', { ...VX, mtu: 1300 }, 'mtu 1450 → 1300', false],
    ['down', { ...VX, up: false }, 'up yes → no', false],
  ])('%s', async (_name, want, changes, recreate) => {
    const net = await fakeVethNet();
    const dev = new VxlanDevice(net.ip, { name: 'vx0' });
    await dev.set(VX);
    await net.ip.addAddress('vx0', '198.51.100.1/24');
    const drift = await dev.drift(want);
    expect(drift).toEqual([
      {
        object: 'link',
        kind: 'changed',
        subject: expect.stringMatching(/^vx0 \(vxlan id/),
        changes: [changes],
        ...(recreate ? { recreate } : {}),
      },
    ]);
    expect((await dev.set(want)).drift).toEqual(drift);
    expect(await dev.drift()).toEqual([]);
    // A recreated device loses its addresses; one changed in place keeps them.
    expect((await net.ip.listAddresses({ dev: 'vx0' })).length).toBe(recreate ? 0 : 1);
  });

  it('rebuilds a device of another kind by that name, and cleanup leaves one alone', async () => {
    const net = await fakeVethNet();
    await net.ip.addBridge('vx0');
    const dev = new VxlanDevice(net.ip, { name: 'vx0' });
    expect((await dev.set(VX)).drift.map(describeDrift)).toEqual([
      'link vx0 (vxlan id 42 dstport 4789 dev v0): kind bridge → vxlan (recreate)',
    ]);
    expect((await net.ip.getLink('vx0')).kind).toBe('vxlan');
    expect((await dev.cleanup()).drift.map(describeDrift)).toEqual([
      'link vx0 (vxlan id 42 dstport 4789 dev v0): not desired',
    ]);
    expect(await net.ip.findLink('vx0')).toBeUndefined();
    expect(await dev.cleanup()).toEqual({ changed: false, drift: [] });
    await net.ip.addBridge('vx0');
    expect(await dev.cleanup()).toEqual({ changed: false, drift: [] });
    expect((await net.ip.getLink('vx0')).kind).toBe('bridge');
  });

  it('fails like ip when the VNI is taken by another device, and validates before running', async () => {
    const net = await fakeVethNet();
    await net.ip.addVxlan('other', { id: 42, dstPort: 4789 });
    const dev = new VxlanDevice(net.ip, { name: 'vx0' });
    await expect(dev.set(VX)).rejects.toThrow(/ip link add vx0 type vxlan id 42 .*VNI already exists/);
    await expect(dev.set({ ...VX, id: -1 })).rejects.toThrow('invalid VXLAN id -1: must be 0..16777215');
    expect(() => new VxlanDevice(net.ip, { name: 'a-name-too-long-for-linux' })).toThrow(TypeError);
    await expect(new VxlanDevice(net.ip, { name: 'vx1' }).drift()).rejects.toThrow(
      'vxlan vx1: no desired state yet (call set() first, or pass one to drift())',
    );
  });
});
