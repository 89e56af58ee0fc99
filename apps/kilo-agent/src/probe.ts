import type { LeaderProbe, Topology } from '@knet/kilo';

/**
 * knet's leader health (Kilo has none: a leader whose datapath broke keeps leading, #489).
 *
 * A member of a location routes every other location through its leader, so it can tell whether
 * that path works: each round it pings the WireGuard IPs of the other segments, which go through
 * the leader. After `failures` rounds in a row where none answered, it publishes
 * `{leader, healthy: false}` on its own Node (annotation `kilo-agent.knet.dev/leader-probe`); one
 * round with an answer publishes `healthy: true`. Every agent reads the same verdicts and skips a
 * leader most of whose reporting members call it unhealthy (see @knet/kilo's findLeader), so the
 * whole mesh moves to the next candidate together.
 *
 * A demoted leader carries no traffic, so nobody can probe it: after `holdSeconds` the member
 * withdraws its verdict, the node leads again and is probed again, this time without the grace —
 * if it is still broken, it is demoted again within `failures` rounds, and the next hold is twice
 * as long (at most an hour); a whole hold time healthy forgets its demotions. With two locations a broken path between the two
 * leaders cannot be blamed on one side: both locations move to their next candidates, which
 * restores traffic when the fault was at one leader.
 */
export interface ProbeTarget {
  /** The leader of the local segment (the one the pings go through). */
  leader: string;
  /** WireGuard IPs of the other segments. */
  addresses: string[];
}

/** What this node should probe, or undefined when it leads (or nothing lies behind its leader). */
export function probeTarget(t: Topology): ProbeTarget | undefined {
  if (t.leader || t.granularity !== 'location') return undefined;
  const own = t.segments.find((s) => s.location === t.location);
  if (!own) return undefined;
  const leader = own.hostnames[own.leader];
  if (leader === undefined || leader === t.hostname) return undefined;
  const addresses = t.segments.filter((s) => s.location !== t.location).map((s) => s.wireGuardIP);
  return addresses.length === 0 ? undefined : { leader, addresses };
}

export interface ProbeState {
  verdict?: LeaderProbe;
  /** Failed rounds in a row against `verdict.leader` (or the current target). */
  failures: number;
  target?: string;
  /** When `target` became this node's leader (unix s). */
  targetSince?: number;
  /** Leaders this member demoted and has not seen healthy for a hold time since: how often. */
  demoted?: Readonly<Record<string, number>>;
}

/** The hold before retrying `leader`: doubled for each demotion in a row, at most an hour. */
export function holdFor(state: ProbeState, leader: string, rules: ProbeRules): number {
  const count = state.demoted?.[leader] ?? 1;
  return Math.min(3600, rules.holdSeconds * 2 ** Math.max(0, count - 1));
}

export interface ProbeRules {
  failures: number;
  holdSeconds: number;
  /**
   * Failed rounds count only this long after a node became our leader: a new tunnel needs a
   * handshake (WireGuard retries every 5 s), and at start-up every agent is still meshing.
   */
  graceSeconds: number;
}

/**
 * The pure step of the prober: the state after one round (`ok` undefined = no round: nothing to
 * probe). Returns the new state; its `verdict` is what the node publishes.
 */
export function nextProbeState(
  prev: ProbeState,
  target: ProbeTarget | undefined,
  ok: boolean | undefined,
  now: number,
  rules: ProbeRules,
): ProbeState {
  const verdict = prev.verdict;
  const demoted = prev.demoted ?? {};
  const held = verdict && !verdict.healthy && now - verdict.since < holdFor(prev, verdict.leader, rules);
  if (!target || ok === undefined) {
    // Nothing to probe (we lead, or the demoted node no longer carries our traffic): keep an
    // unhealthy verdict for its hold time, then withdraw it so the node is tried again.
    if (held) return { ...prev, failures: 0 };
    return { failures: 0, demoted };
  }
  if (held && verdict.leader !== target.leader) {
    // We moved to another leader because of our verdict: keep it for the hold time.
    return { verdict, failures: 0, target: target.leader, targetSince: prev.targetSince ?? now, demoted };
  }
  const sameTarget = prev.target === target.leader;
  const targetSince = sameTarget ? (prev.targetSince ?? now) : now;
  // A leader we demoted before is judged at once when it is retried: its relapse costs only
  // `failures` rounds, not the grace as well.
  const grace = (demoted[target.leader] ?? 0) > 0 ? 0 : rules.graceSeconds;
  const counting = now - targetSince >= grace;
  const failures = ok || !counting ? 0 : (sameTarget ? prev.failures : 0) + 1;
  const healthy = ok || failures < rules.failures;
  const same = verdict && verdict.leader === target.leader && verdict.healthy === healthy;
  const next: ProbeState = {
    verdict: same ? verdict : { leader: target.leader, healthy, since: now },
    failures,
    target: target.leader,
    targetSince,
    demoted,
  };
  if (!healthy && !same) {
    next.demoted = { ...demoted, [target.leader]: (demoted[target.leader] ?? 0) + 1 };
  } else if (
    healthy &&
    next.verdict &&
    now - next.verdict.since >= rules.holdSeconds &&
    demoted[target.leader]
  ) {
    // Healthy for a whole hold time: forget its demotions.
    const { [target.leader]: _forgotten, ...rest } = demoted;
    next.demoted = rest;
  }
  return next;
}
