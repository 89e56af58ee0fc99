import { join } from 'node:path';
import type { Cluster } from '@knet/cluster-crd';
import {
  ManagedProcess,
  TOWER_NAMESPACE,
  appBundle,
  clusterCondition,
  createReadyCluster,
  freePort,
  getCluster,
  launchTowerAgent,
  launchTowerProxy,
  serviceAccountDir,
  startTowerHost,
  towerPortRange,
  until,
  writeClusterKubeconfig,
  writeServiceAccountToken,
  ControlPlane,
  type RunningProxy,
} from '@knet/testing';

export { createCluster, getCluster, type RunningProxy } from '@knet/testing';

export const NS = TOWER_NAMESPACE;

/** A host control plane with the Cluster CRD and the proxy's namespace. */
export function startHost(apiServerFlags: string[] = []): Promise<ControlPlane> {
  return startTowerHost({ apiServerFlags });
}

/** Stops the processes a test file started, then its control planes (any not started are skipped). */
export async function stopAll(
  procs: readonly ManagedProcess[],
  ...planes: (ControlPlane | undefined)[]
): Promise<void> {
  for (const p of procs) await p.stop();
  await Promise.all(planes.map((cp) => cp?.stop()));
}

/**
 * Starts tower-proxy against `host` (as admin, or with `kubeconfig`, e.g. the chart's ServiceAccount);
 * the per-cluster ports come from a random range so tests do not collide.
 */
export async function startProxy(
  host: ControlPlane,
  extra: string[] = [],
  port?: number,
  kubeconfig = host.kubeconfigPath,
  opts: { waitReady?: boolean; nodeFlags?: string[] } = {},
): Promise<RunningProxy> {
  const proxy = await appBundle('tower-proxy');
  const p = port ?? (await freePort());
  const args = [
    // Node's own flags (e.g. --inspect) before the bundle; a restart keeps them.
    ...(opts.nodeFlags ?? []),
    proxy,
    `--kubeconfig=${kubeconfig}`,
    '--host=127.0.0.1',
    `--port=${p}`,
    '--listen-address=127.0.0.1',
    '--publish-service-address=127.0.0.1',
    `--port-range=${towerPortRange()}`,
    `--namespace=${NS}`,
    '--keepalive=2s',
    // AgentAvailable follows the agents at once: these tests kill and refuse agents and expect False
    // within seconds of the proxy's start (the grace period is the controller spec's and the bench's).
    '--agent-grace-period=0s',
    '--log-level=debug',
    ...extra,
  ];
  return launchProxy(host, args, p, opts.waitReady ?? true);
}

/** Starts the proxy again with exactly the same flags (port, port range…), as a pod restart would. */
export function restartProxy(host: ControlPlane, old: RunningProxy): Promise<RunningProxy> {
  return launchProxy(host, old.args, old.port, true);
}

function launchProxy(
  host: ControlPlane,
  args: string[],
  p: number,
  waitReady: boolean,
): Promise<RunningProxy> {
  return launchTowerProxy(args, p, join(host.dir, `tower-proxy-${p}-${Date.now()}.log`), { waitReady });
}

/** A member cluster's service-account directory for the agent (token + ca.crt), RBAC given by `rules`. */
export async function memberServiceAccount(member: ControlPlane, name = 'tower-agent'): Promise<string> {
  await member.kubectl(['create', 'namespace', NS]);
  await member.kubectlOk(['create', 'serviceaccount', name, '-n', NS]);
  // What the tests ask of the member through the tunnel, and no more.
  await member.kubectlOk([
    'create',
    'clusterrole',
    `${name}-test`,
    '--verb=get,list,watch',
    '--resource=namespaces,configmaps,pods',
  ]);
  await member.kubectlOk([
    'create',
    'clusterrolebinding',
    `${name}-test`,
    `--clusterrole=${name}-test`,
    `--serviceaccount=${NS}:${name}`,
  ]);
  return serviceAccountDir(member, NS, name);
}

export function refreshToken(member: ControlPlane, dir: string, name = 'tower-agent'): Promise<string> {
  return writeServiceAccountToken(member, dir, NS, name);
}

export interface AgentSpec {
  cluster: string;
  token: string;
  proxy: RunningProxy;
  member: ControlPlane;
  saDir: string;
  /** Credentials from this kubeconfig (`--kubeconfig`) instead of the service-account directory. */
  kubeconfig?: string;
  fingerprint?: string;
  extra?: string[];
  id?: string;
}

export function startAgent(a: AgentSpec, bundle: string): ManagedProcess {
  const apiPort = new URL(a.member.server).port;
  const id = a.id ?? 'agent-1';
  const args = [
    bundle,
    `--name=${a.cluster}`,
    `--proxy-server=${a.proxy.url}`,
    `--fingerprint=${a.fingerprint ?? a.proxy.fingerprint}`,
    ...(a.kubeconfig
      ? [`--kubeconfig=${a.kubeconfig}`]
      : [`--service-account-dir=${a.saDir}`, `--kubernetes-service=127.0.0.1:${apiPort}`]),
    '--kubesphere-service=none',
    '--keepalive=1s',
    '--max-retry-interval=2s',
    '--metrics-port=0',
    '--metrics-host=127.0.0.1',
    `--agent-id=${id}`,
    '--log-level=debug',
    ...(a.extra ?? []),
  ];
  return launchTowerAgent(
    `tower-agent-${id}`,
    args,
    a.token,
    join(a.member.dir, `tower-agent-${id}-${Date.now()}.log`),
  );
}

