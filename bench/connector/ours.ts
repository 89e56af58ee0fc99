// Our side: the connector chart installed for real into the test bed's API server, its pods run as
// processes (ConnectorRelease): connector-init's sidecar as the chart runs it, and the connector
// container — the launcher the sidecar installs, running a fake connector that heartbeats the
// tenant with its pair and exits 3 once that pair is revoked.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  log,
  sleep,
  until,
  type ConnectorPod,
  type ConnectorRelease,
  type FakeTwingateTenant,
} from '@knet/testing';
import {
  callsBetween,
  extraGenerations,
  generations,
  keyOf,
  sharedCount,
  type PhaseResult,
} from './scenario';

/** connector-init's line once the connector container has its pair (src/serve.ts). */
const HANDOFF = 'tokens handed to the connector container';
const LOST_CLAIM = 'claim lost to a sibling; choosing again';
/** First start: 30 writes against 20 a minute, 20 processes starting on this machine. */
const PHASE_TIMEOUT_MS = 8 * 60_000;

export interface OursPhase extends PhaseResult {
  /** From the start of the phase until every replica's connector was ALIVE in the tenant, ms. */
  aliveMs: number;
  /** Per replica: the vendor operations counted (in order), for the log. */
  operations: string[][];
  /** Claim writes that lost to a sibling (409 on the ConfigMap), all replicas. */
  claimConflicts: number;
  /** Connectors created in the phase. */
  created: number;
}

interface Handoff {
  at: number;
  id: string;
  name: string;
}

/** The sidecar's handoff line (its time and connector), or undefined before it. */
function handoffOf(rel: ConnectorRelease, pod: ConnectorPod): Handoff | undefined {
  for (const line of rel.log(pod.sidecar).split('\n')) {
    if (!line.includes(HANDOFF)) continue;
    const l = JSON.parse(line) as { time: string; msg: string; id: string; connector: string };
    if (l.msg === HANDOFF) return { at: Date.parse(l.time), id: l.id, name: l.connector };
  }
  return undefined;
}

/**
 * Starts `replicas` new pods at once (their memory handoff dirs empty, as after an install or a
 * rollout restart), waits until every sidecar handed its pair over and every connector is ALIVE,
 * and counts. Each pod's connector container starts as soon as its sidecar installed the launcher
 * (the kubelet would wait for the sidecar's startup probe, i.e. the pair being ready): the launcher
 * blocks on the FIFO, so the handoff comes the moment the pair is ready, without a container start.
 */
export async function oursPhase(
  rel: ConnectorRelease,
  tenant: FakeTwingateTenant,
  replicas: number,
): Promise<OursPhase> {
  const before = generations(tenant);
  const known = new Set(before.keys());
  const t0 = Date.now();
  const pods: ConnectorPod[] = [];
  for (let i = 0; i < replicas; i++) {
    const old = rel.pods.find((p) => p.ordinal === i);
    if (old) rmSync(old.handoffDir, { recursive: true, force: true });
    pods.push(rel.startSidecar(i, { env: { TWINGATE_API_KEY: keyOf(i) } }));
  }
  const exited = (p: ConnectorPod) => {
    if (!p.sidecar.running)
      throw new Error(`${rel.release}-${p.ordinal} sidecar exited: ${p.sidecar.tail(8)}`);
  };
  const handoffs = await Promise.all(
    pods.map(async (pod) => {
      await until(
        `${rel.release}-${pod.ordinal} to install its launcher`,
        () => {
          exited(pod);
          return existsSync(join(pod.handoffDir, 'launch'));
        },
        { timeoutMs: PHASE_TIMEOUT_MS },
      );
      rel.startConnector(pod);
      return until(
        `${rel.release}-${pod.ordinal} to hand its pair over`,
        () => {
          exited(pod);
          return handoffOf(rel, pod);
        },
        { timeoutMs: PHASE_TIMEOUT_MS, intervalMs: 200 },
      );
    }),
  );
  const provisionedMs = Math.max(...handoffs.map((h) => h.at)) - t0;
  log(`  all ${replicas} handed over after ${(provisionedMs / 1000).toFixed(1)} s; waiting for ALIVE`);
  const ids = [...new Set(handoffs.map((h) => h.id))];
  // Every connector a replica holds reports ALIVE: its fake connector heartbeated with a valid pair.
  // On a restart they still are from before (the fake tenant never marks them dead by itself):
  // then this is at once, and the revocation check below is what tells.
  await until(
    `the ${ids.length} connectors of ${rel.release} to be ALIVE`,
    () => {
      pods.forEach(exited);
      const alive = new Set(
        tenant
          .connectors()
          .filter((c) => c.state === 'ALIVE')
          .map((c) => c.id),
      );
      return ids.every((id) => alive.has(id));
    },
    { timeoutMs: PHASE_TIMEOUT_MS },
  );
  const aliveMs = Date.now() - t0;
  // A revoked pair is seen by its fake connector at its next heartbeat (every 300 ms).
  await sleep(1500);
  const connectorsExited = await countExitedRevoked(pods);
  const extra = extraGenerations(before, generations(tenant));
  const counted = handoffs.map((h, i) => callsBetween(tenant, keyOf(i), t0, h.at));
  const connectorIds = handoffs.map((h) => h.id);
  return {
    provisionedMs,
    aliveMs,
    calls: counted.map((c) => c.calls),
    rateLimited: counted.map((c) => c.rateLimited),
    operations: counted.map((c) => c.operations),
    connectorIds,
    sharedReplicas: sharedCount(connectorIds),
    revokedPairs: Math.max(extra, connectorsExited),
    revokedEvidence: { extra_token_generations: extra, connectors_exited_revoked: connectorsExited },
    claimConflicts: pods.reduce((n, p) => n + count(rel.log(p.sidecar), LOST_CLAIM), 0),
    created: tenant.connectors().filter((c) => !known.has(c.id)).length,
  };
}

/** Fake connectors that exited 3: their pair was refused (revoked). Any other exit is a failure. */
async function countExitedRevoked(pods: ConnectorPod[]): Promise<number> {
  let revoked = 0;
  for (const p of pods) {
    const c = p.connector;
    if (!c || c.running) continue;
    const code = await c.wait();
    if (code === 3) revoked++;
    else throw new Error(`${c.name} exited ${String(code)}: ${c.tail(8)}`);
  }
  return revoked;
}

function count(text: string, what: string): number {
  return text.split(what).length - 1;
}
