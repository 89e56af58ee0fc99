import { fakeVethNet } from '../test/fixtures/lab-net';
import { describeDrift } from './drift';
import type { RuleSpec } from './ip-types';
import { RuleSet } from './rule-set';

const SUPPRESS: RuleSpec = { priority: 50, table: 'main', suppressPrefixLength: 0 };
const MARK: RuleSpec = { priority: 1107, fwmark: 0x10, fwmask: 0xff, table: 1107 };
const FROM6: RuleSpec = { priority: 1108, from: '2001:db8::/64', table: 1107 };

const listed = async (rules: RuleSet) =>
  (await rules.owned()).map((r) => `${r.family} ${r.priority} ${r.table}`);

describe('RuleSet', () => {
  it('adds IPv4 and IPv6 rules with its protocol, and a second set changes nothing', async () => {
    const net = await fakeVethNet();
    const rules = new RuleSet(net.ip, { protocol: 77 });
    const first = await rules.set([SUPPRESS, MARK, FROM6]);
    expect(first.drift.map(describeDrift)).toEqual([
      'rule pref 50 from all lookup main suppress_prefixlength 0: missing',
      'rule pref 1107 from all fwmark 0x10/0xff lookup 1107: missing',
      'rule pref 1108 from 2001:db8::/64 lookup 1107: missing',
    ]);
    expect(await listed(rules)).toEqual(['inet 50 main', 'inet 1107 1107', 'inet6 1108 1107']);
    expect(await rules.set([SUPPRESS, MARK, FROM6])).toEqual({ changed: false, drift: [] });
  });

  it.each<[string, RuleSpec[], RuleSpec[], string[]]>([
    [
      'a changed rule is the old one removed and the new one added',
      [MARK],
      [{ ...MARK, table: 1108 }],
      [
        'rule pref 1107 from all fwmark 0x10/0xff lookup 1108: missing',
        'rule pref 1107 from all fwmark 0x10/0xff lookup 1107: not desired',
      ],
    ],
    [
      'a rule no longer desired is removed',
      [SUPPRESS, MARK],
      [SUPPRESS],
      ['rule pref 1107 from all fwmark 0x10/0xff lookup 1107: not desired'],
    ],
    [
      'host prefixes, full masks and numbered tables compare equal',
      [{ priority: 10, from: '192.0.2.1/32', fwmark: 1, fwmask: 0xffffffff, table: 254 }],
      [{ priority: 10, from: '192.0.2.1', fwmark: 1, table: 'main' }],
      [],
    ],
  ])('%s', async (_name, before, after, drift) => {
    const net = await fakeVethNet();
    const rules = new RuleSet(net.ip, { protocol: 77 });
    await rules.set(before);
    expect((await rules.drift(after)).map(describeDrift)).toEqual(drift);
    expect((await rules.set(after)).drift.map(describeDrift)).toEqual(drift);
    expect(await rules.drift()).toEqual([]);
  });

  it('never touches rules of another protocol, the same rule included, in set and in cleanup', async () => {
    const net = await fakeVethNet();
    await net.ip.addRule(SUPPRESS); // the same rule, added by someone else (no protocol)
    await net.ip.addRule({ ...MARK, protocol: 'static' });
    const all = async () => [
      ...(await net.ip.listRules()).map((r) => `${r.priority} ${r.table} ${r.protocol ?? '-'}`),
      ...(await net.ip.listRules({ family: 'inet6' })).map(
        (r) => `${r.priority} ${r.table} ${r.protocol ?? '-'}`,
      ),
    ];
    const before = await all();

    const rules = new RuleSet(net.ip, { protocol: 77 });
    expect((await rules.set([SUPPRESS, FROM6])).drift.map((d) => d.kind)).toEqual(['missing', 'missing']);
    const now = await all();
    expect(now.filter((r) => !r.endsWith(' 77'))).toEqual(before);
    expect(now.filter((r) => r.endsWith(' 77'))).toEqual(['50 main 77', '1108 1107 77']);
    await rules.set([]);
    expect(await all()).toEqual(before);
    await rules.set([SUPPRESS]);
    const cleanup = await rules.cleanup();
    expect(cleanup.drift.map(describeDrift)).toEqual([
      'rule pref 50 from all lookup main suppress_prefixlength 0: not desired',
    ]);
    expect(await all()).toEqual(before);
  });

  it.each<[string, RuleSpec, RegExp]>([
    ['no priority', { table: 100 }, /rules proto 77: rule - from all lookup 100 has no priority/],
    ['another protocol', { ...MARK, protocol: 4 }, /names protocol 4: leave it out or use 77/],
    ['a bad prefix', { priority: 1, from: '192.0.2.0/40' }, /192.0.2.0\/40 is not a prefix/],
  ])('rejects a rule with %s before running anything', async (_name, rule, message) => {
    const net = await fakeVethNet();
    const rules = new RuleSet(net.ip, { protocol: 77 });
    await expect(rules.set([rule])).rejects.toThrow(message);
    expect(await rules.owned()).toEqual([]);
  });

  it('manages only its families', async () => {
    const net = await fakeVethNet();
    const rules = new RuleSet(net.ip, { protocol: 77, families: ['inet6'] });
    await expect(rules.set([MARK])).rejects.toThrow(/is inet, but this set manages inet6 only/);
    await rules.set([FROM6]);
    expect(await listed(rules)).toEqual(['inet6 1108 1107']);
  });
});
