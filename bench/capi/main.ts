/**
 * `npm run bench -- capi [options]`: the Packet infrastructure provider against the fake Metal API,
 * with CAPEM v0.9.0 (the upstream provider) as the peer in the same run. One JSON object per line
 * on stdout; progress on stderr. ~9 min once CAPEM is built (its first build adds ~2.5 min).
 *
 * For each provider (ours, then CAPEM), on its own test bed (ControlPlane + Cluster API v1.11
 * core, the provider's CRDs) and its own FakeMetalApi (queued 1 s, provisioning 5 s):
 *   to ready  1 control-plane Machine + a MachineDeployment of 99 workers (100 machines): every
 *             Metal API call until all are ready, the device listings and their pages, wall time,
 *             the p95 of the manager's PacketMachine reconcile passes (its own histogram)
 *   steady    then, all ready, 10 s to settle and a 2 min window with --sync-period=30s (4 resyncs):
 *             calls in the window, extrapolated per machine per hour
 *   storm     during the steady window, a second manager of the same provider in another
 *             namespace provisions the same 100 machines against a second fake with a rate
 *             budget of 20 requests per 5 s and 429s (Retry-After: 2) on its first 10 device
 *             creates: total calls until all are ready ÷ the to-ready calls without the storm
 *
 * Options: --only=knet,capem  --workers=N (99)  --steady=SECONDS (120)  --keep (keep logs)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CapiCore,
  Cleanup,
  ControlPlane,
  type FakeMetalApi,
  busy,
  log,
  resultEmitter,
  runBench,
  sleep,
  type Result,
} from '@knet/testing';
import {
  type InfraState,
  type Storm,
  changedObjects,
  clusterObjects,
  objectVersions,
  startFake,
  untilReady,
} from './bed';
import { type CallSummary, describeOperations, summarise } from './calls';
import { type HistogramQuantile, quantile } from './histogram';
import { type Manager, type Provider, TOKEN, capemProvider, knetProvider } from './providers';

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', default: 'knet,capem' },
    workers: { type: 'string', default: '99' },
    steady: { type: 'string', default: '120' },
    keep: { type: 'boolean', default: false },
  },
  allowPositionals: false,
});

const emit = resultEmitter('capi');
const cleanup = new Cleanup();
const dir = mkdtempSync(join(tmpdir(), 'knet-bench-capi-'));
const TIME_LIMIT_MS = 25 * 60_000;
const SYNC_PERIOD = '30s';
const SYNC_PERIOD_MS = 30_000;
/** Both managers' default `--sync-period`. */
const DEFAULT_SYNC_PERIOD_MS = 600_000;
const SETTLE_MS = 10_000;
const TO_READY_TIMEOUT_MS = 5 * 60_000;
/** The issue's goals. */
const GOAL = { toReady: 3, steady: 0, storm: 1 };
const STORM: Storm = {
  rateLimit: { limit: 20, windowMs: 5000 },
  inject: {
    method: 'POST',
    path: /^\/projects\/[^/]+\/devices$/,
    status: 429,
    times: 10,
    headers: { 'Retry-After': '2' },
  },
};

function positive(name: 'workers' | 'steady'): number {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < 1) {
    log(`--${name} must be an integer ≥ 1, got ${String(args[name])}`);
    process.exit(2);
  }
  return v;
}

const WORKERS = positive('workers');
const MACHINES = WORKERS + 1;
const STEADY_MS = positive('steady') * 1000;

/** What one provider's run measured. */
interface Figures {
  provider: Provider;
  toReady: { ms?: number; state: InfraState; calls: CallSummary };
  reconcile: { machine?: HistogramQuantile; cluster?: HistogramQuantile };
  settleCalls: number;
  /** `objects` Cluster API and infrastructure objects in the namespace; `changed` during the window, by kind and last writer. */
  steady: { calls: CallSummary; windowMs: number; objects: number; changed: Record<string, number> };
  storm: { ms?: number; state: InfraState; calls: CallSummary; timeoutMs: number };
  /** The managers' own figures (restarts, CAPEM's proxy), the storm's prefixed `storm_`. */
  extra: Record<string, number>;
}

