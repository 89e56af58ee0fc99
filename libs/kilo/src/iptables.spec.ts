import { FakeIptables, IptablesReconciler, validateRuleSet } from '@knet/host-net';
import { planIptables, toRuleSets, topologyIptables, type IptablesOptions, type KiloRule } from './iptables';
import type { Segment, Topology } from './types';

/** Location `lan` (l leads, m is a member) and a remote location `far`; a peer with a v4 and a v6 address. */
function segment(s: Partial<Segment> & Pick<Segment, 'location' | 'wireGuardIP' | 'hostnames'>): Segment {
  return {
    group: s.location,
    allowedIPs: [],
    key: `key-${s.location}`,
    persistentKeepalive: 0,
    cidrs: [],
    leader: 0,
    privateIPs: [],
    cniCompatibilityIPs: s.hostnames.map(() => undefined),
    allowedLocationIPs: [],
    ...s,
  };
}
const far = segment({
  location: 'location:far',
  allowedIPs: ['10.2.9.0/24', '172.16.0.9/32', '10.4.0.1/32'],
  cidrs: ['10.2.9.0/24'],
  hostnames: ['far'],
  privateIPs: ['172.16.0.9'],
  wireGuardIP: '10.4.0.1',
  allowedLocationIPs: ['172.20.0.0/16'],
});
const lan = segment({
  location: 'location:lan',
  allowedIPs: ['10.2.1.0/24', '192.168.1.10/32', '10.2.2.0/24', '192.168.1.11/32', '10.4.0.2/32'],
  cidrs: ['10.2.1.0/24', '10.2.2.0/24'],
  hostnames: ['l', 'm'],
  privateIPs: ['192.168.1.10', '192.168.1.11'],
  wireGuardIP: '10.4.0.2',
  allowedLocationIPs: ['192.168.50.0/24'],
});
const leader: Topology = {
  granularity: 'location',
  hostname: 'l',
  location: 'location:lan',
  port: 51820,
  leader: true,
  persistentKeepalive: 0,
  privateIP: '192.168.1.10/24',
  subnet: '10.2.1.0/24',
  wireGuardCIDR: '10.4.0.2/16',
  serviceCIDRs: ['10.43.0.0/16', 'fd43::/112'],
  segments: [far, lan],
  peers: [{ name: 'laptop', allowedIPs: ['10.10.10.10/32', 'fd99::1/128'], publicKey: 'kp' }],
  discoveredEndpoints: {},
};
const member: Topology = {
  ...leader,
  hostname: 'm',
  leader: false,
  privateIP: '192.168.1.11/24',
  subnet: '10.2.2.0/24',
  wireGuardCIDR: '10.4.0.0/16',
};

const c = (text: string): string[] => ['-m', 'comment', '--comment', text];
const v = (cidr: string): 'inet' | 'inet6' => (cidr.includes(':') ? 'inet6' : 'inet');
const nat = (kind: KiloRule['kind'], chain: string, cidr: string, spec: string[]): KiloRule => ({
  family: v(cidr),
  table: 'nat',
  chain,
  spec,
  kind,
});
const returnTo = (cidr: string, why: string): KiloRule =>
  nat('prepend', 'KILO-NAT', cidr, [
    '-d',
    cidr,
    ...c(`Kilo: do not NAT packets destined for ${why}`),
    '-j',
    'RETURN',
  ]);
const forward = (cidr: string, what: string): KiloRule[] =>
  (['-s', '-d'] as const).map((flag) => ({
    family: v(cidr),
    table: 'filter',
    chain: 'FORWARD',
    spec: [
      ...c(`Kilo: forward packets ${flag === '-s' ? 'from' : 'to'} ${what}`),
      flag,
      cidr,
      '-j',
      'ACCEPT',
    ],
    kind: 'prepend',
  }));

