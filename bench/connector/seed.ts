// The peer: the seed's init container (Twingate-Labs/connector-init-container, see
// ../shared/anchors/connector.md §1) replayed in-process with the real Twingate client, one client
// and one API key per replica. Only its vendor calls are replayed: not its two `kubectl apply`s of
// the shared Secret nor its `sleep 5`, nor a container start.
import { TwingateClient, type ConnectorTokens } from '@knet/twingate';
import type { FakeTwingateTenant } from '@knet/testing';
import {
  NETWORK,
  callsBetween,
  extraGenerations,
  generations,
  keyOf,
  sharedCount,
  type PhaseResult,
} from './scenario';

/** As connector-init's `--api-deadline` default: a call may wait out the write budget. */
const DEADLINE_MS = 5 * 60_000;

interface SeedReplica {
  id: string;
  tokens: ConnectorTokens;
  doneAt: number;
}

/**
 * One run of the seed's provisioning script: `tg connector list` (every connector of the tenant,
 * all pages), keep those of the network whose state is offline (any DEAD_*), sorted by name; none →
 * look the network up and create a connector without a name; else the first; then generate its
 * tokens (which revokes the previous pair).
 */
export async function seedProvision(client: TwingateClient): Promise<SeedReplica> {
  const offline = (await client.listAllConnectors())
    .filter((c) => c.remoteNetwork.name === NETWORK && c.state.startsWith('DEAD_'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let id = offline[0]?.id;
  if (id === undefined) {
    const network = await client.remoteNetworkByName(NETWORK);
    if (!network) throw new Error(`seed: no remote network ${NETWORK}`);
    id = (await client.createConnector({ remoteNetworkId: network.id })).id;
  }
  const tokens = await client.generateTokens(id);
  return { id, tokens, doneAt: Date.now() };
}

/**
 * `replicas` runs of the script at once against `tenant`, as a StatefulSet's pods would after
 * `helm install` (or after all pods restarted). Each replica's pair is then checked with the
 * tenant (`heartbeat`: what its connector would do; a revoked pair is refused), which also makes
 * the holders of a valid pair ALIVE, as their connectors would be.
 */
export async function seedPhase(tenant: FakeTwingateTenant, replicas: number): Promise<PhaseResult> {
  const clients = Array.from(
    { length: replicas },
    (_, i) => new TwingateClient({ apiKey: keyOf(i), apiUrl: tenant.url, deadlineMs: DEADLINE_MS }),
  );
  const before = generations(tenant);
  const t0 = Date.now();
  const done = await Promise.all(clients.map((c) => seedProvision(c)));
  const provisionedMs = Math.max(...done.map((d) => d.doneAt)) - t0;
  const counted = done.map((d, i) => callsBetween(tenant, keyOf(i), t0, d.doneAt));
  const revoked = done.filter((d) => tenant.heartbeat(d.tokens) === undefined).length;
  const connectorIds = done.map((d) => d.id);
  return {
    provisionedMs,
    calls: counted.map((c) => c.calls),
    rateLimited: counted.map((c) => c.rateLimited),
    connectorIds,
    sharedReplicas: sharedCount(connectorIds),
    revokedPairs: revoked,
    revokedEvidence: {
      pairs_refused_by_tenant: revoked,
      extra_token_generations: extraGenerations(before, generations(tenant)),
    },
  };
}