const describeState = (s: InfraState) =>
  `cluster ${s.clusterReady ? 'ready' : 'not ready'}, ${s.ready}/${s.machines} PacketMachines ready` +
  (s.failed ? `, ${s.failed} failed for good` : '');

/** Runs one provider's three phases on its own test bed; everything it starts is stopped before it returns. */
async function measure(provider: Provider): Promise<Figures> {
  const local = new Cleanup();
  const stopAll = cleanup.defer(`the ${provider.name} bed`, () => local.run());
  try {
    await busy(provider.name);
    log(`${provider.name}: starting the control plane and Cluster API core`);
    const cp = await ControlPlane.start({ controllerManager: true, keepDir: args.keep });
    local.defer('control plane', () => cp.stop());
    const capi = await CapiCore.start(cp, { log: (l) => log(`capi: ${l}`), keepDir: args.keep });
    local.defer('CAPI core', () => capi.stop());
    local.defer(provider.name, () => provider.dispose?.());
    await provider.install(cp);
    for (const ns of ['bench', 'storm']) await cp.kubectlOk(['create', 'namespace', ns]);
    const fakes: FakeMetalApi[] = [];
    const fake = async (storm?: Storm) => {
      const api = await startFake(TOKEN, storm);
      fakes.push(api);
      local.defer('a fake Metal API', () => api.close());
      return api;
    };
    const start = async (namespace: string, api: FakeMetalApi): Promise<Manager> => {
      const m = await provider.startManager(cp, {
        namespace,
        api,
        syncPeriod: SYNC_PERIOD,
        logFile: join(dir, `${provider.name}-${namespace}.log`),
      });
      local.defer(`${provider.name} manager (${namespace})`, () => m.stop());
      return m;
    };

    const api = await fake();
    const manager = await start('bench', api);
    await provider.afterFirstManager?.(cp);

    log(`${provider.name}: to ready — 1 control plane + ${WORKERS} workers`);
    const t0 = performance.now();
    await cp.apply(clusterObjects('bench', 'c1', WORKERS));
    const ready = await untilReady(cp, 'bench', MACHINES, t0, TO_READY_TIMEOUT_MS, (s) =>
      log(`${provider.name}: ${describeState(s)}`),
    );
    const toReadyCalls = summarise(api.calls);
    const text = await manager.metrics();
    const reconcile = {
      machine: quantile(0.95, manager.reconcileBuckets(text, 'PacketMachine')),
      cluster: quantile(0.95, manager.reconcileBuckets(text, 'PacketCluster')),
    };
    log(
      `${provider.name}: ${ready.ms === undefined ? `NOT ready after ${TO_READY_TIMEOUT_MS / 1000} s` : `ready in ${(ready.ms / 1000).toFixed(1)} s`}` +
        ` (${describeState(ready.state)}); ${toReadyCalls.total} calls: ${describeOperations(toReadyCalls)}`,
    );
    if (ready.ms === undefined)
      throw new Error(`${provider.name}: not ready: ${describeState(ready.state)}\n${manager.tail(30)}`);

    // Steady state on `bench`, while a second manager provisions `storm` against a rate-limited fake.
    const settleFrom = toReadyCalls.total;
    const stormApi = await fake(STORM);
    const stormManager = await start('storm', stormApi);
    log(
      `${provider.name}: storm — ${MACHINES} machines in namespace storm, ${STORM.rateLimit.limit} requests per ` +
        `${STORM.rateLimit.windowMs / 1000} s, 429 on the first ${STORM.inject.times} creates; steady window on bench meanwhile`,
    );
    const stormTimeoutMs = SETTLE_MS + STEADY_MS + 20_000;
    const s0 = performance.now();
    await cp.apply(clusterObjects('storm', 's1', WORKERS));
    const storming = untilReady(cp, 'storm', MACHINES, s0, stormTimeoutMs, (s) =>
      log(`${provider.name} storm: ${describeState(s)}; ${stormApi.calls.length} calls`),
    );
    await sleep(SETTLE_MS);
    const before = await objectVersions(cp, 'bench');
    const steadyFrom = api.calls.length;
    const w0 = performance.now();
    await sleep(STEADY_MS);
    const steady = {
      calls: summarise(api.calls.slice(steadyFrom)),
      windowMs: performance.now() - w0,
      objects: before.size,
      changed: changedObjects(before, await objectVersions(cp, 'bench')),
    };
    log(
      `${provider.name}: steady ${(steady.windowMs / 1000).toFixed(0)} s: ${steady.calls.total} calls` +
        (steady.calls.total ? ` (${describeOperations(steady.calls)})` : ''),
    );
    const stormDone = await storming;
    const storm = {
      ms: stormDone.ms,
      state: stormDone.state,
      calls: summarise(stormApi.calls),
      timeoutMs: stormTimeoutMs,
    };
    log(
      `${provider.name} storm: ${storm.ms === undefined ? `not all ready after ${stormTimeoutMs / 1000} s` : `ready in ${(storm.ms / 1000).toFixed(1)} s`}` +
        ` (${describeState(storm.state)}); ${storm.calls.total} calls, ${storm.calls.tooMany} answered 429: ${describeOperations(storm.calls)}`,
    );
    const figures: Figures = {
      provider,
      toReady: { ms: ready.ms, state: ready.state, calls: toReadyCalls },
      reconcile,
      settleCalls: steadyFrom - settleFrom,
      steady,
      storm,
      extra: { ...manager.extra(), ...prefixed('storm_', stormManager.extra()) },
    };
    return figures;
  } finally {
    await stopAll();
  }
}

