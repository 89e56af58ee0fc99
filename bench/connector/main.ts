/**
 * `npm run bench -- connector [options]`: issue 14's benchmark — 20 connector replicas starting at
 * once against a tenant with the vendor's documented budget (60 reads, 20 writes per minute), in a
 * remote network holding 10 offline connectors of an earlier install; then all 20 restarted. One
 * JSON object per line on stdout; progress and a summary on stderr.
 *
 *   ours  the connector chart installed for real into the test bed's kube-apiserver (ConnectorRelease),
 *         its pods run as processes: connector-init's sidecar as the chart runs it and a fake
 *         connector behind the real launcher, against a fake tenant (FakeTwingateTenant)
 *   seed  the seed's provisioning script (list all connectors, take the first offline one by name or
 *         create one, generate its tokens) replayed in-process with the real Twingate client, one
 *         client per replica, against a second fresh tenant with the same offline connectors
 *
 * Every replica has its own API key, so the tenant attributes each call to one replica. Each
 * restart starts with a whole budget window (a minute after the side's last call). Takes ~4 min:
 * most of it is the write budget (see README.md).
 *
 * Options: --replicas=N (20)  --offline=N (10)  --keep (keep logs)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  Cleanup,
  ConnectorRelease,
  ControlPlane,
  appBundle,
  busy,
  log,
  resultEmitter,
  runBench,
  sleep,
  type FakeTwingateTenant,
} from '@knet/testing';
import { oursPhase, type OursPhase } from './ours';
import {
  NETWORK,
  collisions,
  max,
  mean,
  msUntilFreshBudget,
  startTenant,
  sum,
  type PhaseResult,
  type ScenarioSize,
} from './scenario';
import { seedPhase } from './seed';

const { values: args } = parseArgs({
  options: {
    replicas: { type: 'string', default: '20' },
    offline: { type: 'string', default: '10' },
    keep: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const count = (name: 'replicas' | 'offline', min: number): number => {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < min) {
    log(`--${name} must be an integer ≥ ${min}, got ${String(args[name])}`);
    process.exit(2);
  }
  return v;
};

const emit = resultEmitter('connector');
const cleanup = new Cleanup();
const dir = mkdtempSync(join(tmpdir(), 'knet-bench-connector-'));
const TIME_LIMIT_MS = 25 * 60_000;
const size: ScenarioSize = { replicas: count('replicas', 1), offline: count('offline', 0) };
/** The goals. */
const GOAL = { collisions: 0, callsFirstStart: 4, callsRestart: 2 };

