import { IPTABLES_NAT_S, IPTABLES_S } from '../test/fixtures/captured';
import { describeDrift } from './drift';
import {
  canonicalRule,
  diffRuleSet,
  expectedIptablesS,
  IptablesRuleSetError,
  parseIptablesS,
  renderCleanupPayload,
  renderRepairPayload,
  ruleTarget,
  tokenizeRule,
  validateRuleSet,
  type IptablesRuleSet,
  type LiveTable,
} from './iptables-rules';

describe('tokenizeRule', () => {
  it.each<[string, string[]]>([
    ['-s 192.0.2.0/24 -j ACCEPT', ['-s', '192.0.2.0/24', '-j', 'ACCEPT']],
    ['  -j   DROP  ', ['-j', 'DROP']],
    [
      '-m comment --comment "knet: allow lab" -j ACCEPT',
      ['-m', 'comment', '--comment', 'knet: allow lab', '-j', 'ACCEPT'],
    ],
    ['--comment "a \\"b\\" c"', ['--comment', 'a "b" c']],
    ['--comment ""', ['--comment', '']],
    ['--comment a\\ b', ['--comment', 'a b']],
  ])('%s', (rule, tokens) => {
    expect(tokenizeRule(rule)).toEqual(tokens);
  });

  it('rejects an unterminated quote', () => {
    expect(() => tokenizeRule('--comment "oops')).toThrow(/unterminated quote/);
  });
});

describe('canonicalRule (as iptables -S prints it)', () => {
  it.each<[string, string]>([
    ['-p tcp --dport 443 -j DROP', '-p tcp -m tcp --dport 443 -j DROP'],
    ['-p tcp -m tcp --dport 443 -j DROP', '-p tcp -m tcp --dport 443 -j DROP'],
    ['-p UDP --sport 53 -j ACCEPT', '-p udp -m udp --sport 53 -j ACCEPT'],
    ['-p tcp -m multiport --dports 80,443 -j ACCEPT', '-p tcp -m multiport --dports 80,443 -j ACCEPT'],
    ['-d 198.51.100.7 -j ACCEPT', '-d 198.51.100.7/32 -j ACCEPT'],
    ['-s 192.0.2.77/24 -j ACCEPT', '-s 192.0.2.0/24 -j ACCEPT'],
    ['-s 0.0.0.0/0 -j ACCEPT', '-s 0.0.0.0/0 -j ACCEPT'],
    ['--source 192.0.2.0/24 --jump ACCEPT', '-s 192.0.2.0/24 -j ACCEPT'],
    [
      '-p udp -i eth0 ! -s 192.0.2.0/24 --dport 4789 -j DROP',
      '! -s 192.0.2.0/24 -i eth0 -p udp -m udp --dport 4789 -j DROP',
    ],
    ['-o eth0 -d 203.0.113.0/24 -j MASQUERADE', '-d 203.0.113.0/24 -o eth0 -j MASQUERADE'],
    ['-m comment --comment "knet: lab" -j ACCEPT', '-m comment --comment "knet: lab" -j ACCEPT'],
    ['-m comment --comment knet-lab -j ACCEPT', '-m comment --comment knet-lab -j ACCEPT'],
    ['-m comment --comment knet:lab -j ACCEPT', '-m comment --comment "knet:lab" -j ACCEPT'],
    ['-j REJECT', '-j REJECT --reject-with icmp-port-unreachable'],
    ['-j REJECT --reject-with tcp-reset', '-j REJECT --reject-with tcp-reset'],
    ['-s 2001:DB8::1 -j ACCEPT', '-s 2001:db8::1/128 -j ACCEPT'],
    ['-j KNT-FWD', '-j KNT-FWD'],
  ])('%s → %s', (rule, want) => {
    expect(canonicalRule(rule)).toBe(want);
    // idempotent: the canonical form is a fixed point
    expect(canonicalRule(want)).toBe(want);
  });

  it('uses the IPv6 REJECT default for ip6tables', () => {
    expect(canonicalRule('-j REJECT', 'inet6')).toBe('-j REJECT --reject-with icmp6-port-unreachable');
  });

  it('finds the target', () => {
    expect(ruleTarget('-i eth0 -j KNT-IN')).toBe('KNT-IN');
    expect(ruleTarget('-g KNT-X')).toBe('KNT-X');
    expect(ruleTarget('-m comment --comment "-j FAKE"')).toBeUndefined();
  });
});