/** A merge patch of a Cluster, as a user would make it with kubectl. */
export async function patchCluster(host: ControlPlane, name: string, patch: object): Promise<void> {
  await host.kubectlOk([
    'patch',
    'clusters.cluster.kubesphere.io',
    name,
    '--type=merge',
    '-p',
    JSON.stringify(patch),
  ]);
}

/** The status of the Cluster's condition `type` (`True`, `False`, `Unknown`), if it has one. */
export function condition(c: Cluster, type: string): string | undefined {
  return clusterCondition(c, type)?.status;
}

/** Writes the Cluster's kubeconfig to a new file in `dir` and returns its path. */
export function writeKubeconfig(c: Cluster, dir: string): string {
  return writeClusterKubeconfig(c, join(dir, `${c.metadata.name}-${Date.now()}.kubeconfig`));
}

export interface TowerBedOptions {
  /** jest's time limit for each test of the file. */
  testTimeout: number;
  /** Start a proxy (startProxy's defaults) before the tests; false for a file that starts its own. */
  proxy?: boolean;
}

/** startAgent's spec without what the bed knows: its member, the member's ServiceAccount, its proxy. */
export type BedAgentSpec = Omit<AgentSpec, 'proxy' | 'member' | 'saDir'> & { proxy?: RunningProxy };

/** A test file's bed, filled in by the beforeAll that towerBed registers: read it in hooks and tests. */
export interface TowerBed {
  readonly host: ControlPlane;
  readonly member: ControlPlane;
  /** The member's ServiceAccount directory for agents (memberServiceAccount). */
  readonly saDir: string;
  /** The proxy the bed started, or the last one restartProxy() started. */
  readonly proxy: RunningProxy;
  /** The processes started through the bed, in start order. */
  readonly procs: readonly ManagedProcess[];
  /** Starts another tower-proxy against the host (see startProxy). */
  startProxy(extra?: string[], opts?: { waitReady?: boolean; nodeFlags?: string[] }): Promise<RunningProxy>;
  /** Starts the bed's proxy again with the same flags (restartProxy), and makes it the bed's proxy. */
  restartProxy(): Promise<RunningProxy>;
  /** Starts a tower-agent of the member, against the bed's proxy unless `spec.proxy` names another. */
  startAgent(spec: BedAgentSpec): ManagedProcess;
  /** createReadyCluster; `proxy` (by default the bed's, if any) enriches the failure message. */
  readyCluster(name: string, proxy?: RunningProxy): Promise<Cluster>;
  /** Waits until Cluster `name` says AgentAvailable=True; `agent`'s log explains a failure. */
  untilAgentAvailable(name: string, agent?: ManagedProcess): Promise<void>;
}

/**
 * Registers the beforeAll that starts the host control plane (startHost), a member control plane
 * with the agents' ServiceAccount (memberServiceAccount) and, unless `proxy: false`, a tower-proxy;
 * and the afterAll that stops every process started through the bed, then both control planes,
 * also when the start failed half-way. Call it at the top of a test file.
 */
export function towerBed(options: TowerBedOptions): TowerBed {
  jest.setTimeout(options.testTimeout);
  let host: ControlPlane | undefined;
  let member: ControlPlane | undefined;
  let saDir: string | undefined;
  let proxy: RunningProxy | undefined;
  let agentBundle: string | undefined;
  const procs: ManagedProcess[] = [];
  const track = (p: RunningProxy): RunningProxy => {
    procs.push(p.proc);
    return p;
  };

  beforeAll(async () => {
    // Each part is kept as soon as it is up, so that afterAll stops it even when another failed.
    const started = await Promise.allSettled([
      startHost().then((cp) => (host = cp)),
      ControlPlane.start().then((cp) => (member = cp)),
      appBundle('tower-agent').then((b) => (agentBundle = b)),
      appBundle('tower-proxy'),
    ]);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    saDir = await memberServiceAccount(need(member, 'member'));
    if (options.proxy !== false) proxy = await bed.startProxy();
  }, 240_000);

  afterAll(() => stopAll(procs, host, member));

  const bed: TowerBed = {
    get host() {
      return need(host, 'host');
    },
    get member() {
      return need(member, 'member');
    },
    get saDir() {
      return need(saDir, 'saDir');
    },
    get proxy() {
      return need(proxy, 'proxy');
    },
    procs,
    async startProxy(extra = [], opts = {}) {
      return track(await startProxy(bed.host, extra, undefined, undefined, opts));
    },
    async restartProxy() {
      proxy = track(await restartProxy(bed.host, bed.proxy));
      return proxy;
    },
    startAgent(spec) {
      const agent = startAgent(
        { ...spec, proxy: spec.proxy ?? bed.proxy, member: bed.member, saDir: bed.saDir },
        need(agentBundle, 'agent bundle'),
      );
      procs.push(agent);
      return agent;
    },
    readyCluster(name, via = proxy) {
      return createReadyCluster(bed.host, name, via?.proc);
    },
    async untilAgentAvailable(name, agent) {
      await until(
        () =>
          `Cluster ${name} to have AgentAvailable=True` +
          (agent ? `; agent log:\n${agent.tail(30)}` : '') +
          (proxy ? `\nproxy log:\n${proxy.proc.tail(30)}` : ''),
        async () => condition(await getCluster(bed.host, name), 'AgentAvailable') === 'True',
        30_000,
      );
    },
  };
  return bed;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined)
    throw new Error(`the tower bed has no ${what} (not started, or read outside a hook or test)`);
  return value;
}