async function main(): Promise<void> {
  log(`logs in ${dir}`);
  log('starting the control plane (etcd, kube-apiserver); bundling connector-init');
  const [cpResult, bundleResult] = await Promise.allSettled([
    ControlPlane.start({ controllerManager: false }),
    appBundle('connector-init'),
  ]);
  if (cpResult.status === 'fulfilled') cleanup.defer('control plane', () => cpResult.value.stop());
  if (cpResult.status === 'rejected') throw cpResult.reason;
  if (bundleResult.status === 'rejected') throw bundleResult.reason;
  const cp = cpResult.value;

  // The peer first: it runs in this process and needs nothing of the control plane.
  const seedTenant = await startTenant(size);
  const stopSeedTenant = cleanup.defer('the seed tenant', () => seedTenant.stop());
  await busy('seed');
  log(`seed: ${size.replicas} replicas at once, ${size.offline} offline connectors in "${NETWORK}"`);
  const seedFirst = await seedPhase(seedTenant, size.replicas);
  logPhase('seed, first start', seedFirst);
  await freshBudget('seed', seedTenant);
  log(`seed: all ${size.replicas} replicas again (restart)`);
  const seedRestart = await seedPhase(seedTenant, size.replicas);
  logPhase('seed, restart', seedRestart);
  await stopSeedTenant();

  const tenant = await startTenant(size);
  cleanup.defer('the tenant', () => tenant.stop());
  log(`ours: helm install of charts/connector with ${size.replicas} replicas`);
  const rel = await ConnectorRelease.install({
    cp,
    tenant,
    bundle: bundleResult.value,
    release: 'edge',
    namespace: 'connectors',
    network: NETWORK,
    replicas: size.replicas,
    apiKey: 'admin',
    dir,
  });
  cleanup.defer('the pods', () => rel.stopPods());
  await busy('ours');
  log(`ours: ${size.replicas} pods at once (sidecar, then the connector once the launcher is installed)`);
  const first = await oursPhase(rel, tenant, size.replicas);
  logPhase('ours, first start', first);
  logOperations(first);
  await freshBudget('ours', tenant);
  log(`ours: all ${size.replicas} pods stopped and started again (new pods: empty handoff dirs)`);
  await rel.stopPods();
  const restart = await oursPhase(rel, tenant, size.replicas);
  logPhase('ours, restart', restart);
  logOperations(restart);

  const common = { replicas: size.replicas, offline: size.offline };
  vsSeed('connector_all_provisioned_ms', 'ms', first.provisionedMs, seedFirst.provisionedMs, {
    ...common,
    connectors_created: first.created,
    claim_conflicts: first.claimConflicts,
    rate_limited: sum(first.rateLimited),
    peer_rate_limited: sum(seedFirst.rateLimited),
  });
  emit({
    metric: 'connector_all_alive_ms',
    value: first.aliveMs,
    unit: 'ms',
    ...common,
    connectors_alive: new Set(first.connectorIds).size,
    // The seed never gets there: its replicas hold fewer valid pairs than there are replicas.
    peer_connectors_alive: size.replicas - seedFirst.revokedPairs,
  });
  vsSeed('connector_calls_first_start', 'calls', max(first.calls), max(seedFirst.calls), {
    ...common,
    goal: GOAL.callsFirstStart,
    mean: mean(first.calls),
    peer_mean: mean(seedFirst.calls),
    max_with_429: max(first.calls.map((c, i) => c + (first.rateLimited[i] ?? 0))),
    peer_max_with_429: max(seedFirst.calls.map((c, i) => c + (seedFirst.rateLimited[i] ?? 0))),
  });
  vsSeed('connector_collisions', 'collisions', collisions(first), collisions(seedFirst), {
    ...common,
    goal: GOAL.collisions,
    ...collisionFields(first, seedFirst),
  });
  vsSeed('connector_calls_restart', 'calls', max(restart.calls), max(seedRestart.calls), {
    ...common,
    goal: GOAL.callsRestart,
    mean: mean(restart.calls),
    peer_mean: mean(seedRestart.calls),
    rate_limited: sum(restart.rateLimited),
    peer_rate_limited: sum(seedRestart.rateLimited),
  });
  vsSeed('connector_collisions_restart', 'collisions', collisions(restart), collisions(seedRestart), {
    ...common,
    goal: GOAL.collisions,
    ...collisionFields(restart, seedRestart),
  });
  vsSeed('connector_restart_provisioned_ms', 'ms', restart.provisionedMs, seedRestart.provisionedMs, {
    ...common,
  });
  summary(first, restart, seedFirst, seedRestart);
}

/**
 * One result against the seed; `ratio` is ours / the seed's (lower is better for every metric here,
 * so below 1 is better), null when the seed's value is 0.
 */
function vsSeed(
  metric: string,
  unit: string,
  ours: number,
  seed: number,
  extra: Record<string, unknown>,
): void {
  // Every metric here is lower-is-better: peer / ours, so above 1 means we do better (as the other
  // benches' ratios read); null when ours is 0 (no collisions against the seed's some).
  const ratio: Record<string, unknown> = {
    ratio: ours === 0 ? null : Math.round((seed / ours) * 1000) / 1000,
  };
  emit({ metric, value: ours, unit, peer: 'seed', peer_value: seed, ...ratio, ...extra });
}

