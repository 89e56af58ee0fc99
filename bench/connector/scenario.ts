// The scenario both sides run (issue 14): a remote network with offline connectors left by an
// earlier install, N replicas starting at once, each with its own API key so that the tenant
// attributes every call to one replica; and what is counted of a phase (a first start or a
// restart), the same way for ours and the seed.
import { FakeTwingateTenant, type TenantCall } from '@knet/testing';

export const NETWORK = 'lab';
/** The tenant's documented budget, which both sides get: FakeTwingateTenant's default. */
export const BUDGET_WINDOW_MS = 60_000;

/** The API key of replica `i` (one per replica: the tenant's `calls` say who called). */
export const keyOf = (i: number): string => `key-${i}`;

export interface ScenarioSize {
  replicas: number;
  offline: number;
}

/**
 * A fresh tenant with the default limits (60 reads, 20 writes per minute), one Provision key per
 * replica (and `admin` for the release's own Secret), and `offline` connectors of an earlier install
 * in the network: server-named (the seed created them without a name), created a month ago, last
 * seen two days ago, DEAD_HEARTBEAT_TOO_OLD.
 */
export async function startTenant(size: ScenarioSize): Promise<FakeTwingateTenant> {
  const keys: Record<string, 'provision'> = { admin: 'provision' };
  for (let i = 0; i < size.replicas; i++) keys[keyOf(i)] = 'provision';
  const tenant = await FakeTwingateTenant.start({ keys, networks: [NETWORK] });
  const now = Date.now();
  for (let i = 0; i < size.offline; i++) {
    tenant.addConnector({
      network: NETWORK,
      state: 'DEAD_HEARTBEAT_TOO_OLD',
      createdAt: new Date(now - 30 * 86_400_000 + i * 60_000),
      lastHeartbeatAt: new Date(now - 2 * 86_400_000 + i * 60_000),
    });
  }
  return tenant;
}

/** What one phase (N replicas starting at once) gave, for one side. */
export interface PhaseResult {
  /** From the start of the phase until the last replica had its pair, ms. */
  provisionedMs: number;
  /** Per replica: vendor API calls answered (429s excluded) before it had its pair. */
  calls: number[];
  /** Per replica: 429 answers it got before it had its pair. */
  rateLimited: number[];
  /** Per replica: the connector it ended up with. */
  connectorIds: string[];
  /** Replicas holding a connector that another replica of the phase holds too. */
  sharedReplicas: number;
  /** Pairs handed to a replica and revoked by a sibling's token generation. */
  revokedPairs: number;
  /** How `revokedPairs` was seen. */
  revokedEvidence: Record<string, number>;
}

export const collisions = (p: PhaseResult): number => p.sharedReplicas + p.revokedPairs;

/** Calls of `key` that arrived in [from, until] (the tenant's clock is this machine's). */
export function callsBetween(
  tenant: FakeTwingateTenant,
  key: string,
  from: number,
  until: number,
): { calls: number; rateLimited: number; operations: string[] } {
  const own = tenant.callsByKey(key).filter((c: TenantCall) => c.at >= from && c.at <= until);
  const answered = own.filter((c) => c.status !== 429);
  return {
    calls: answered.length,
    rateLimited: own.length - answered.length,
    operations: answered.map((c) => c.operation),
  };
}

/** How many entries share their value with another entry. */
export function sharedCount(ids: readonly string[]): number {
  const n = new Map<string, number>();
  for (const id of ids) n.set(id, (n.get(id) ?? 0) + 1);
  return ids.filter((id) => (n.get(id) ?? 0) > 1).length;
}

/** Every connector's token generations so far (to compare before and after a phase). */
export function generations(tenant: FakeTwingateTenant): Map<string, number> {
  return new Map(tenant.connectors().map((c) => [c.id, c.tokenGenerations]));
}

/**
 * Pairs that a phase generated beyond one per connector: each further generation revoked a pair
 * that had been handed out (the fake revokes the previous pair on every generation).
 */
export function extraGenerations(before: Map<string, number>, after: Map<string, number>): number {
  let extra = 0;
  for (const [id, n] of after) extra += Math.max(0, n - (before.get(id) ?? 0) - 1);
  return extra;
}

/** How long until a whole budget window has passed since the tenant's last call (a phase then starts with the whole budget). */
export function msUntilFreshBudget(tenant: FakeTwingateTenant): number {
  const last = Math.max(0, ...tenant.calls.map((c) => c.at));
  return Math.max(0, last + BUDGET_WINDOW_MS + 500 - Date.now());
}

export const max = (xs: readonly number[]): number => Math.max(...xs);
export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
export const mean = (xs: readonly number[]): number => sum(xs) / xs.length;
