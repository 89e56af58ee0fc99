/**
 * The objects both providers get, and how the bench sees them: one Cluster (CAPI v1beta2) with its
 * PacketCluster (metro da, vipManager CPEM as both providers' templates set it), one control-plane
 * Machine with its PacketMachine, and a MachineDeployment of workers from a PacketMachineTemplate
 * (@knet/testing's capiClusterObjects, as apps/capi-packet-manager's capi.test.ts makes them).
 * Every Machine names a ready-made bootstrap data Secret (no bootstrap provider: the devices are
 * fake, nothing would run the data), so the figures are the infrastructure provider's alone.
 * Nothing has a kubeconfig of the workload cluster, so CAPI core never dials the endpoint (a
 * loopback address all the same).
 */
import {
  type ControlPlane,
  FakeMetalApi,
  type KubeJson,
  type MetalFault,
  capiClusterObjects,
  sleep,
} from '@knet/testing';

/** The Metal project of every run (the fake's, a fixed UUID). */
export const PROJECT = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b';

/** State durations of the fake's devices: realistic in order, short in length. */
export const DURATIONS = { queuedMs: 1000, provisioningMs: 5000, deprovisioningMs: 1000 };

/** A 429 storm: a rate budget the run must hit, and injected 429s on the first device creates. */
export interface Storm {
  rateLimit: { limit: number; windowMs: number };
  inject: MetalFault;
}

/** A fake Metal API with one project (one SSH key, so creates without keys are accepted, as CAPEM needs). */
export async function startFake(token: string, storm?: Storm): Promise<FakeMetalApi> {
  const api = await FakeMetalApi.start({
    tokens: [token],
    durations: DURATIONS,
    // The elastic IP becomes the endpoint; nothing here gives Cluster API a kubeconfig to dial it,
    // and should that change, a loopback block keeps the dial on this machine.
    reservationRange: '127.0.64.0/24',
    ...(storm ? { rateLimit: storm.rateLimit } : {}),
  });
  api.addProject({ id: PROJECT, sshKeys: 1, ipQuota: 8 });
  if (storm) api.inject(storm.inject);
  return api;
}

/** The objects of cluster `name` in `ns`: 1 control-plane Machine and `workers` in a MachineDeployment. */
export function clusterObjects(ns: string, name: string, workers: number): KubeJson[] {
  return capiClusterObjects({
    namespace: ns,
    name,
    projectId: PROJECT,
    workers,
    packetCluster: { vipManager: 'CPEM' },
  });
}

/** What the bench reads of a cluster's infrastructure objects. */
export interface InfraState {
  clusterReady: boolean;
  machines: number;
  ready: number;
  /** PacketMachines with a failure reason (CAPEM's terminal state: never reconciled again). */
  failed: number;
}

const STATE = [
  '{range .items[*]}{.kind}',
  '{"\\t"}{.status.ready}',
  '{"\\t"}{.status.failureReason}{"\\n"}{end}',
].join('');

/** The PacketCluster's and PacketMachines' readiness in `ns` (one kubectl call). */
export async function infraState(cp: ControlPlane, ns: string): Promise<InfraState> {
  const out = await cp.kubectlOk([
    'get',
    'packetclusters,packetmachines',
    '-n',
    ns,
    '-o',
    `jsonpath=${STATE}`,
  ]);
  const s: InfraState = { clusterReady: false, machines: 0, ready: 0, failed: 0 };
  for (const line of out.split('\n')) {
    const [kind, ready, failure] = line.split('\t');
    if (kind === 'PacketCluster') s.clusterReady = ready === 'true';
    if (kind !== 'PacketMachine') continue;
    s.machines++;
    if (ready === 'true') s.ready++;
    if (failure) s.failed++;
  }
  return s;
}

/**
 * Polls every second until the PacketCluster and `machines` PacketMachines are ready (`ms`: since
 * `since`, ±1 s), until nothing more can change (every machine ready or failed for good, some
 * failed), or until `timeoutMs`; `ms` is set only when all are ready.
 */
export async function untilReady(
  cp: ControlPlane,
  ns: string,
  machines: number,
  since: number,
  timeoutMs: number,
  progress: (s: InfraState) => void,
): Promise<{ ms?: number; state: InfraState }> {
  let last = await infraState(cp, ns);
  let lastReport = performance.now();
  while (performance.now() - since < timeoutMs) {
    if (last.clusterReady && last.ready === machines) return { ms: performance.now() - since, state: last };
    if (last.clusterReady && last.failed > 0 && last.ready + last.failed === machines) return { state: last };
    if (performance.now() - lastReport > 10_000) {
      progress(last);
      lastReport = performance.now();
    }
    await sleep(1000);
    last = await infraState(cp, ns);
  }
  return { state: last };
}

interface Versioned {
  kind: string;
  metadata: {
    name: string;
    resourceVersion: string;
    managedFields?: { manager?: string; time?: string; subresource?: string }[];
  };
}

/** One object's resourceVersion and its managedFields entries (`manager[/subresource]` → time). */
export interface ObjectVersion {
  resourceVersion: string;
  writers: Map<string, string>;
}

/** `Kind/name` → version of the Cluster API and infrastructure objects in `ns`. */
export async function objectVersions(cp: ControlPlane, ns: string): Promise<Map<string, ObjectVersion>> {
  const out = await cp.kubectlOk([
    'get',
    'clusters.cluster.x-k8s.io,machines.cluster.x-k8s.io,packetclusters,packetmachines',
    '-n',
    ns,
    '-o',
    'json',
    '--show-managed-fields',
  ]);
  const items = (JSON.parse(out) as { items: Versioned[] }).items;
  return new Map(
    items.map((o) => [
      `${o.kind}/${o.metadata.name}`,
      {
        resourceVersion: o.metadata.resourceVersion,
        writers: new Map(
          (o.metadata.managedFields ?? []).map((f) => [
            `${f.manager ?? '?'}${f.subresource ? `/${f.subresource}` : ''}`,
            f.time ?? '',
          ]),
        ),
      },
    ]),
  );
}

/**
 * The objects of `before` changed (or gone) in `after`, counted by `Kind by writer`: the writers
 * are the managedFields entries that are new or have a new time (server-side apply that only takes
 * ownership adds an entry without one), so the count says who wrote while nothing was asked.
 */
export function changedObjects(
  before: Map<string, ObjectVersion>,
  after: Map<string, ObjectVersion>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of before) {
    const now = after.get(k);
    if (now?.resourceVersion === v.resourceVersion) continue;
    const writers = now
      ? [...now.writers].filter(([w, t]) => v.writers.get(w) !== t).map(([w]) => w)
      : ['(deleted)'];
    const key = `${k.slice(0, k.indexOf('/'))} by ${writers.sort().join(' + ') || '(no managedFields change)'}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
