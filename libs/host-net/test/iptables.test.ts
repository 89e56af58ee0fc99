import { NetLab, type NetHost } from '@knet/testing';
import { describeDrift, IptablesReconciler, type IptablesRuleSet } from '../src';
import { RecordingLogger } from '@knet/runtime';
import { FOREIGN_RULE, LAB_FILTER, LAB_FILTER_S, LAB_NAT, LAB_NAT_S } from './fixtures/lab-iptables';
import { hostNetFor } from './helpers';

jest.setTimeout(60_000);

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
/** `-N` lines sorted (their order follows creation, which a repair may change); rules keep their order. */
const normalizeOrder = (l: string[]): string[] => [
  ...l.filter((x) => x.startsWith('-P')),
  ...l.filter((x) => x.startsWith('-N')).sort(),
  ...l.filter((x) => x.startsWith('-A')),
];

let lab: NetLab;
let host: NetHost;
beforeAll(async () => {
  lab = await NetLab.create();
  host = await lab.addHost('fw');
});
afterAll(async () => {
  await lab?.dispose();
});

const iptablesS = async (table = 'filter', bin = 'iptables'): Promise<string[]> =>
  normalizeOrder(lines((await host.exec(bin, ['-w', '5', '-t', table, '-S'])).stdout));
const raw = async (...args: string[]): Promise<void> => {
  await host.exec('iptables', ['-w', '5', ...args]);
};

