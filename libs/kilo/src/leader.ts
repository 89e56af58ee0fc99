import { isPublic } from './ip';
import { NODE_READY_SECONDS, type KiloNode } from './types';

/**
 * Who leads a segment: Kilo's `findLeader` (pkg/mesh/topology.go) plus knet's datapath-health
 * demotion.
 */

/** The endpoint's IP; an endpoint given only by DNS has none (Kilo's `Endpoint.IP()` when unresolved). */
function endpointIP(node: KiloNode): string | undefined {
  return node.endpoint?.ip || undefined;
}

export interface LeaderOptions {
  /** Skip demoted members (see {@link demotedMembers}); default true. false = Kilo's plain choice. */
  demote?: boolean;
  /** Unix seconds; when given, only reports from members seen in the last 60 s count. */
  now?: number;
}

/**
 * Kilo's order over the candidate indices: the first with the `leader` hint and a public endpoint
 * IP; else the first hinted; else the first with a public endpoint IP; else the first candidate.
 */
function kiloOrder(members: readonly KiloNode[], candidates: readonly number[]): number {
  const hinted = candidates.filter((i) => members[i]?.leader === true);
  const isPublicAt = (i: number): boolean => {
    const member = members[i];
    return member !== undefined && isPublic(endpointIP(member));
  };
  return hinted.find(isPublicAt) ?? hinted[0] ?? candidates.find(isPublicAt) ?? candidates[0] ?? 0;
}

/**
 * knet's datapath-health demotion: the names of members M for which, among the *other* members
 * whose `leaderProbe.leader` is M, more report `healthy: false` than `healthy: true` (so at least
 * one unhealthy report). Every agent reads the same reports from the Node annotations, so every
 * agent demotes the same members without coordination.
 *
 * With `now`, a report counts only while its reporter checks in (`lastSeen` less than 60 s old,
 * Kilo's Ready window): a verdict from a node that stopped checking in is stale.
 */
export function demotedMembers(members: readonly KiloNode[], now?: number): Set<string> {
  const votes = new Map<string, { healthy: number; unhealthy: number }>();
  const names = new Set(members.map((m) => m.name));
  for (const reporter of members) {
    const probe = reporter.leaderProbe;
    if (!probe || probe.leader === reporter.name || !names.has(probe.leader)) continue;
    if (now !== undefined && now - reporter.lastSeen >= NODE_READY_SECONDS) continue;
    const tally = votes.get(probe.leader) ?? { healthy: 0, unhealthy: 0 };
    if (probe.healthy) tally.healthy++;
    else tally.unhealthy++;
    votes.set(probe.leader, tally);
  }
  const demoted = new Set<string>();
  for (const [name, tally] of votes) if (tally.unhealthy > tally.healthy) demoted.add(name);
  return demoted;
}

/**
 * The index of a segment's leader in `members` (sorted by name, as Kilo sorts them).
 *
 * Kilo's `findLeader`: the first node with the `kilo.squat.ai/leader` hint and a public endpoint
 * IP (Kilo's `isPublic`: not RFC 1918; for IPv6 not fd00::/16); else the first hinted node; else
 * the first node with a public endpoint IP; else index 0 (also for an empty list).
 *
 * knet adds demotion: members in {@link demotedMembers} are skipped by that order; when every
 * member is demoted the plain Kilo choice stands. Without probe reports the result is Kilo's.
 */
export function findLeader(members: readonly KiloNode[], options: LeaderOptions = {}): number {
  const all = members.map((_, i) => i);
  if (options.demote === false) return kiloOrder(members, all);
  const demoted = demotedMembers(members, options.now);
  const healthy = all.filter((i) => !demoted.has(members[i]?.name ?? ''));
  return kiloOrder(members, healthy.length > 0 ? healthy : all);
}
