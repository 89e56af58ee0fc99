import { defaultTunnelInterface, encapsulationIptables, encapsulatorKind, gateway } from './encapsulation';

const node = {
  endpointIP: '203.0.113.5',
  privateIP: '192.168.1.5/24',
  cniCompatibilityIP: '10.2.5.77/32',
  podCIDR: '10.2.5.0/24',
};

describe('encapsulatorKind', () => {
  it.each([
    ['', '192.168.1.5/24', 'ipip'],
    ['flannel', '192.168.1.5/24', 'flannel'],
    ['cilium', '192.168.1.5/24', 'cilium'],
    ['', undefined, 'noop'],
    ['cilium', undefined, 'noop'],
  ] as const)(
    'compatibility %j, private IP %s → %s (no private IP: Noop, mesh.go New)',
    (compat, ip, kind) => {
      expect(encapsulatorKind(compat, ip)).toBe(kind);
    },
  );
});

describe('gateway (Kilo Encapsulator.Gw)', () => {
  it.each([
    ['ipip', node, '192.168.1.5'],
    ['flannel', node, '10.2.5.0'],
    ['cilium', node, '10.2.5.77'],
    ['cilium', { ...node, cniCompatibilityIP: undefined }, '10.2.5.0'],
    ['noop', node, undefined],
    ['ipip', { podCIDR: '10.2.5.0/24' }, undefined],
    ['flannel', { privateIP: '192.168.1.5' }, undefined],
  ] as const)('%s %j → %s', (kind, input, want) => {
    expect(gateway(kind, input)).toBe(want);
  });

  it('flannel masks an unmasked pod CIDR to its network address', () => {
    expect(gateway('flannel', { podCIDR: '10.2.5.9/24' })).toBe('10.2.5.0');
    expect(gateway('flannel', { podCIDR: 'fd10:2:5::9/64' })).toBe('fd10:2:5::');
  });

  it('names the encapsulator interface by compatibility', () => {
    expect(defaultTunnelInterface('')).toBe('tunl0');
    expect(defaultTunnelInterface('cilium')).toBe('tunl0');
    expect(defaultTunnelInterface('flannel')).toBe('flannel.1');
  });
});

describe("encapsulationIptables (Kilo's ipip/cilium Rules)", () => {
  const jump = ['-p', 'ipencap', '-m', 'comment', '--comment', 'Kilo: jump to IPIP chain', '-j', 'KILO-IPIP'];
  const drop = [
    '-p',
    'ipencap',
    '-m',
    'comment',
    '--comment',
    'Kilo: reject other IPIP traffic',
    '-j',
    'DROP',
  ];
  const accept = (cidr: string): string[] => [
    '-s',
    cidr,
    '-m',
    'comment',
    '--comment',
    'Kilo: allow IPIP traffic',
    '-j',
    'ACCEPT',
  ];
  const ipipRules = [
    { family: 'inet', table: 'filter', chain: 'KILO-IPIP', spec: [], kind: 'chain' },
    { family: 'inet6', table: 'filter', chain: 'KILO-IPIP', spec: [], kind: 'chain' },
    { family: 'inet', table: 'filter', chain: 'INPUT', spec: jump, kind: 'append' },
    { family: 'inet6', table: 'filter', chain: 'INPUT', spec: jump, kind: 'append' },
    { family: 'inet', table: 'filter', chain: 'KILO-IPIP', spec: accept('192.168.0.1/32'), kind: 'prepend' },
    {
      family: 'inet6',
      table: 'filter',
      chain: 'KILO-IPIP',
      spec: accept('2001:db8::2/128'),
      kind: 'prepend',
    },
    { family: 'inet', table: 'filter', chain: 'INPUT', spec: drop, kind: 'append' },
    { family: 'inet6', table: 'filter', chain: 'INPUT', spec: drop, kind: 'append' },
  ];

  it('IPIP and Cilium: chain, jump, an ACCEPT per private IP (its family), then the DROP', () => {
    expect(encapsulationIptables('ipip', 'always', true, ['192.168.0.1', '2001:db8::2'])).toEqual(ipipRules);
    expect(encapsulationIptables('cilium', 'crosssubnet', true, ['192.168.0.1', '2001:db8::2'])).toEqual(
      ipipRules,
    );
  });

  it('without private IPs the chain accepts nothing and IPIP is dropped', () => {
    expect(
      encapsulationIptables('ipip', 'always', true, []).map(
        (r) => `${r.family} ${r.chain} ${r.spec.at(-1) ?? '-N'}`,
      ),
    ).toEqual([
      'inet KILO-IPIP -N',
      'inet6 KILO-IPIP -N',
      'inet INPUT KILO-IPIP',
      'inet6 INPUT KILO-IPIP',
      'inet INPUT DROP',
      'inet6 INPUT DROP',
    ]);
  });

  it.each([
    ['flannel', 'always', true],
    ['noop', 'always', true],
    ['ipip', 'never', true],
    ['ipip', 'always', false],
  ] as const)('none for %s, strategy %s, local %s', (kind, strategy, local) => {
    expect(encapsulationIptables(kind, strategy, local, ['192.168.0.1'])).toEqual([]);
  });
});