describe('IptablesReconciler in a network namespace', () => {
  it('applies, detects hand-made drift, repairs it, is idempotent and cleans up', async () => {
    const logger = new RecordingLogger();
    const { net } = hostNetFor(host, logger);
    await raw('-A', ...FOREIGN_RULE); // someone else's rule
    const rec = new IptablesReconciler(net.iptables, [LAB_FILTER, LAB_NAT], { logger });

    const first = await rec.reconcile();
    expect(first.changed).toBe(true);
    expect(first.drift.map(describeDrift)).toEqual([
      'filter/KNT-FWD: chain missing',
      'filter/KNT-IN: chain missing',
      'filter/INPUT: jumps differ (want [-j KNT-IN], have [])',
      'filter/FORWARD: jumps differ (want [-j KNT-FWD], have [])',
      'nat/KNT-POST: chain missing',
      'nat/POSTROUTING: jumps differ (want [-j KNT-POST], have [])',
    ]);
    expect(first.remaining).toEqual([]);
    expect(await iptablesS()).toEqual(normalizeOrder(LAB_FILTER_S));
    expect(await iptablesS('nat')).toEqual(normalizeOrder(LAB_NAT_S));
    expect(logger.text()).toContain('iptables-restore -w 5 --noflush');

    // Idempotent: nothing drifts, nothing is written.
    const restoresBefore = logger.lines.filter((r) =>
      String(r.fields['command']).includes('iptables-restore'),
    ).length;
    expect(await rec.reconcile()).toEqual({ changed: false, drift: [], remaining: [] });
    expect(await new IptablesReconciler(net.iptables, [LAB_FILTER, LAB_NAT]).drift()).toEqual([]);
    expect(logger.lines.filter((r) => String(r.fields['command']).includes('iptables-restore')).length).toBe(
      restoresBefore,
    );

    // Drift by hand: a deleted rule, a flushed chain, an extra jump, a missing jump.
    await raw('-D', 'KNT-FWD', '2');
    await raw('-F', 'KNT-IN');
    await raw('-I', 'FORWARD', '3', '-j', 'KNT-FWD');
    await raw('-t', 'nat', '-D', 'POSTROUTING', '-j', 'KNT-POST');
    const drift = await rec.drift();
    expect(drift.map((d) => `${d.kind} ${d.table}/${d.chain}`)).toEqual([
      'chain-rules filter/KNT-FWD',
      'chain-rules filter/KNT-IN',
      'jumps filter/FORWARD',
      'jumps nat/POSTROUTING',
    ]);
    const repaired = await rec.reconcile();
    expect(repaired.changed).toBe(true);
    expect(repaired.remaining).toEqual([]);
    expect(await iptablesS()).toEqual(normalizeOrder(LAB_FILTER_S));
    expect(await iptablesS('nat')).toEqual(normalizeOrder(LAB_NAT_S));

    // A chain deleted altogether (and its jump) comes back.
    await raw('-D', 'INPUT', '-j', 'KNT-IN');
    await raw('-F', 'KNT-IN');
    await raw('-X', 'KNT-IN');
    expect((await rec.drift()).map((d) => d.kind)).toEqual(['missing-chain', 'jumps']);
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect(await iptablesS()).toEqual(normalizeOrder(LAB_FILTER_S));
    expect((await rec.reconcile()).changed).toBe(false);

    // Cleanup leaves the built-in chains and the foreign rule only.
    await rec.cleanup();
    expect(await iptablesS()).toEqual([
      '-P INPUT ACCEPT',
      '-P FORWARD ACCEPT',
      '-P OUTPUT ACCEPT',
      `-A ${FOREIGN_RULE.join(' ')}`,
    ]);
    expect(await iptablesS('nat')).toEqual([
      '-P PREROUTING ACCEPT',
      '-P INPUT ACCEPT',
      '-P OUTPUT ACCEPT',
      '-P POSTROUTING ACCEPT',
    ]);
    await rec.cleanup(); // nothing left: no-op
    await raw('-D', ...FOREIGN_RULE);
  });

  it('removes stale owned chains by prefix', async () => {
    const { net } = hostNetFor(host);
    const v1 = new IptablesReconciler(net.iptables, LAB_FILTER, { ownedPrefix: 'KNT-' });
    await v1.reconcile();
    const v2set: IptablesRuleSet = {
      table: 'filter',
      chains: { 'KNT-FWD': ['-j ACCEPT'] },
      jumps: [{ fromChain: 'FORWARD', rule: '-j KNT-FWD', position: 'append' }],
    };
    const v2 = new IptablesReconciler(net.iptables, v2set, { ownedPrefix: 'KNT-' });
    const r = await v2.reconcile();
    expect(r.drift.map((d) => `${d.kind} ${d.chain}`)).toEqual([
      'chain-rules KNT-FWD',
      'stale-chain KNT-IN',
      'jumps INPUT', // the jump into the stale chain goes; FORWARD's single jump is already in place
    ]);
    expect(r.remaining).toEqual([]);
    expect(await iptablesS()).toEqual([
      '-P INPUT ACCEPT',
      '-P FORWARD ACCEPT',
      '-P OUTPUT ACCEPT',
      '-N KNT-FWD',
      '-A FORWARD -j KNT-FWD',
      '-A KNT-FWD -j ACCEPT',
    ]);
    await v2.cleanup();
    expect(await iptablesS()).toEqual(['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT']);
  });

  it('learns how the kernel prints rules it cannot canonicalise itself', async () => {
    const { net } = hostNetFor(host);
    const set: IptablesRuleSet = {
      table: 'filter',
      chains: { 'KNT-CT': ['-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'] },
      jumps: [{ fromChain: 'INPUT', rule: '-j KNT-CT', position: 'prepend' }],
    };
    const rec = new IptablesReconciler(net.iptables, set);
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect(await iptablesS()).toContain('-A KNT-CT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
    expect(await rec.reconcile()).toEqual({ changed: false, drift: [], remaining: [] });
    // A new reconciler has not learned the form yet: it rewrites once, then it is stable too.
    const fresh = new IptablesReconciler(net.iptables, set);
    expect((await fresh.reconcile()).changed).toBe(true);
    expect((await fresh.reconcile()).changed).toBe(false);
    await fresh.cleanup();
    expect(await iptablesS()).toEqual(['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT']);
  });

  it('manages ip6tables the same way', async () => {
    const { net } = hostNetFor(host);
    const v6: IptablesRuleSet = {
      table: 'filter',
      chains: { 'KNT-FWD6': ['-s 2001:db8::/32 -j ACCEPT', '-p tcp --dport 22 -j REJECT'] },
      jumps: [{ fromChain: 'FORWARD', rule: '-j KNT-FWD6', position: 'prepend' }],
    };
    const rec = new IptablesReconciler(net.ip6tables, v6);
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect(await iptablesS('filter', 'ip6tables')).toEqual([
      '-P INPUT ACCEPT',
      '-P FORWARD ACCEPT',
      '-P OUTPUT ACCEPT',
      '-N KNT-FWD6',
      '-A FORWARD -j KNT-FWD6',
      '-A KNT-FWD6 -s 2001:db8::/32 -j ACCEPT',
      '-A KNT-FWD6 -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp6-port-unreachable',
    ]);
    expect((await rec.reconcile()).changed).toBe(false);
    // The IPv4 table is not touched by the IPv6 reconciler.
    expect(await iptablesS()).toEqual(['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT']);
    await rec.cleanup();
    expect(await iptablesS('filter', 'ip6tables')).toEqual([
      '-P INPUT ACCEPT',
      '-P FORWARD ACCEPT',
      '-P OUTPUT ACCEPT',
    ]);
  });
});