const chains: KiloRule[] = [
  { family: 'inet', table: 'nat', chain: 'KILO-NAT', spec: [], kind: 'chain' },
  { family: 'inet6', table: 'nat', chain: 'KILO-NAT', spec: [], kind: 'chain' },
];
const podJump = (cidr: string): KiloRule =>
  nat('prepend', 'POSTROUTING', cidr, ['-s', cidr, ...c('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT']);
const segmentRules: KiloRule[] = [
  returnTo('10.4.0.1/32', 'WireGuared IPs'),
  ...far.allowedIPs.map((a) => returnTo(a, 'known IPs')),
  returnTo('10.4.0.2/32', 'WireGuared IPs'),
  ...lan.allowedIPs.map((a) => returnTo(a, 'known IPs')),
  nat('prepend', 'POSTROUTING', '192.168.50.0/24', [
    '-d',
    '192.168.50.0/24',
    ...c('Kilo: jump to NAT chain'),
    '-j',
    'KILO-NAT',
  ]),
];
const peerRules: KiloRule[] = ['10.10.10.10/32', 'fd99::1/128'].flatMap((a) => [
  nat('prepend', 'POSTROUTING', a, ['-s', a, ...c('Kilo: jump to NAT chain'), '-j', 'KILO-NAT']),
  returnTo(a, 'peers'),
]);
const tail: KiloRule[] = [
  ...['10.43.0.0/16', 'fd43::/112'].map((s) => ({
    ...returnTo(s, 'service CIDRs'),
    kind: 'append' as const,
  })),
  {
    family: 'inet',
    table: 'nat',
    chain: 'KILO-NAT',
    spec: [...c('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'],
    kind: 'append',
  },
  {
    family: 'inet6',
    table: 'nat',
    chain: 'KILO-NAT',
    spec: [...c('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'],
    kind: 'append',
  },
];

describe("topologyIptables (Kilo's Topology.Rules)", () => {
  it('leader with --cni and forward rules: its location pod CIDRs, allowed location IPs and private IPs', () => {
    expect(topologyIptables(leader, true, true)).toEqual([
      ...chains,
      podJump('10.2.1.0/24'),
      ...forward('10.2.1.0/24', 'the pod subnet'),
      ...forward('10.2.2.0/24', 'the pod subnet'),
      ...forward('192.168.50.0/24', 'allowed location IPs'),
      ...forward('192.168.1.10/32', 'private IPs'),
      ...forward('192.168.1.11/32', 'private IPs'),
      ...segmentRules,
      ...peerRules,
      ...tail,
    ]);
  });

  it("non-leader with forward rules: only its own pod subnet; it NATs to its location's allowed location IPs too", () => {
    expect(topologyIptables(member, true, true)).toEqual([
      ...chains,
      podJump('10.2.2.0/24'),
      ...forward('10.2.2.0/24', "the node's pod subnet"),
      ...segmentRules,
      ...peerRules,
      ...tail,
    ]);
  });

  it('forward rules off: no FORWARD rules; without --cni neither the pod jump nor forward rules (as in Kilo)', () => {
    expect(topologyIptables(leader, true, false)).toEqual([
      ...chains,
      podJump('10.2.1.0/24'),
      ...segmentRules,
      ...peerRules,
      ...tail,
    ]);
    expect(topologyIptables(leader, false, true)).toEqual([
      ...chains,
      ...segmentRules,
      ...peerRules,
      ...tail,
    ]);
  });

  it("a node of another location NATs to no one's allowed location IPs but its own", () => {
    const fromFar: Topology = { ...leader, hostname: 'far', location: 'location:far', subnet: '10.2.9.0/24' };
    const jumps = topologyIptables(fromFar, false, false).filter(
      (r) => r.chain === 'POSTROUTING' && r.spec[0] === '-d',
    );
    expect(jumps.map((r) => r.spec[1])).toEqual(['172.20.0.0/16']);
  });

  it('IPv6 pod CIDR: the pod jump and forward rules are ip6tables rules', () => {
    const v6: Topology = { ...member, subnet: 'fd10:2:2::/64' };
    const rules = topologyIptables(v6, true, true).slice(2, 5);
    expect(rules.map((r) => `${r.family} ${r.table} ${r.chain}`)).toEqual([
      'inet6 nat POSTROUTING',
      'inet6 filter FORWARD',
      'inet6 filter FORWARD',
    ]);
  });
});

const options = (o: Partial<IptablesOptions> = {}): IptablesOptions => ({
  cni: true,
  forwardRules: false,
  local: true,
  strategy: 'always',
  compatibility: '',
  ...o,
});
const ipipAccepts = (rules: KiloRule[]): string[] =>
  rules.filter((r) => r.chain === 'KILO-IPIP' && r.kind === 'prepend').map((r) => r.spec[1] ?? '');

describe('planIptables: encapsulator rules first, then the topology rules (AppendRuleSet)', () => {
  it('IPIP: KILO-IPIP accepts the private IPs of the local location', () => {
    const rules = planIptables(member, options());
    expect(rules.slice(0, 4).map((r) => `${r.family} ${r.table} ${r.chain} ${r.kind}`)).toEqual([
      'inet filter KILO-IPIP chain',
      'inet6 filter KILO-IPIP chain',
      'inet filter INPUT append',
      'inet6 filter INPUT append',
    ]);
    expect(ipipAccepts(rules)).toEqual(['192.168.1.10/32', '192.168.1.11/32']);
    expect(rules.slice(8)).toEqual(topologyIptables(member, true, false));
  });

  it.each([
    ['flannel', options({ compatibility: 'flannel' })],
    ['never', options({ strategy: 'never' })],
    ['no --local', options({ local: false })],
  ])('no encapsulator rules with %s', (_name, o) => {
    expect(planIptables(member, o)).toEqual(topologyIptables(member, true, false));
  });

  it('no private IP: Noop, no encapsulator rules', () => {
    const { privateIP: _unused, ...rest } = member;
    expect(planIptables(rest, options())).toEqual(topologyIptables(rest, true, false));
  });

  it('cilium has the IPIP rules too (cilium.go)', () => {
    expect(ipipAccepts(planIptables(member, options({ compatibility: 'cilium' })))).toEqual([
      '192.168.1.10/32',
      '192.168.1.11/32',
    ]);
  });

  it('full granularity: no location segment, so KILO-IPIP accepts nothing (as in Kilo)', () => {
    const full: Topology = {
      ...member,
      granularity: 'full',
      location: 'node:m',
      segments: [far, { ...lan, location: 'node:m', group: 'location:lan', hostnames: ['m'] }],
    };
    const rules = planIptables(full, options());
    expect(rules.some((r) => r.chain === 'KILO-IPIP')).toBe(true);
    expect(ipipAccepts(rules)).toEqual([]);
  });

  it('cross: KILO-IPIP accepts the private IPs of every node of the location', () => {
    const node = (name: string, ip: string, i: number): Segment =>
      segment({
        location: `node:${name}`,
        group: 'location:lan',
        hostnames: [name],
        privateIPs: [ip],
        cidrs: [`10.2.${i}.0/24`],
        wireGuardIP: `10.4.0.${i}`,
      });
    const cross: Topology = {
      ...member,
      granularity: 'cross',
      leader: true,
      location: 'node:m',
      segments: [
        far,
        node('l', '192.168.1.10', 1),
        node('m', '192.168.1.11', 2),
        node('n', '192.168.1.12', 3),
      ],
    };
    expect(ipipAccepts(planIptables(cross, options()))).toEqual([
      '192.168.1.10/32',
      '192.168.1.11/32',
      '192.168.1.12/32',
    ]);
  });
});

describe('toRuleSets: host-net desired state', () => {
  const rules = planIptables(leader, options({ forwardRules: true }));

  it('IPv4: KILO-NAT and KILO-IPIP owned with their rules (prepends as Kilo leaves them), jumps and ACCEPT/DROP rules in built-in chains', () => {
    const sets = toRuleSets(rules, 'inet');
    expect(sets.map((s) => s.table)).toEqual(['filter', 'nat']);
    const [filter, natSet] = sets;
    expect(filter).toEqual({
      table: 'filter',
      chains: {
        'KILO-IPIP': [
          '-s 192.168.1.11/32 -m comment --comment "Kilo: allow IPIP traffic" -j ACCEPT',
          '-s 192.168.1.10/32 -m comment --comment "Kilo: allow IPIP traffic" -j ACCEPT',
        ],
      },
      jumps: [
        {
          fromChain: 'INPUT',
          rule: '-p ipencap -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP',
          position: 'append',
        },
        {
          fromChain: 'INPUT',
          rule: '-p ipencap -m comment --comment "Kilo: reject other IPIP traffic" -j DROP',
          position: 'append',
        },
        ...['192.168.1.11/32', '192.168.1.10/32'].flatMap((ip) => [
          {
            fromChain: 'FORWARD',
            rule: `-m comment --comment "Kilo: forward packets to private IPs" -d ${ip} -j ACCEPT`,
            position: 'prepend',
          },
          {
            fromChain: 'FORWARD',
            rule: `-m comment --comment "Kilo: forward packets from private IPs" -s ${ip} -j ACCEPT`,
            position: 'prepend',
          },
        ]),
        {
          fromChain: 'FORWARD',
          rule: '-m comment --comment "Kilo: forward packets to allowed location IPs" -d 192.168.50.0/24 -j ACCEPT',
          position: 'prepend',
        },
        {
          fromChain: 'FORWARD',
          rule: '-m comment --comment "Kilo: forward packets from allowed location IPs" -s 192.168.50.0/24 -j ACCEPT',
          position: 'prepend',
        },
        ...['10.2.2.0/24', '10.2.1.0/24'].flatMap((cidr) => [
          {
            fromChain: 'FORWARD',
            rule: `-m comment --comment "Kilo: forward packets to the pod subnet" -d ${cidr} -j ACCEPT`,
            position: 'prepend',
          },
          {
            fromChain: 'FORWARD',
            rule: `-m comment --comment "Kilo: forward packets from the pod subnet" -s ${cidr} -j ACCEPT`,
            position: 'prepend',
          },
        ]),
      ],
    });
    expect(natSet?.chains['KILO-NAT']).toEqual([
      '-d 10.10.10.10/32 -m comment --comment "Kilo: do not NAT packets destined for peers" -j RETURN',
      ...[...lan.allowedIPs]
        .reverse()
        .map(
          (a) => `-d ${a} -m comment --comment "Kilo: do not NAT packets destined for known IPs" -j RETURN`,
        ),
      '-d 10.4.0.2/32 -m comment --comment "Kilo: do not NAT packets destined for WireGuared IPs" -j RETURN',
      ...[...far.allowedIPs]
        .reverse()
        .map(
          (a) => `-d ${a} -m comment --comment "Kilo: do not NAT packets destined for known IPs" -j RETURN`,
        ),
      '-d 10.4.0.1/32 -m comment --comment "Kilo: do not NAT packets destined for WireGuared IPs" -j RETURN',
      '-d 10.43.0.0/16 -m comment --comment "Kilo: do not NAT packets destined for service CIDRs" -j RETURN',
      '-m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
    ]);
    expect(natSet?.jumps).toEqual([
      {
        fromChain: 'POSTROUTING',
        rule: '-s 10.10.10.10/32 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT',
        position: 'prepend',
      },
      {
        fromChain: 'POSTROUTING',
        rule: '-d 192.168.50.0/24 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT',
        position: 'prepend',
      },
      {
        fromChain: 'POSTROUTING',
        rule: '-s 10.2.1.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT',
        position: 'prepend',
      },
    ]);
    for (const set of sets) expect(() => validateRuleSet(set)).not.toThrow();
  });

  it('IPv6: the v6 chains, peer, service CIDR and MASQUERADE; the IPIP chain with no ACCEPT', () => {
    const [filter, natSet] = toRuleSets(rules, 'inet6');
    expect(filter).toEqual({
      table: 'filter',
      chains: { 'KILO-IPIP': [] },
      jumps: [
        {
          fromChain: 'INPUT',
          rule: '-p ipencap -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP',
          position: 'append',
        },
        {
          fromChain: 'INPUT',
          rule: '-p ipencap -m comment --comment "Kilo: reject other IPIP traffic" -j DROP',
          position: 'append',
        },
      ],
    });
    expect(natSet).toEqual({
      table: 'nat',
      chains: {
        'KILO-NAT': [
          '-d fd99::1/128 -m comment --comment "Kilo: do not NAT packets destined for peers" -j RETURN',
          '-d fd43::/112 -m comment --comment "Kilo: do not NAT packets destined for service CIDRs" -j RETURN',
          '-m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
        ],
      },
      jumps: [
        {
          fromChain: 'POSTROUTING',
          rule: '-s fd99::1/128 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT',
          position: 'prepend',
        },
      ],
    });
  });

  it('applies on a fake iptables through the reconciler, idempotently, and cleans up', async () => {
    const ipt = new FakeIptables();
    await ipt.command(['-A', 'FORWARD', '-s', '203.0.113.0/24', '-j', 'DROP']);
    const rec = new IptablesReconciler(ipt, toRuleSets(rules, 'inet'));
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect((await rec.reconcile()).changed).toBe(false);
    const filterS = await ipt.listRules('filter');
    expect(
      filterS
        .split('\n')
        .filter((l) => l.startsWith('-A FORWARD'))
        .at(-1),
    ).toBe('-A FORWARD -s 203.0.113.0/24 -j DROP');
    expect(filterS).toContain(
      '-A INPUT -p ipencap -m comment --comment "Kilo: reject other IPIP traffic" -j DROP',
    );
    // A non-leader's smaller rule set replaces the leader's FORWARD rules.
    await rec.set(toRuleSets(planIptables(member, options({ forwardRules: true })), 'inet'));
    // iptables -S prints the comment's apostrophe escaped.
    expect((await ipt.listRules('filter')).split('\n').filter((l) => l.startsWith('-A FORWARD'))).toEqual([
      '-A FORWARD -d 10.2.2.0/24 -m comment --comment "Kilo: forward packets to the node\\\'s pod subnet" -j ACCEPT',
      '-A FORWARD -s 10.2.2.0/24 -m comment --comment "Kilo: forward packets from the node\\\'s pod subnet" -j ACCEPT',
      '-A FORWARD -s 203.0.113.0/24 -j DROP',
    ]);
    await rec.cleanup();
    expect(await ipt.listRules('filter')).not.toContain('Kilo');
    expect(await ipt.listRules('nat')).not.toContain('KILO');
  });
});