function collisionFields(ours: PhaseResult, seed: PhaseResult): Record<string, unknown> {
  return {
    shared_replicas: ours.sharedReplicas,
    revoked_pairs: ours.revokedPairs,
    distinct_connectors: new Set(ours.connectorIds).size,
    ...ours.revokedEvidence,
    peer_shared_replicas: seed.sharedReplicas,
    peer_revoked_pairs: seed.revokedPairs,
    peer_distinct_connectors: new Set(seed.connectorIds).size,
    ...Object.fromEntries(Object.entries(seed.revokedEvidence).map(([k, v]) => [`peer_${k}`, v])),
  };
}

async function freshBudget(side: string, tenant: FakeTwingateTenant): Promise<void> {
  const wait = msUntilFreshBudget(tenant);
  log(`${side}: waiting ${(wait / 1000).toFixed(0)} s for a whole budget window before the restart`);
  await sleep(wait);
}

function logPhase(what: string, p: PhaseResult | OursPhase): void {
  const alive = 'aliveMs' in p ? `, all ALIVE ${(p.aliveMs / 1000).toFixed(1)} s` : '';
  log(
    `  ${what}: all provisioned ${(p.provisionedMs / 1000).toFixed(1)} s${alive}; calls per replica max ` +
      `${max(p.calls)} mean ${mean(p.calls).toFixed(2)} (429s ${sum(p.rateLimited)}); ` +
      `${new Set(p.connectorIds).size} distinct connectors, ${p.sharedReplicas} replicas sharing, ` +
      `${p.revokedPairs} pairs revoked`,
  );
}

/** How many replicas made which sequence of vendor calls. */
function logOperations(p: OursPhase): void {
  const n = new Map<string, number>();
  for (const ops of p.operations) n.set(ops.join(' '), (n.get(ops.join(' ')) ?? 0) + 1);
  for (const [ops, k] of [...n].sort((a, b) => b[1] - a[1])) log(`    ${k} × ${ops || '(none)'}`);
  if (p.claimConflicts > 0)
    log(`    ${p.claimConflicts} claim writes lost to a sibling (409), planned again`);
}

function summary(
  first: OursPhase,
  restart: OursPhase,
  seedFirst: PhaseResult,
  seedRestart: PhaseResult,
): void {
  const row = (what: string, ours: string, seed: string, goal = '') =>
    `  ${what.padEnd(34)} ${ours.padStart(10)} ${seed.padStart(10)} ${goal.padStart(6)}`;
  const calls = (p: PhaseResult) => `${max(p.calls)} / ${mean(p.calls).toFixed(1)}`;
  const s = (ms: number) => (ms / 1000).toFixed(1);
  log(
    [
      `summary: ${size.replicas} replicas at once, ${size.offline} offline connectors, budget 60 reads / 20 writes a minute`,
      row('', 'ours', 'seed', 'goal'),
      row('all provisioned, s', s(first.provisionedMs), s(seedFirst.provisionedMs)),
      row('calls per replica, max / mean', calls(first), calls(seedFirst), `≤ ${GOAL.callsFirstStart}`),
      row('collisions (shared + revoked)', String(collisions(first)), String(collisions(seedFirst)), '0'),
      row('restart: all provisioned, s', s(restart.provisionedMs), s(seedRestart.provisionedMs)),
      row('restart: calls, max / mean', calls(restart), calls(seedRestart), `≤ ${GOAL.callsRestart}`),
      row('restart: collisions', String(collisions(restart)), String(collisions(seedRestart)), '0'),
    ].join('\n'),
  );
}

runBench(main, {
  cleanup,
  timeLimitMs: TIME_LIMIT_MS,
  finish: (code) => {
    // Kept when it failed (the logs say why), or on request.
    if (code !== 1 && !args.keep) rmSync(dir, { recursive: true, force: true });
    else log(`logs kept in ${dir}`);
  },
});