function prefixed<T>(prefix: string, o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [`${prefix}${k}`, v]));
}

/** A result line with ours as the value and CAPEM as the peer; ratio = CAPEM's / ours (null when ours is 0). */
function line(
  metric: string,
  unit: string,
  ours: Figures | undefined,
  peer: Figures | undefined,
  value: (f: Figures) => number | undefined,
  extra: (f: Figures) => Record<string, unknown>,
  goal?: number,
): void {
  const v = ours ? value(ours) : undefined;
  const p = peer ? value(peer) : undefined;
  const out: Record<string, unknown> = { metric, value: v ?? null, unit };
  if (goal !== undefined) out['goal'] = goal;
  if (ours) Object.assign(out, extra(ours));
  if (peer) {
    out['peer'] = 'capem';
    out['peer_value'] = p ?? null;
    out['ratio'] = v !== undefined && p !== undefined && v !== 0 ? p / v : null;
    out['peer_version'] = peer.provider.describe;
    Object.assign(out, prefixed('peer_', extra(peer)));
  }
  emit(out as Result);
}

function report(ours: Figures | undefined, peer: Figures | undefined): void {
  const perMachine = (n: number) => n / MACHINES;
  line(
    'capi_calls_per_machine_to_ready',
    'calls',
    ours,
    peer,
    (f) => perMachine(f.toReady.calls.total),
    (f) => ({
      machines: MACHINES,
      calls: f.toReady.calls.total,
      by_operation: f.toReady.calls.byOperation,
      by_status: f.toReady.calls.byStatus,
      ...f.extra,
    }),
    GOAL.toReady,
  );
  line(
    'capi_device_list_calls_to_ready',
    'calls',
    ours,
    peer,
    (f) => f.toReady.calls.deviceLists.requests,
    (f) => ({
      later_pages: f.toReady.calls.deviceLists.laterPages,
      per_page: f.toReady.calls.deviceLists.perPage.join(','),
      tag_filtered: f.toReady.calls.deviceLists.tagFiltered,
      ip_list_calls: f.toReady.calls.ipLists,
    }),
  );
  line(
    'capi_wall_to_ready_ms',
    'ms',
    ours,
    peer,
    (f) => f.toReady.ms,
    (f) => ({ machines: MACHINES, poll_ms: 1000, settings: f.provider.settings }),
  );
  line(
    'capi_reconcile_p95_ms',
    'ms',
    ours,
    peer,
    (f) => (f.reconcile.machine ? f.reconcile.machine.value * 1000 : undefined),
    (f) => ({
      kind: 'PacketMachine',
      passes: f.reconcile.machine?.count,
      bucket_ms: f.reconcile.machine?.bucket.map((b) => b * 1000).join('-'),
      cluster_p95_ms: f.reconcile.cluster ? f.reconcile.cluster.value * 1000 : undefined,
      cluster_passes: f.reconcile.cluster?.count,
    }),
  );
  line(
    'capi_calls_per_machine_hour_steady',
    'calls',
    ours,
    peer,
    (f) => perMachine(f.steady.calls.total) / (f.steady.windowMs / 3_600_000),
    (f) => ({
      window_s: f.steady.windowMs / 1000,
      sync_period: SYNC_PERIOD,
      // Per machine per sync period, times the 6 syncs an hour of both managers' default
      // --sync-period=10m: what the calls become at the default when resyncs cause them (CAPEM's
      // changed no object in the window, so its calls all came from resyncs).
      at_default_sync_period:
        (perMachine(f.steady.calls.total) / (f.steady.windowMs / SYNC_PERIOD_MS)) *
        (3_600_000 / DEFAULT_SYNC_PERIOD_MS),
      objects: f.steady.objects,
      objects_changed: Object.values(f.steady.changed).reduce((a, b) => a + b, 0),
      objects_changed_by: f.steady.changed,
      calls: f.steady.calls.total,
      by_operation: f.steady.calls.byOperation,
      settle_calls: f.settleCalls,
    }),
    GOAL.steady,
  );
  line(
    'capi_429_storm_calls_ratio',
    'ratio',
    ours,
    peer,
    // Undefined until every machine is ready: a provider that gave up has no figure to compare.
    (f) => (f.storm.ms === undefined ? undefined : f.storm.calls.total / f.toReady.calls.total),
    (f) => ({
      answered_calls_ratio: (f.storm.calls.total - f.storm.calls.tooMany) / f.toReady.calls.total,
      storm_calls: f.storm.calls.total,
      baseline_calls: f.toReady.calls.total,
      answered_429: f.storm.calls.tooMany,
      rate_limit: `${STORM.rateLimit.limit} per ${STORM.rateLimit.windowMs / 1000} s`,
      injected_429_creates: STORM.inject.times,
      storm_ready_machines: f.storm.state.ready,
      storm_failed_machines: f.storm.state.failed,
      storm_wall_ms: f.storm.ms ?? null,
      storm_restarts: f.extra['storm_restarts'],
      storm_timeout_s: f.storm.ms === undefined ? f.storm.timeoutMs / 1000 : undefined,
      by_operation: f.storm.calls.byOperation,
    }),
    GOAL.storm,
  );
}

async function main(): Promise<void> {
  const only = new Set((args.only ?? '').split(',').filter(Boolean));
  for (const p of only)
    if (p !== 'knet' && p !== 'capem') throw new Error(`--only: unknown provider ${p} (knet, capem)`);
  const ours = only.has('knet') ? await measure(knetProvider()) : undefined;
  let peer: Figures | undefined;
  if (only.has('capem')) {
    try {
      peer = await measure(capemProvider(dir));
    } catch (e) {
      // The knet figures stand alone; the reason CAPEM gave none is the last thing logged.
      log(`capem: no figures: ${e instanceof Error ? e.message : String(e)}`);
      if (!ours) throw e;
    }
  }
  report(ours, peer);
}

runBench(main, {
  cleanup,
  timeLimitMs: TIME_LIMIT_MS,
  finish: () => {
    if (args.keep) log(`logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  },
});
