import type { ClusterCondition } from '@knet/cluster-crd';
import { getCondition, isConditionTrue, setCondition } from './status';

describe('setCondition', () => {
  const t1 = new Date('2026-01-01T00:00:00.123Z');
  const t2 = new Date('2026-01-02T00:00:00Z');

  it('adds, updates without moving lastTransitionTime, and moves it on a status change', () => {
    const init = { type: 'Ready', status: 'False', reason: 'Init', message: 'starting' } as const;
    const a = setCondition([], init, t1);
    expect(a).toEqual([{ ...init, lastTransitionTime: '2026-01-01T00:00:00Z' }]);
    const b = setCondition(a, { ...init, reason: 'Wait', message: 'still' }, t2);
    expect(b[0]).toMatchObject({ reason: 'Wait', lastTransitionTime: '2026-01-01T00:00:00Z' });
    const c = setCondition(b, { type: 'Ready', status: 'True', reason: 'Up', message: 'ok' }, t2);
    expect(c[0]?.lastTransitionTime).toBe('2026-01-02T00:00:00Z');
    const d = setCondition(
      c,
      { type: 'AgentAvailable', status: 'Unknown', reason: 'NoAgent', message: '' },
      t2,
    );
    expect(d.map((x) => x.type)).toEqual(['Ready', 'AgentAvailable']);
    expect(a).toHaveLength(1); // input untouched
    expect(isConditionTrue(d, 'Ready')).toBe(true);
    expect(isConditionTrue(d, 'AgentAvailable')).toBe(false);
    expect(getCondition(d, 'Missing')).toBeUndefined();
  });
});

describe("setCondition with lastUpdateTime: KubeSphere's Cluster conditions", () => {
  const t0 = new Date('2026-01-01T00:00:00.500Z');
  const t1 = new Date('2026-01-01T01:00:00Z');
  const set = (
    list: ClusterCondition[],
    next: Omit<ClusterCondition, 'lastUpdateTime' | 'lastTransitionTime'>,
    now: Date,
  ) => setCondition(list, next, now, { lastUpdateTime: true });

  it('keeps both timestamps when nothing changes, moves lastUpdateTime on a new message, lastTransitionTime on a new status', () => {
    const none = { type: 'AgentAvailable', status: 'False', reason: 'NoAgent', message: 'none' } as const;
    const a = set([], none, t0);
    expect(a).toEqual([
      { ...none, lastUpdateTime: '2026-01-01T00:00:00Z', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
    expect(set(a, none, t1)).toEqual(a);
    const b = set(a, { ...none, message: 'still none' }, t1);
    expect(b[0]).toMatchObject({
      lastUpdateTime: '2026-01-01T01:00:00Z',
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    const d = set(b, { type: 'AgentAvailable', status: 'True', reason: 'Up', message: '1' }, t1);
    expect(d[0]).toMatchObject({ status: 'True', lastTransitionTime: '2026-01-01T01:00:00Z' });
  });
});