describe('parseIptablesS', () => {
  it('parses captured filter and nat tables', () => {
    const f = parseIptablesS(IPTABLES_S, 'filter');
    expect([...f.policies]).toEqual([
      ['INPUT', 'ACCEPT'],
      ['FORWARD', 'ACCEPT'],
      ['OUTPUT', 'ACCEPT'],
    ]);
    expect(f.userChains).toEqual(['KNT-FWD']);
    expect(f.rules.get('FORWARD')).toEqual(['-j KNT-FWD']);
    expect(f.rules.get('KNT-FWD')).toEqual([
      '-s 192.0.2.0/24 -m comment --comment "knet: allow lab" -j ACCEPT',
      '-p tcp -m tcp --dport 443 -j DROP',
    ]);
    expect(f.rules.get('INPUT')).toEqual([]);
    const n = parseIptablesS(IPTABLES_NAT_S, 'nat');
    expect(n.rules.get('POSTROUTING')).toEqual(['-j KNT-POST']);
    expect(n.rules.get('KNT-POST')).toEqual(['-o ve0 -j MASQUERADE']);
  });

  it('rejects garbage', () => {
    expect(() => parseIptablesS('-Z foo', 'filter')).toThrow(/unexpected line/);
  });
});

const desired: IptablesRuleSet = {
  table: 'filter',
  chains: {
    'KNT-FWD': [
      '-s 192.0.2.0/24 -m comment --comment "knet: allow lab" -j ACCEPT',
      '-p tcp --dport 443 -j DROP',
    ],
    'KNT-IN': ['-j RETURN'],
  },
  jumps: [
    { fromChain: 'FORWARD', rule: '-j KNT-FWD', position: 'prepend' },
    { fromChain: 'INPUT', rule: '-i eth0 -j KNT-IN', position: 'append' },
  ],
};

/** Builds a live table from `-S`-like lines (policies for the filter table added). */
function live(...lines: string[]): LiveTable {
  return parseIptablesS(
    ['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT', ...lines].join('\n'),
    'filter',
  );
}

const inSync = [
  '-N KNT-FWD',
  '-N KNT-IN',
  '-A INPUT -s 203.0.113.0/24 -j DROP',
  '-A INPUT -i eth0 -j KNT-IN',
  '-A FORWARD -j KNT-FWD',
  '-A FORWARD -j DROP',
  '-A KNT-FWD -s 192.0.2.0/24 -m comment --comment "knet: allow lab" -j ACCEPT',
  '-A KNT-FWD -p tcp -m tcp --dport 443 -j DROP',
  '-A KNT-IN -j RETURN',
];

