import { RecordingLogger } from '@knet/runtime';
import { FOREIGN_RULE, LAB_FILTER, LAB_FILTER_S, LAB_NAT } from '../test/fixtures/lab-iptables';
import { CommandError } from './errors';
import { FakeCommandRunner } from './fakes/fake-runner';
import { FakeIptables } from './fakes/fake-iptables';
import { ExecIptables, IptablesReconciler } from './iptables';

describe('IptablesReconciler on FakeIptables', () => {
  it('applies, is idempotent, repairs drift and cleans up', async () => {
    const ipt = new FakeIptables();
    await ipt.command(['-A', ...FOREIGN_RULE]);
    const rec = new IptablesReconciler(ipt, [LAB_FILTER, LAB_NAT]);
    const first = await rec.reconcile();
    expect(first.changed).toBe(true);
    expect(first.remaining).toEqual([]);
    // The fake prints what the kernel printed for the same rule sets.
    expect(await ipt.listRules('filter')).toBe([...LAB_FILTER_S, ''].join('\n'));
    expect(await rec.reconcile()).toEqual({ changed: false, drift: [], remaining: [] });

    await ipt.command(['-D', 'KNT-FWD', '1']);
    await ipt.command(['-A', 'FORWARD', '-j', 'KNT-FWD']);
    await ipt.command(['-t', 'nat', '-F', 'KNT-POST']);
    expect((await rec.drift()).map((d) => `${d.kind} ${d.chain}`)).toEqual([
      'chain-rules KNT-FWD',
      'jumps FORWARD',
      'chain-rules KNT-POST',
    ]);
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect(await rec.drift()).toEqual([]);

    await rec.cleanup();
    expect(await ipt.listRules('filter')).toBe(
      `-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-A ${FOREIGN_RULE.join(' ')}\n`,
    );
    expect(await ipt.listRules('nat')).not.toContain('KNT');
  });

  it('setDesired switches the desired state; ownedPrefix removes what is no longer wanted', async () => {
    const ipt = new FakeIptables();
    const rec = new IptablesReconciler(ipt, LAB_FILTER, { ownedPrefix: 'KNT-' });
    await rec.reconcile();
    rec.setDesired({ table: 'filter', chains: { 'KNT-FWD': ['-j ACCEPT'] } });
    const r = await rec.reconcile();
    expect(r.drift.map((d) => `${d.kind} ${d.chain}`)).toEqual([
      'chain-rules KNT-FWD',
      'stale-chain KNT-IN',
      'jumps INPUT',
      'jumps FORWARD',
    ]);
    expect(await ipt.listRules('filter')).toBe(
      '-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N KNT-FWD\n-A KNT-FWD -j ACCEPT\n',
    );
  });

  it('owns rules with a standard target by their text: adds, repairs, drops the replaced, cleans up', async () => {
    const ipt = new FakeIptables();
    await ipt.command(['-A', 'FORWARD', '-s', '203.0.113.0/24', '-j', 'ACCEPT']);
    const accept = (cidr: string): { fromChain: string; rule: string; position: 'prepend' } => ({
      fromChain: 'FORWARD',
      rule: `-s ${cidr} -m comment --comment "knet: pods" -j ACCEPT`,
      position: 'prepend',
    });
    const rec = new IptablesReconciler(ipt, {
      table: 'filter',
      chains: { 'KNT-IPIP': ['-s 192.0.2.11/32 -j ACCEPT'] },
      jumps: [
        accept('10.2.1.0/24'),
        accept('10.2.2.0/24'),
        { fromChain: 'INPUT', rule: '-p ipencap -j KNT-IPIP', position: 'append' },
        { fromChain: 'INPUT', rule: '-p ipencap -j DROP', position: 'append' },
      ],
    });
    expect((await rec.reconcile()).remaining).toEqual([]);
    const forward = async (): Promise<string[]> =>
      (await ipt.listRules('filter')).split('\n').filter((l) => l.startsWith('-A FORWARD'));
    expect(await forward()).toEqual([
      '-A FORWARD -s 10.2.1.0/24 -m comment --comment "knet: pods" -j ACCEPT',
      '-A FORWARD -s 10.2.2.0/24 -m comment --comment "knet: pods" -j ACCEPT',
      '-A FORWARD -s 203.0.113.0/24 -j ACCEPT',
    ]);
    expect((await ipt.listRules('filter')).split('\n').filter((l) => l.startsWith('-A INPUT'))).toEqual([
      '-A INPUT -p ipencap -j KNT-IPIP',
      '-A INPUT -p ipencap -j DROP',
    ]);
    expect((await rec.reconcile()).changed).toBe(false);

    await ipt.command([
      '-D',
      'FORWARD',
      '-s',
      '10.2.2.0/24',
      '-m',
      'comment',
      '--comment',
      'knet: pods',
      '-j',
      'ACCEPT',
    ]);
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect(await forward()).toHaveLength(3);

    // A new desired state without 10.2.2.0/24: the rule it replaced goes, the foreign one stays.
    rec.setDesired({ table: 'filter', chains: {}, jumps: [accept('10.2.1.0/24')] });
    expect((await rec.reconcile()).remaining).toEqual([]);
    expect(await forward()).toEqual([
      '-A FORWARD -s 10.2.1.0/24 -m comment --comment "knet: pods" -j ACCEPT',
      '-A FORWARD -s 203.0.113.0/24 -j ACCEPT',
    ]);

    await rec.cleanup();
    expect(await forward()).toEqual(['-A FORWARD -s 203.0.113.0/24 -j ACCEPT']);
  });

  it('rejects invalid or duplicate-table desired states up front', () => {
    const ipt = new FakeIptables();
    expect(() => new IptablesReconciler(ipt, [LAB_FILTER, LAB_FILTER])).toThrow(/table filter given twice/);
    expect(() => new IptablesReconciler(ipt, { table: 'filter', chains: { INPUT: [] } })).toThrow(/built-in/);
  });

  it('logs the drift it repairs', async () => {
    const logger = new RecordingLogger();
    const rec = new IptablesReconciler(new FakeIptables(), LAB_NAT, { logger });
    await rec.reconcile();
    expect(logger.lines.map((l) => l.fields)).toEqual([
      {
        family: 'inet',
        table: 'nat',
        drift: ['nat/KNT-POST: chain missing', 'nat/POSTROUTING: jumps differ (want [-j KNT-POST], have [])'],
      },
    ]);
  });
});

