import { expectConverges, fakeVethNet } from '../test/fixtures/lab-net';
import { describeDrift } from './drift';
import { ZERO_MAC, type BridgeFdb } from './fdb';
import { FdbSet, type DesiredFdbEntry, type FdbSetOptions } from './fdb-set';

const entries = async (fdb: BridgeFdb) =>
  (await fdb.list({ dev: 'vx0' })).map(
    (e) =>
      `${e.mac} ${e.dst ?? '-'}${e.vni !== undefined ? ` vni ${e.vni}` : ''}${e.master ? ` master ${e.master}` : ''}`,
  );

async function vxlanNet() {
  const net = await fakeVethNet();
  await net.ip.addVxlan('vx0', { id: 42, dstPort: 4789, dev: 'v0', learning: false });
  return net;
}

const UNICAST = '02:00:00:00:00:01';

describe('FdbSet', () => {
  it.each<[string, Partial<FdbSetOptions>, DesiredFdbEntry[], DesiredFdbEntry[], string[], string[]]>([
    [
      "the flood list moves to a new gateway (pod-gateway's client)",
      {},
      [{ dst: '192.0.2.2' }, { mac: UNICAST, dst: '192.0.2.2' }],
      [{ dst: '192.0.2.3' }],
      [
        `fdb ${ZERO_MAC} dst 192.0.2.3 dev vx0: missing`,
        `fdb ${ZERO_MAC} dst 192.0.2.2 dev vx0: not desired`,
        `fdb ${UNICAST} dst 192.0.2.2 dev vx0: not desired`,
      ],
      [`${ZERO_MAC} 192.0.2.3`],
    ],
    [
      'a flood list of several VTEPs',
      {},
      [{ dst: '192.0.2.2' }],
      [{ dst: '192.0.2.2' }, { dst: '192.0.2.3' }, { mac: UNICAST, dst: '192.0.2.4' }],
      [`fdb ${ZERO_MAC} dst 192.0.2.3 dev vx0: missing`, `fdb ${UNICAST} dst 192.0.2.4 dev vx0: missing`],
      [`${ZERO_MAC} 192.0.2.2`, `${ZERO_MAC} 192.0.2.3`, `${UNICAST} 192.0.2.4`],
    ],
    [
      'another VNI is deleted and appended again',
      {},
      [{ dst: '192.0.2.2', vni: 43 }],
      [{ dst: '192.0.2.2', vni: 44 }],
      [`fdb ${ZERO_MAC} dst 192.0.2.2 vni 44 dev vx0: vni 43 → 44`],
      [`${ZERO_MAC} 192.0.2.2 vni 44`],
    ],
    [
      'owned prefixes only: entries to other VTEPs stay',
      { owned: ['192.0.2.0/28'] },
      [{ dst: '192.0.2.2' }, { dst: '192.0.2.200' }],
      [{ dst: '192.0.2.3' }],
      [
        `fdb ${ZERO_MAC} dst 192.0.2.3 dev vx0: missing`,
        `fdb ${ZERO_MAC} dst 192.0.2.2 dev vx0: not desired`,
      ],
      [`${ZERO_MAC} 192.0.2.200`, `${ZERO_MAC} 192.0.2.3`],
    ],
    [
      'MAC case and IP spelling do not matter',
      {},
      [{ mac: UNICAST, dst: '192.0.2.2' }],
      [{ mac: UNICAST.toUpperCase(), dst: '192.0.2.2' }],
      [],
      [`${UNICAST} 192.0.2.2`],
    ],
  ])('%s', async (_name, options, before, desired, drift, after) => {
    const net = await vxlanNet();
    for (const e of before) await net.fdb.append({ mac: ZERO_MAC, ...e, dev: 'vx0' });
    const set = new FdbSet(net.fdb, { dev: 'vx0', ...options });
    await expectConverges(set, desired, drift, () => entries(net.fdb), after);
  });

  it("never touches a bridge's entries for the device, and cleanup removes only what it owns", async () => {
    const net = await vxlanNet();
    await net.ip.addBridge('br0');
    await net.ip.setLink('vx0', { master: 'br0' });
    await net.fdb.append({ mac: UNICAST, dev: 'vx0', target: 'master', state: 'static' });
    const set = new FdbSet(net.fdb, { dev: 'vx0', owned: ['192.0.2.0/24'] });
    await net.fdb.append({ mac: ZERO_MAC, dev: 'vx0', dst: '198.51.100.9' });
    await set.set([{ dst: '192.0.2.2' }]);
    const cleanup = await set.cleanup();
    expect(cleanup.drift.map(describeDrift)).toEqual([`fdb ${ZERO_MAC} dst 192.0.2.2 dev vx0: not desired`]);
    expect(await entries(net.fdb)).toEqual([`${UNICAST} -`, `${ZERO_MAC} 198.51.100.9`]);
  });

  it('has nothing on a missing device, and adding to one fails with no-device', async () => {
    const net = await vxlanNet();
    const set = new FdbSet(net.fdb, { dev: 'nosuch' });
    expect(await set.owned()).toEqual([]);
    expect(await set.cleanup()).toEqual({ changed: false, drift: [] });
    await expect(set.set([{ dst: '192.0.2.2' }])).rejects.toMatchObject({ kind: 'no-device' });
  });

  it.each<[string, Partial<FdbSetOptions>, DesiredFdbEntry[], RegExp]>([
    [
      'a bad MAC',
      {},
      [{ mac: '02:00:00:00:00', dst: '192.0.2.2' }],
      /fdb of vx0: entry 02:00:00:00:00 dst 192.0.2.2: invalid MAC address/,
    ],
    ['a bad VTEP', {}, [{ dst: '192.0.2' }], /dst is not an IP address/],
    [
      'a VTEP outside the owned prefixes',
      { owned: ['198.51.100.0/24'] },
      [{ dst: '192.0.2.2' }],
      /dst is outside 198.51.100.0\/24/,
    ],
    [
      'a unicast MAC to two VTEPs',
      {},
      [
        { mac: UNICAST, dst: '192.0.2.2' },
        { mac: UNICAST, dst: '192.0.2.3' },
      ],
      /02:00:00:00:00:01 already goes to 192.0.2.2/,
    ],
  ])('rejects %s before running anything', async (_name, options, desired, message) => {
    const net = await vxlanNet();
    const set = new FdbSet(net.fdb, { dev: 'vx0', ...options });
    await expect(set.set(desired)).rejects.toThrow(message);
    expect(await entries(net.fdb)).toEqual([]);
  });
});
