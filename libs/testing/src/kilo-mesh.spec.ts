import { changedSessions } from './kilo-mesh';

describe('changedSessions', () => {
  const before = new Map([
    ['east-1 A=', 1000],
    ['east-1 B=', 1010],
    ['east-1 C=', 0],
  ]);

  it('is empty when every established session kept its handshake', () => {
    expect(changedSessions(before, new Map([...before, ['east-1 D=', 1050]]))).toEqual([]);
  });

  it('names a session whose handshake was renewed or whose peer is gone', () => {
    const after = new Map([
      ['east-1 A=', 1040],
      ['east-1 C=', 1041],
    ]);
    expect(changedSessions(before, after)).toEqual(['east-1 A=', 'east-1 B=']);
  });
});