describe('FakeIptables', () => {
  it('fails like iptables for common mistakes', async () => {
    const ipt = new FakeIptables();
    const fail = async (args: string[]): Promise<CommandError> => {
      const err = await ipt.command(args).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CommandError);
      return err as CommandError;
    };
    expect((await fail(['-A', 'NOPE', '-j', 'ACCEPT'])).message).toBe(
      'iptables -A NOPE -j ACCEPT failed (exit 1): iptables: No chain/target/match by that name.',
    );
    expect((await fail(['-A', 'INPUT', '-j', 'NOPE'])).stderr).toBe(
      "iptables v1.8.9 (nf_tables): Chain 'NOPE' does not exist",
    );
    expect((await fail(['-D', 'INPUT', '-j', 'ACCEPT'])).kind).toBe('not-found');
    await ipt.command(['-N', 'KNT-A']);
    expect((await fail(['-N', 'KNT-A'])).stderr).toBe('iptables: Chain already exists.');
    await ipt.command(['-A', 'INPUT', '-j', 'KNT-A']);
    expect((await fail(['-X', 'KNT-A'])).exitCode).toBe(4);
    expect((await fail(['-t', 'bogus', '-S'])).exitCode).toBe(3);
    await ipt.command(['-C', 'INPUT', '-j', 'KNT-A']);
    await ipt.command(['-D', 'INPUT', '1']);
    await ipt.command(['-X', 'KNT-A']);
    expect(await ipt.listRules('filter')).toBe('-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n');
  });

  it('restores atomically per table: a failing line changes nothing', async () => {
    const ipt = new FakeIptables();
    const err = await ipt
      .restore('*filter\n:KNT-A - [0:0]\n-A KNT-A -j ACCEPT\n-D INPUT -j KNT-A\nCOMMIT\n')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      message:
        'iptables-restore -w 5 --noflush failed (exit 1): iptables-restore: line 4 failed: Bad rule (does a matching rule exist in that chain?).',
    });
    expect(await ipt.listRules('filter')).not.toContain('KNT-A');
    await expect(ipt.restore('*filter\n-A INPUT -j ACCEPT\n')).rejects.toThrow(/COMMIT expected/);
  });

  it('declaring an existing chain in a restore flushes it (noflush semantics)', async () => {
    const ipt = new FakeIptables('inet6');
    await ipt.restore('*filter\n:KNT-A - [0:0]\n-A KNT-A -j ACCEPT\n-A KNT-A -j REJECT\nCOMMIT\n');
    await ipt.restore('*filter\n:KNT-A - [0:0]\n-A KNT-A -j DROP\nCOMMIT\n');
    expect(await ipt.listRules('filter')).toBe(
      '-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N KNT-A\n-A KNT-A -j DROP\n',
    );
    expect(ipt.family).toBe('inet6');
  });
});

describe('ExecIptables', () => {
  it('runs iptables/ip6tables with the lock wait and restore on stdin', async () => {
    const runner = new FakeCommandRunner((c) =>
      c.args.includes('-S') ? { stdout: '-P INPUT ACCEPT\n' } : undefined,
    );
    const v4 = new ExecIptables(runner);
    const v6 = new ExecIptables(runner, { family: 'inet6', lockWaitSeconds: 10 });
    await v4.listRules('nat');
    await v6.restore('*filter\nCOMMIT\n');
    await v4.command(['-D', 'INPUT', '1']);
    expect(runner.commandLines()).toEqual([
      'iptables -w 5 -t nat -S',
      'ip6tables-restore -w 10 --noflush',
      'iptables -w 5 -D INPUT 1',
    ]);
    expect(runner.calls[1]!.options.input).toBe('*filter\nCOMMIT\n');
  });
});
