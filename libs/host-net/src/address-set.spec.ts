import { expectConverges, fakeVethNet } from '../test/fixtures/lab-net';
import { AddressSet, type AddressSetOptions } from './address-set';
import { describeDrift } from './drift';
import { FakeIpRoute } from './fakes/fake-ip-route';

const cidrs = async (ip: FakeIpRoute, dev = 'v1') => (await ip.listAddresses({ dev })).map((a) => a.cidr);

describe('AddressSet', () => {
  it.each<[string, Partial<AddressSetOptions>, string[], string[], string[], string[]]>([
    [
      'owns the whole device: every other address goes',
      {},
      ['192.0.2.5/24', '2001:db8::5/64'],
      ['192.0.2.6/24'],
      [
        'address 192.0.2.6/24 dev v1: missing',
        'address 192.0.2.5/24 dev v1: not desired',
        'address 2001:db8::5/64 dev v1: not desired',
      ],
      ['192.0.2.6/24'],
    ],
    [
      "one family only: pod-gateway's only IPv4 address of the device",
      { family: 'inet' },
      ['192.0.2.5/24', '2001:db8::5/64'],
      ['192.0.2.6/24'],
      ['address 192.0.2.6/24 dev v1: missing', 'address 192.0.2.5/24 dev v1: not desired'],
      ['2001:db8::5/64', '192.0.2.6/24'],
    ],
    [
      'owned prefixes only: others on the device stay',
      { owned: ['10.4.0.0/16'] },
      ['192.0.2.5/24', '10.4.0.9/16'],
      ['10.4.0.1/16'],
      ['address 10.4.0.1/16 dev v1: missing', 'address 10.4.0.9/16 dev v1: not desired'],
      ['192.0.2.5/24', '10.4.0.1/16'],
    ],
    [
      'a new IPv6 prefix length replaces the address',
      {},
      ['2001:db8::5/64'],
      ['2001:db8::5/48'],
      ['address 2001:db8::5/48 dev v1: missing', 'address 2001:db8::5/64 dev v1: not desired'],
      ['2001:db8::5/48'],
    ],
    ['spelling does not matter', {}, ['2001:db8::5/64'], ['2001:DB8:0::5/64'], [], ['2001:db8::5/64']],
  ])('%s', async (_name, options, before, desired, drift, after) => {
    const net = await fakeVethNet();
    for (const c of before) await net.ip.addAddress('v1', c, { nodad: true });
    expect(await cidrs(net.ip)).toEqual(before);
    const set = new AddressSet(net.ip, { dev: 'v1', ...options });
    await expectConverges(set, desired, drift, () => cidrs(net.ip), after);
  });

  it("keeps the kernel's IPv6 link-local address, and cleanup removes only what it owns", async () => {
    const net = await fakeVethNet();
    await net.ip.addAddress('v1', 'fe80::1/64', { nodad: true }); // stands in for the kernel's (the fake adds none)
    const set = new AddressSet(net.ip, { dev: 'v1' });
    await set.set(['192.0.2.5/24']);
    expect(await cidrs(net.ip)).toEqual(['fe80::1/64', '192.0.2.5/24']);
    expect((await set.cleanup()).drift.map(describeDrift)).toEqual([
      'address 192.0.2.5/24 dev v1: not desired',
    ]);
    expect(await cidrs(net.ip)).toEqual(['fe80::1/64']);
  });

  it('a foreign address survives set and cleanup (owned prefixes)', async () => {
    const net = await fakeVethNet();
    await net.ip.addAddress('v1', '198.51.100.7/24');
    const set = new AddressSet(net.ip, { dev: 'v1', owned: ['192.0.2.0/24'] });
    await set.set(['192.0.2.5/24', '192.0.2.6/24']);
    await set.set(['192.0.2.6/24']);
    expect(await cidrs(net.ip)).toEqual(['198.51.100.7/24', '192.0.2.6/24']);
    await set.cleanup();
    expect(await cidrs(net.ip)).toEqual(['198.51.100.7/24']);
  });

  it('re-adds what removing a primary IPv4 address took with it', async () => {
    const net = await fakeVethNet();
    const set = new AddressSet(net.ip, { dev: 'v1' });
    await set.set(['192.0.2.5/24', '192.0.2.6/24']);
    const result = await set.set(['192.0.2.6/24']);
    expect(result.drift.map(describeDrift)).toEqual(['address 192.0.2.5/24 dev v1: not desired']);
    expect(await cidrs(net.ip)).toEqual(['192.0.2.6/24']);
  });

  it('has nothing on a missing device, and adding to one fails with no-device', async () => {
    const net = await fakeVethNet();
    const set = new AddressSet(net.ip, { dev: 'nosuch' });
    expect(await set.owned()).toEqual([]);
    expect(await set.cleanup()).toEqual({ changed: false, drift: [] });
    expect((await set.drift(['192.0.2.5/24'])).map((d) => d.kind)).toEqual(['missing']);
    await expect(set.set(['192.0.2.5/24'])).rejects.toMatchObject({ kind: 'no-device' });
  });

  it.each<[string, Partial<AddressSetOptions>, string, RegExp]>([
    [
      'a bad address',
      {},
      '192.0.2.500/24',
      /addresses of v1: 192.0.2.500\/24 is not an address with prefix length/,
    ],
    [
      'another family',
      { family: 'inet' },
      '2001:db8::5/64',
      /2001:db8::5\/64 is not one it manages \(inet addresses\)/,
    ],
    [
      'an address outside the owned prefixes',
      { owned: ['10.4.0.0/16'] },
      '192.0.2.5/24',
      /192.0.2.5\/24 is not one it manages \(addresses within 10.4.0.0\/16\)/,
    ],
  ])('rejects %s before running anything', async (_name, options, cidr, message) => {
    const net = await fakeVethNet();
    const set = new AddressSet(net.ip, { dev: 'v1', ...options });
    await expect(set.set([cidr])).rejects.toThrow(message);
    expect(await cidrs(net.ip)).toEqual([]);
  });

  it('rejects an owned prefix that is not one', () => {
    expect(() => new AddressSet(new FakeIpRoute(), { dev: 'v1', owned: ['10.4.0.0/33'] })).toThrow(
      'addresses of v1: owned prefix 10.4.0.0/33 is not a prefix',
    );
  });
});
