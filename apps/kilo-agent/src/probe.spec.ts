import type { Segment, Topology } from '@knet/kilo';
import { holdFor, nextProbeState, probeTarget, type ProbeState } from './probe';

const rules = { failures: 3, holdSeconds: 60, graceSeconds: 0 };
const target = { leader: 'east-1', addresses: ['198.51.100.194'] };

function segment(location: string, hostnames: string[], leader: number, wireGuardIP: string): Segment {
  return {
    location,
    group: location,
    allowedIPs: [],
    key: 'k',
    persistentKeepalive: 0,
    cidrs: [],
    hostnames,
    leader,
    privateIPs: [],
    cniCompatibilityIPs: [],
    wireGuardIP,
    allowedLocationIPs: [],
  };
}

function topology(
  hostname: string,
  leader: boolean,
  granularity: Topology['granularity'] = 'location',
): Topology {
  return {
    granularity,
    hostname,
    location: 'location:east',
    port: 51820,
    leader,
    persistentKeepalive: 0,
    wireGuardCIDR: '198.51.100.192/27',
    serviceCIDRs: [],
    segments: [
      segment('location:east', ['east-1', 'east-2'], 0, '198.51.100.193'),
      segment('location:west', ['west-1'], 0, '198.51.100.194'),
    ],
    peers: [],
    discoveredEndpoints: {},
  };
}

describe('probeTarget', () => {
  it('a member probes the other segments through its leader', () => {
    expect(probeTarget(topology('east-2', false))).toEqual({
      leader: 'east-1',
      addresses: ['198.51.100.194'],
    });
  });
  it('a leader, a full or cross mesh, or a lone location probe nothing', () => {
    expect(probeTarget(topology('east-1', true))).toBeUndefined();
    expect(probeTarget(topology('east-2', false, 'full'))).toBeUndefined();
    const alone = {
      ...topology('east-2', false),
      segments: [segment('location:east', ['east-1', 'east-2'], 0, 'x')],
    };
    expect(probeTarget(alone)).toBeUndefined();
  });
});

describe('nextProbeState', () => {
  const run = (
    oks: (boolean | undefined)[],
    start: ProbeState = { failures: 0 },
    t0 = 1000,
    tgt = target,
  ) => {
    let s = start;
    const verdicts = oks.map((ok, i) => {
      s = nextProbeState(s, ok === undefined ? undefined : tgt, ok, t0 + i, rules);
      return s.verdict ? `${s.verdict.leader}:${s.verdict.healthy}@${s.verdict.since}` : '-';
    });
    return { s, verdicts };
  };

  it('reports healthy at once, unhealthy only after `failures` rounds in a row', () => {
    expect(run([true, false, false, true, false, false, false]).verdicts).toEqual([
      'east-1:true@1000',
      'east-1:true@1000',
      'east-1:true@1000',
      'east-1:true@1000',
      'east-1:true@1000',
      'east-1:true@1000',
      'east-1:false@1006',
    ]);
  });

  it('one answer makes it healthy again', () => {
    const { s } = run([false, false, false]);
    expect(s.verdict).toEqual({ leader: 'east-1', healthy: false, since: 1002 });
    expect(nextProbeState(s, target, true, 1003, rules).verdict).toEqual({
      leader: 'east-1',
      healthy: true,
      since: 1003,
    });
  });

  it('keeps the verdict on a demoted leader for the hold time, then withdraws it', () => {
    const { s } = run([false, false, false]);
    const next = { leader: 'east-2', addresses: target.addresses };
    const held = nextProbeState(s, next, true, 1030, rules);
    expect(held.verdict).toEqual({ leader: 'east-1', healthy: false, since: 1002 });
    const after = nextProbeState(held, next, true, 1063, rules);
    expect(after.verdict).toEqual({ leader: 'east-2', healthy: true, since: 1063 });
    // With nothing to probe (this node leads now) the verdict goes after the hold.
    expect(nextProbeState(s, undefined, undefined, 1030, rules).verdict).toEqual(s.verdict);
    expect(nextProbeState(s, undefined, undefined, 1062, rules).verdict).toBeUndefined();
  });

  it('counts no failure during the grace after a node became the leader (start-up, new tunnel)', () => {
    const graced = { ...rules, graceSeconds: 10 };
    let s: ProbeState = { failures: 0 };
    for (let t = 0; t < 10; t++) s = nextProbeState(s, target, false, 1000 + t, graced);
    expect(s).toMatchObject({ failures: 0, verdict: { healthy: true } });
    for (let t = 10; t < 13; t++) s = nextProbeState(s, target, false, 1000 + t, graced);
    expect(s).toMatchObject({ failures: 3, verdict: { leader: 'east-1', healthy: false, since: 1012 } });
  });

  it('retries a demoted leader without the grace, and doubles the hold each time it relapses', () => {
    const graced = { ...rules, graceSeconds: 10 };
    let s: ProbeState = { failures: 0 };
    for (let t = 0; t < 13; t++) s = nextProbeState(s, target, false, 1000 + t, graced);
    expect(s.verdict).toEqual({ leader: 'east-1', healthy: false, since: 1012 });
    expect(s.demoted).toEqual({ 'east-1': 1 });
    // We lead meanwhile (nothing to probe); after the 60 s hold the verdict goes.
    s = nextProbeState(s, undefined, undefined, 1071, graced);
    expect(s.verdict).toEqual({ leader: 'east-1', healthy: false, since: 1012 });
    s = nextProbeState(s, undefined, undefined, 1072, graced);
    expect(s.verdict).toBeUndefined();
    // east-1 leads again and is still broken: demoted after 3 rounds, no grace.
    for (let t = 73; t < 76; t++) s = nextProbeState(s, target, false, 1000 + t, graced);
    expect(s.verdict).toEqual({ leader: 'east-1', healthy: false, since: 1075 });
    expect(s.demoted).toEqual({ 'east-1': 2 });
    expect(holdFor(s, 'east-1', graced)).toBe(120);
    expect(nextProbeState(s, undefined, undefined, 1075 + 119, graced).verdict).toBeDefined();
    expect(nextProbeState(s, undefined, undefined, 1075 + 120, graced).verdict).toBeUndefined();
  });

  it('forgets the demotions of a leader healthy for a whole hold time', () => {
    let s: ProbeState = { failures: 0, demoted: { 'east-1': 3 } };
    s = nextProbeState(s, target, true, 2000, rules);
    expect(s.demoted).toEqual({ 'east-1': 3 });
    s = nextProbeState(s, target, true, 2060, rules);
    expect(s.demoted).toEqual({});
  });

  it('counts failures per leader: a new leader starts from zero', () => {
    const { s } = run([false, false]);
    const other = { leader: 'east-3', addresses: target.addresses };
    const s2 = nextProbeState(s, other, false, 1010, rules);
    expect(s2.failures).toBe(1);
    expect(s2.verdict).toEqual({ leader: 'east-3', healthy: true, since: 1010 });
  });
});
