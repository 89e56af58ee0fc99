import { getCondition, isConditionTrue, setCondition } from './status';

describe('setCondition', () => {
  const t1 = new Date('2026-01-01T00:00:00.123Z');
  const t2 = new Date('2026-01-02T00:00:00Z');

  it('adds, updates without moving lastTransitionTime, and moves it on a status change', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'Init', message: 'starting' }, t1);
    expect(a).toEqual([
      {
        type: 'Ready',
        status: 'False',
        reason: 'Init',
        message: 'starting',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
    const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'Wait', message: 'still' }, t2);
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
