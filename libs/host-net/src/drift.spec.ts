import { describeDrift, summarizeDrift, type StateDrift } from './drift';
import { FakeIptables } from './fakes/fake-iptables';
import { IptablesReconciler } from './iptables';
import type { Drift } from './iptables-rules';

const route: StateDrift = { object: 'route', kind: 'missing', subject: '198.51.100.0/24 via 192.0.2.2' };

describe('describeDrift and summarizeDrift', () => {
  it.each<[Drift | StateDrift, string]>([
    [{ kind: 'missing-chain', table: 'nat', chain: 'KNET-POST' }, 'nat/KNET-POST: chain missing'],
    [{ kind: 'stale-chain', table: 'filter', chain: 'KNET-OLD' }, 'filter/KNET-OLD: stale owned chain'],
    [
      { kind: 'chain-rules', table: 'filter', chain: 'KNET-FWD', want: ['-j DROP'], have: [] },
      'filter/KNET-FWD: rules differ (want 1, have 0)',
    ],
    [route, 'route 198.51.100.0/24 via 192.0.2.2: missing'],
    [
      { object: 'address', kind: 'extra', subject: '192.0.2.5/24 dev v1' },
      'address 192.0.2.5/24 dev v1: not desired',
    ],
    [
      {
        object: 'link',
        kind: 'changed',
        subject: 'vx0',
        changes: ['id 42 → 43', 'mtu 1450 → 1400'],
        recreate: true,
      },
      'link vx0: id 42 → 43, mtu 1450 → 1400 (recreate)',
    ],
  ])('%j', (drift, line) => {
    expect(describeDrift(drift)).toBe(line);
  });

  it('summarizes iptables drift by kind and chain, each once, and a driver by its lines', () => {
    expect(
      summarizeDrift([
        { kind: 'missing-chain', table: 'nat', chain: 'KNET-POST' },
        { kind: 'jumps', table: 'nat', chain: 'POSTROUTING', want: [], have: [] },
        { kind: 'jumps', table: 'nat', chain: 'POSTROUTING', want: ['x'], have: [] },
        route,
      ]),
    ).toBe('missing-chain KNET-POST, jumps POSTROUTING, route 198.51.100.0/24 via 192.0.2.2: missing');
    expect(summarizeDrift([])).toBe('');
  });

  it("IptablesReconciler.set has the drivers' shape: set, drift, cleanup", async () => {
    const ipt = new FakeIptables();
    const rec = new IptablesReconciler(ipt, []);
    const desired = { table: 'filter', chains: { 'KNT-FWD': ['-j ACCEPT'] } } as const;
    expect(summarizeDrift((await rec.set(desired)).drift)).toBe('missing-chain KNT-FWD');
    expect(await rec.set(desired)).toEqual({ changed: false, drift: [], remaining: [] });
    await rec.cleanup();
    expect(await ipt.listRules('filter')).not.toContain('KNT-FWD');
  });
});
