import { assignWireGuardIPs, isAllocatable, newAllocator, sortOrderAddress } from './allocate';

describe('newAllocator (Kilo ip_test.go TestNewAllocator)', () => {
  // Kilo's cases share one allocator per subnet, so the calls are sequential.
  it.each([
    { subnet: '10.1.0.0/16', calls: ['10.1.0.1/16', '10.1.0.2/16'] },
    // Kilo prints "<nil>" for an exhausted allocator; ours returns undefined.
    { subnet: '10.1.0.0/32', calls: [undefined] },
    { subnet: '10.1.0.0/31', calls: ['10.1.0.1/31', undefined] },
  ])('$subnet hands out $calls', ({ subnet, calls }) => {
    const a = newAllocator(subnet);
    expect(calls.map(() => a.next())).toEqual(calls);
  });

  it('stays exhausted, and hands out the last address of the subnet (no broadcast spared)', () => {
    const a = newAllocator('10.4.0.0/30');
    expect([a.next(), a.next(), a.next(), a.next(), a.next()]).toEqual([
      '10.4.0.1/30',
      '10.4.0.2/30',
      '10.4.0.3/30',
      undefined,
      undefined,
    ]);
  });

  it('counts from the network address of an unmasked subnet, and works for IPv6', () => {
    expect(newAllocator('10.4.7.9/16').next()).toBe('10.4.0.1/16');
    const v6 = newAllocator('fd00:4::/64');
    expect([v6.next(), v6.next()]).toEqual(['fd00:4::1/64', 'fd00:4::2/64']);
  });
});

describe('isAllocatable / sortOrderAddress', () => {
  it.each([
    ['10.4.0.0/16', '10.4.0.1', true],
    ['10.4.0.0/16', '10.4.0.1/16', true],
    ['10.4.0.0/16', '10.4.255.255', true],
    ['10.4.0.0/16', '10.4.0.0', false],
    ['10.4.0.0/16', '10.5.0.1', false],
    ['10.4.0.0/16', 'fd00::1', false],
    ['10.4.0.0/32', '10.4.0.0', false],
    ['10.4.0.0/31', '10.4.0.1', true],
  ])('%s: %s → %s', (subnet, address, out) => {
    expect(isAllocatable(subnet, address)).toBe(out);
  });

  it('gives segment i the (i+1)-th address, as Kilo does', () => {
    expect([0, 1, 2].map((i) => sortOrderAddress('10.4.0.0/16', i))).toEqual([
      '10.4.0.1',
      '10.4.0.2',
      '10.4.0.3',
    ]);
    expect(sortOrderAddress('10.4.0.0/31', 1)).toBeUndefined();
  });
});

describe('assignWireGuardIPs', () => {
  const subnet = '10.4.0.0/16';

  it.each([
    {
      name: 'nothing published: Kilo sort order in both modes',
      published: [undefined, undefined, undefined],
      kilo: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
      stable: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
    },
    {
      name: 'Kilo leaders publish their sort-order address: both agree',
      published: ['10.4.0.1/16', '10.4.0.2/16', '10.4.0.3/16'],
      kilo: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
      stable: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
    },
    {
      name: 'a new first segment: Kilo renumbers, stable keeps and gives the newcomer the lowest free',
      published: [undefined, '10.4.0.1/16', '10.4.0.2/16'],
      kilo: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
      stable: ['10.4.0.3', '10.4.0.1', '10.4.0.2'],
    },
    {
      name: 'the newcomer keeps its sort-order address when nobody claims it',
      published: ['10.4.0.2/16', undefined, '10.4.0.3/16'],
      kilo: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
      stable: ['10.4.0.2', '10.4.0.1', '10.4.0.3'],
    },
    {
      name: 'two leaders publish the same address: the earlier segment keeps it',
      published: ['10.4.0.5/16', '10.4.0.5/16'],
      kilo: ['10.4.0.1', '10.4.0.2'],
      stable: ['10.4.0.5', '10.4.0.2'],
    },
    {
      name: 'published outside the subnet, the network address or another family: ignored',
      published: ['10.5.0.9/16', '10.4.0.0/16', 'fd00::7/64'],
      kilo: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
      stable: ['10.4.0.1', '10.4.0.2', '10.4.0.3'],
    },
    {
      name: 'lowest free skips every taken address',
      published: ['10.4.0.2/16', '10.4.0.1/16', undefined, '10.4.0.3/16'],
      kilo: ['10.4.0.1', '10.4.0.2', '10.4.0.3', '10.4.0.4'],
      stable: ['10.4.0.2', '10.4.0.1', '10.4.0.4', '10.4.0.3'],
    },
  ])('$name', ({ published, kilo, stable }) => {
    expect(assignWireGuardIPs(subnet, published, { stable: false })).toEqual(kilo);
    expect(assignWireGuardIPs(subnet, published)).toEqual(stable);
  });

  it('leaves undefined where the subnet runs out', () => {
    expect(assignWireGuardIPs('10.4.0.0/31', [undefined, undefined], { stable: false })).toEqual([
      '10.4.0.1',
      undefined,
    ]);
    expect(assignWireGuardIPs('10.4.0.0/30', ['10.4.0.3/30', undefined, undefined, undefined])).toEqual([
      '10.4.0.3',
      '10.4.0.2',
      '10.4.0.1',
      undefined,
    ]);
  });
});