describe('diffRuleSet', () => {
  it.each<[string, string[], string[]]>([
    ['in sync (foreign rules around the jumps are fine)', inSync, []],
    [
      'empty table',
      [],
      [
        'filter/KNT-FWD: chain missing',
        'filter/KNT-IN: chain missing',
        'filter/INPUT: jumps differ (want [-i eth0 -j KNT-IN], have [])',
        'filter/FORWARD: jumps differ (want [-j KNT-FWD], have [])',
      ],
    ],
    [
      'a rule deleted',
      inSync.filter((l) => !l.includes('--dport 443')),
      ['filter/KNT-FWD: rules differ (want 2, have 1)'],
    ],
    ['a rule added', [...inSync, '-A KNT-IN -j ACCEPT'], ['filter/KNT-IN: rules differ (want 1, have 2)']],
    [
      'rules reordered',
      [
        ...inSync.filter((l) => !l.startsWith('-A KNT-FWD')),
        '-A KNT-FWD -p tcp -m tcp --dport 443 -j DROP',
        '-A KNT-FWD -s 192.0.2.0/24 -m comment --comment "knet: allow lab" -j ACCEPT',
      ],
      ['filter/KNT-FWD: rules differ (want 2, have 2)'],
    ],
    [
      'a duplicate jump',
      [...inSync, '-A FORWARD -j KNT-FWD'],
      ['filter/FORWARD: jumps differ (want [-j KNT-FWD], have [-j KNT-FWD | -j KNT-FWD])'],
    ],
    [
      'a prepend jump not at the top',
      inSync.map((l) =>
        l === '-A FORWARD -j KNT-FWD'
          ? '-A FORWARD -j LOG'
          : l === '-A FORWARD -j DROP'
            ? '-A FORWARD -j KNT-FWD'
            : l,
      ),
      ['filter/FORWARD: jumps differ (want [-j KNT-FWD], have [-j KNT-FWD])'],
    ],
    [
      'an append jump not at the bottom',
      [...inSync, '-A INPUT -j ACCEPT'],
      ['filter/INPUT: jumps differ (want [-i eth0 -j KNT-IN], have [-i eth0 -j KNT-IN])'],
    ],
    [
      'a jump with the wrong match',
      inSync.map((l) => l.replace('-A INPUT -i eth0 -j KNT-IN', '-A INPUT -i eth1 -j KNT-IN')),
      ['filter/INPUT: jumps differ (want [-i eth0 -j KNT-IN], have [-i eth1 -j KNT-IN])'],
    ],
    [
      'a jump from another built-in chain',
      [...inSync, '-A OUTPUT -j KNT-FWD'],
      ['filter/OUTPUT: jumps differ (want [], have [-j KNT-FWD])'],
    ],
    [
      'a chain deleted with its jump',
      inSync.filter((l) => !l.includes('KNT-IN')),
      ['filter/KNT-IN: chain missing', 'filter/INPUT: jumps differ (want [-i eth0 -j KNT-IN], have [])'],
    ],
  ])('%s', (_name, lines, want) => {
    expect(diffRuleSet(desired, live(...lines)).map(describeDrift)).toEqual(want);
  });

  it('treats prefix-owned chains that are not desired as stale, with their jumps', () => {
    const drift = diffRuleSet(desired, live(...inSync, '-N KNT-OLD', '-A OUTPUT -j KNT-OLD', '-N OTHER'), {
      ownedPrefix: 'KNT-',
    });
    expect(drift.map(describeDrift)).toEqual([
      'filter/KNT-OLD: stale owned chain',
      'filter/OUTPUT: jumps differ (want [], have [-j KNT-OLD])',
    ]);
    // without the prefix option, foreign chains are none of our business
    expect(diffRuleSet(desired, live(...inSync, '-N KNT-OLD'))).toEqual([]);
  });

  it('uses a supplied canonicaliser (learned forms)', () => {
    const set: IptablesRuleSet = {
      table: 'filter',
      chains: { 'KNT-CT': ['-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'] },
    };
    const l = live('-N KNT-CT', '-A KNT-CT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
    expect(diffRuleSet(set, l)).toHaveLength(1);
    expect(
      diffRuleSet(set, l, {
        canonical: (_t, _c, r) => r.replace('ESTABLISHED,RELATED', 'RELATED,ESTABLISHED'),
      }),
    ).toEqual([]);
  });
});

describe('renderRepairPayload', () => {
  it('creates everything on an empty table', () => {
    const l = live();
    expect(renderRepairPayload(desired, l, diffRuleSet(desired, l))).toBe(
      [
        '*filter',
        ':KNT-FWD - [0:0]',
        ':KNT-IN - [0:0]',
        '-A KNT-FWD -s 192.0.2.0/24 -m comment --comment "knet: allow lab" -j ACCEPT',
        '-A KNT-FWD -p tcp --dport 443 -j DROP',
        '-A KNT-IN -j RETURN',
        '-A INPUT -i eth0 -j KNT-IN',
        '-I FORWARD 1 -j KNT-FWD',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('touches only what drifted: refills a chain, replaces duplicate jumps', () => {
    const l = live(...inSync.filter((x) => !x.includes('--dport 443')), '-A FORWARD -j KNT-FWD');
    expect(renderRepairPayload(desired, l, diffRuleSet(desired, l))).toBe(
      [
        '*filter',
        ':KNT-FWD - [0:0]',
        '-D FORWARD -j KNT-FWD',
        '-D FORWARD -j KNT-FWD',
        '-A KNT-FWD -s 192.0.2.0/24 -m comment --comment "knet: allow lab" -j ACCEPT',
        '-A KNT-FWD -p tcp --dport 443 -j DROP',
        '-I FORWARD 1 -j KNT-FWD',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('flushes and deletes stale chains after removing their jumps; empty when in sync', () => {
    const l = live(...inSync, '-N KNT-OLD', '-A KNT-OLD -j ACCEPT', '-A OUTPUT -j KNT-OLD');
    const drift = diffRuleSet(desired, l, { ownedPrefix: 'KNT-' });
    expect(renderRepairPayload(desired, l, drift)).toBe(
      ['*filter', ':KNT-OLD - [0:0]', '-D OUTPUT -j KNT-OLD', '-X KNT-OLD', 'COMMIT', ''].join('\n'),
    );
    expect(renderRepairPayload(desired, live(...inSync), [])).toBe('');
  });

  it('orders several prepend jumps as given', () => {
    const set: IptablesRuleSet = {
      table: 'filter',
      chains: { 'KNT-A': [], 'KNT-B': [] },
      jumps: [
        { fromChain: 'FORWARD', rule: '-j KNT-A', position: 'prepend' },
        { fromChain: 'FORWARD', rule: '-j KNT-B', position: 'prepend' },
      ],
    };
    const payload = renderRepairPayload(set, live(), diffRuleSet(set, live()));
    expect(payload).toContain('-I FORWARD 1 -j KNT-B\n-I FORWARD 1 -j KNT-A\n');
    expect(expectedIptablesS(set)).toEqual([
      '-N KNT-A',
      '-N KNT-B',
      '-A FORWARD -j KNT-A',
      '-A FORWARD -j KNT-B',
    ]);
  });
});

describe('renderCleanupPayload', () => {
  it('removes jumps, then flushes and deletes owned chains; foreign rules stay', () => {
    expect(renderCleanupPayload(desired, live(...inSync))).toBe(
      [
        '*filter',
        '-D INPUT -i eth0 -j KNT-IN',
        '-D FORWARD -j KNT-FWD',
        '-F KNT-FWD',
        '-F KNT-IN',
        '-X KNT-FWD',
        '-X KNT-IN',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(renderCleanupPayload(desired, live('-A INPUT -j DROP'))).toBe('');
  });
});

describe('validateRuleSet', () => {
  it.each<[string, IptablesRuleSet, RegExp]>([
    ['unknown table', { table: 'bogus' as 'filter', chains: {} }, /unknown iptables table/],
    ['bad chain name', { table: 'filter', chains: { 'has space': [] } }, /invalid chain name/],
    ['long chain name', { table: 'filter', chains: { ['K'.repeat(29)]: [] } }, /invalid chain name/],
    ['built-in chain owned', { table: 'filter', chains: { FORWARD: [] } }, /built-in/],
    ['rule with -A', { table: 'filter', chains: { 'KNT-A': ['-A KNT-A -j ACCEPT'] } }, /without -A/],
    ['rule with newline', { table: 'filter', chains: { 'KNT-A': ['-j ACCEPT\n-j DROP'] } }, /newline/],
    ['empty rule', { table: 'filter', chains: { 'KNT-A': ['  '] } }, /empty rule/],
    [
      'jump from a non built-in',
      {
        table: 'filter',
        chains: { 'KNT-A': [] },
        jumps: [{ fromChain: 'KNT-A', rule: '-j KNT-A', position: 'append' }],
      },
      /not a built-in chain of table filter/,
    ],
    [
      'jump from a chain of another table',
      {
        table: 'filter',
        chains: { 'KNT-A': [] },
        jumps: [{ fromChain: 'POSTROUTING', rule: '-j KNT-A', position: 'append' }],
      },
      /not a built-in chain/,
    ],
    [
      'jump to a foreign chain',
      {
        table: 'filter',
        chains: { 'KNT-A': [] },
        jumps: [{ fromChain: 'INPUT', rule: '-j DOCKER-USER', position: 'append' }],
      },
      /must target one of the owned chains/,
    ],
    [
      'jump to a target that is neither owned nor standard',
      {
        table: 'filter',
        chains: {},
        jumps: [{ fromChain: 'INPUT', rule: '-j LOG', position: 'append' }],
      },
      /must target one of the owned chains \(\) or ACCEPT, DROP, RETURN/,
    ],
    [
      'jump for another table',
      {
        table: 'filter',
        chains: { 'KNT-A': [] },
        jumps: [{ table: 'nat', fromChain: 'INPUT', rule: '-j KNT-A', position: 'append' }],
      },
      /is for table nat/,
    ],
  ])('rejects %s', (_name, set, err) => {
    expect(() => validateRuleSet(set)).toThrow(IptablesRuleSetError);
    expect(() => validateRuleSet(set)).toThrow(err);
  });

  it('accepts a well-formed set', () => {
    expect(() => validateRuleSet(desired)).not.toThrow();
  });

  it('accepts rules with a standard target in built-in chains, with or without owned chains', () => {
    expect(() => validateRuleSet(standardSet)).not.toThrow();
    expect(() =>
      validateRuleSet({
        table: 'filter',
        chains: { 'KNT-A': [] },
        jumps: [{ fromChain: 'INPUT', rule: '-p ipencap -j DROP', position: 'append' }],
      }),
    ).not.toThrow();
  });
});

/** A set with no chain of its own: two ACCEPTs at the top of FORWARD, a DROP at the bottom of INPUT. */
const standardSet: IptablesRuleSet = {
  table: 'filter',
  chains: {},
  jumps: [
    {
      fromChain: 'FORWARD',
      rule: '-s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT',
      position: 'prepend',
    },
    {
      fromChain: 'FORWARD',
      rule: '-d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT',
      position: 'prepend',
    },
    { fromChain: 'INPUT', rule: '-p ipencap -j DROP', position: 'append' },
  ],
};

const standardInSync = [
  '-A INPUT -s 203.0.113.0/24 -j ACCEPT',
  '-A INPUT -p ipencap -j DROP',
  '-A FORWARD -s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT',
  '-A FORWARD -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT',
  '-A FORWARD -s 198.51.100.0/24 -j ACCEPT',
];

describe('rules with a standard target (ACCEPT, DROP, RETURN) in built-in chains', () => {
  it.each<[string, string[], string[]]>([
    ['in sync (foreign ACCEPTs around them are not ours)', standardInSync, []],
    [
      'one missing',
      standardInSync.filter((l) => !l.includes('to pods')),
      [
        'filter/FORWARD: jumps differ (want [-s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT | -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT], have [-s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT])',
      ],
    ],
    [
      'an append rule not at the bottom',
      [...standardInSync, '-A INPUT -j ACCEPT'],
      ['filter/INPUT: jumps differ (want [-p ipencap -j DROP], have [-p ipencap -j DROP])'],
    ],
  ])('%s', (_name, lines, want) => {
    expect(diffRuleSet(standardSet, live(...lines)).map(describeDrift)).toEqual(want);
  });

  it('counts a former rule that is still live as ours, to delete', () => {
    const former = [{ fromChain: 'FORWARD', rule: '-s 10.9.0.0/16 -j ACCEPT', position: 'prepend' as const }];
    const l = live(...standardInSync, '-A FORWARD -s 10.9.0.0/16 -j ACCEPT');
    expect(diffRuleSet(standardSet, l)).toEqual([]);
    const drift = diffRuleSet(standardSet, l, { formerJumps: former });
    expect(drift.map(describeDrift)).toEqual([
      'filter/FORWARD: jumps differ (want [-s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT | -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT], have [-s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT | -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT | -s 10.9.0.0/16 -j ACCEPT])',
    ]);
    // The repair deletes our three rules (the former one included), never the foreign ACCEPT.
    expect(renderRepairPayload(standardSet, l, drift)).toBe(
      [
        '*filter',
        '-D FORWARD -s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT',
        '-D FORWARD -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT',
        '-D FORWARD -s 10.9.0.0/16 -j ACCEPT',
        '-I FORWARD 1 -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT',
        '-I FORWARD 1 -s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('cleans up its own rules (and former ones) only', () => {
    const l = live(...standardInSync, '-A FORWARD -s 10.9.0.0/16 -j ACCEPT');
    const formerJumps = [
      { fromChain: 'FORWARD', rule: '-s 10.9.0.0/16 -j ACCEPT', position: 'prepend' as const },
    ];
    expect(renderCleanupPayload(standardSet, l, undefined, { formerJumps })).toBe(
      [
        '*filter',
        '-D INPUT -p ipencap -j DROP',
        '-D FORWARD -s 10.2.1.0/24 -m comment --comment "knet: from pods" -j ACCEPT',
        '-D FORWARD -d 10.2.1.0/24 -m comment --comment "knet: to pods" -j ACCEPT',
        '-D FORWARD -s 10.9.0.0/16 -j ACCEPT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(renderCleanupPayload(standardSet, live('-A INPUT -j DROP', '-A FORWARD -j ACCEPT'))).toBe('');
  });
});
