import { demotedMembers, findLeader } from './leader';
import type { KiloNode, LeaderProbe } from './types';

function node(name: string, ip: string | undefined, extra: Partial<KiloNode> = {}): KiloNode {
  return {
    name,
    ...(ip ? { endpoint: { ip, port: 51820 } } : {}),
    noInternalIP: false,
    lastSeen: 1000,
    leader: false,
    location: '',
    persistentKeepalive: 0,
    discoveredEndpoints: {},
    allowedLocationIPs: [],
    ...extra,
  };
}

function probe(leader: string, healthy: boolean): LeaderProbe {
  return { leader, healthy, since: 900 };
}

describe('findLeader: every case of Kilo topology_test.go TestFindLeader', () => {
  const a = node('a', '10.0.0.1');
  const b = node('b', '8.8.8.8');
  const c = node('c', '8.8.8.8');
  const d = node('d', '10.0.0.1', { leader: true });
  const two = node('2', '8.8.8.8', { leader: true });
  it.each([
    { name: 'nil', members: [], out: 0 },
    { name: 'one', members: [a], out: 0 },
    { name: 'non-leaders', members: [a, b, c], out: 1 },
    { name: 'leaders', members: [d, two], out: 1 },
    { name: 'public', members: [b, c, two], out: 2 },
    { name: 'private', members: [a, d], out: 1 },
    { name: 'all', members: [a, b, c, d, two], out: 4 },
  ])('$name → $out', ({ members, out }) => {
    expect(findLeader(members)).toBe(out);
    expect(findLeader(members, { demote: false })).toBe(out);
  });
});

describe('findLeader: more of Kilo order', () => {
  it.each([
    {
      name: 'an endpoint given only by DNS has no IP, so it is not public',
      members: [
        node('a', undefined, { endpoint: { dns: 'a.example.com', port: 51820 } }),
        node('b', '203.0.113.2'),
      ],
      out: 1,
    },
    {
      name: 'a hinted node without a public IP beats a public unhinted one',
      members: [node('a', '203.0.113.1'), node('b', '192.168.0.2', { leader: true })],
      out: 1,
    },
    {
      name: '100.64.0.0/10 counts as public (Kilo isPublic)',
      members: [node('a', '172.16.0.1'), node('b', '100.64.0.2')],
      out: 1,
    },
    {
      name: 'IPv6: only fd00::/16 is private as coded',
      members: [node('a', 'fd00::1'), node('b', 'fc00::2')],
      out: 1,
    },
    { name: 'no endpoint at all: index 0', members: [node('a', undefined), node('b', undefined)], out: 0 },
  ])('$name', ({ members, out }) => {
    expect(findLeader(members)).toBe(out);
  });
});

describe('demotion (knet): a member reported unhealthy by more of its peers than healthy', () => {
  it.each([
    {
      name: 'two unhealthy reports demote a; the next in Kilo order leads',
      members: [
        node('a', '10.0.0.1'),
        node('b', '10.0.0.2', { leaderProbe: probe('a', false) }),
        node('c', '10.0.0.3', { leaderProbe: probe('a', false) }),
      ],
      demoted: ['a'],
      out: 1,
    },
    {
      name: 'a tie (one healthy, one unhealthy) demotes nobody',
      members: [
        node('a', '10.0.0.1'),
        node('b', '10.0.0.2', { leaderProbe: probe('a', false) }),
        node('c', '10.0.0.3', { leaderProbe: probe('a', true) }),
      ],
      demoted: [],
      out: 0,
    },
    {
      name: 'two unhealthy against one healthy demote',
      members: [
        node('a', '10.0.0.1'),
        node('b', '10.0.0.2', { leaderProbe: probe('a', false) }),
        node('c', '10.0.0.3', { leaderProbe: probe('a', true) }),
        node('d', '10.0.0.4', { leaderProbe: probe('a', false) }),
      ],
      demoted: ['a'],
      out: 1,
    },
    {
      name: 'only healthy reports: nobody demoted',
      members: [node('a', '10.0.0.1'), node('b', '10.0.0.2', { leaderProbe: probe('a', true) })],
      demoted: [],
      out: 0,
    },
    {
      name: 'a report about oneself, or about a node outside the segment, does not count',
      members: [
        node('a', '10.0.0.1', { leaderProbe: probe('a', false) }),
        node('b', '10.0.0.2', { leaderProbe: probe('z', false) }),
      ],
      demoted: [],
      out: 0,
    },
    {
      name: 'demoting a member that would not lead changes nothing',
      members: [
        node('a', '10.0.0.1'),
        node('b', '203.0.113.2', { leader: true, leaderProbe: probe('d', false) }),
        node('c', '203.0.113.3'),
        node('d', '203.0.113.4', { leader: true }),
      ],
      demoted: ['d'],
      out: 1,
    },
    {
      name: 'the demoted leader was the hinted public one: the remaining hinted one leads',
      members: [
        node('a', '10.0.0.1', { leaderProbe: probe('b', false) }),
        node('b', '203.0.113.2', { leader: true }),
        node('c', '203.0.113.3', { leaderProbe: probe('b', false) }),
        node('d', '10.0.0.4', { leader: true }),
      ],
      demoted: ['b'],
      out: 3,
    },
    {
      name: 'every member demoted: Kilo plain choice',
      members: [
        node('a', '10.0.0.1', { leaderProbe: probe('b', false) }),
        node('b', '203.0.113.2', { leaderProbe: probe('a', false) }),
      ],
      demoted: ['a', 'b'],
      out: 1,
    },
  ])('$name', ({ members, demoted, out }) => {
    expect([...demotedMembers(members)].sort()).toEqual(demoted);
    expect(findLeader(members)).toBe(out);
  });

  it('demote: false gives Kilo plain choice', () => {
    const members = [node('a', '10.0.0.1'), node('b', '10.0.0.2', { leaderProbe: probe('a', false) })];
    expect(findLeader(members)).toBe(1);
    expect(findLeader(members, { demote: false })).toBe(0);
  });

  it('with now, reports from members not seen for 60 s are stale', () => {
    const members = [
      node('a', '10.0.0.1'),
      node('b', '10.0.0.2', { lastSeen: 1000, leaderProbe: probe('a', false) }),
      node('c', '10.0.0.3', { lastSeen: 1059 }),
    ];
    expect([...demotedMembers(members, 1059)]).toEqual(['a']);
    expect(findLeader(members, { now: 1059 })).toBe(1);
    expect([...demotedMembers(members, 1060)]).toEqual([]);
    expect(findLeader(members, { now: 1060 })).toBe(0);
  });

  it('with now, a stale healthy report no longer outweighs a fresh unhealthy one', () => {
    const members = [
      node('a', '10.0.0.1'),
      node('b', '10.0.0.2', { lastSeen: 1059, leaderProbe: probe('a', false) }),
      node('c', '10.0.0.3', { lastSeen: 1000, leaderProbe: probe('a', true) }),
    ];
    expect(findLeader(members, { now: 1059 })).toBe(0);
    expect(findLeader(members, { now: 1060 })).toBe(1);
  });
});
