import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Cluster } from '@knet/cluster-crd';
import { getCondition, kubeconfigTls } from '@knet/k8s';
// Benches drive the real test bed, as tests under test/ do (type:testing is meant for them).
import {
  ControlPlane,
  ManagedProcess,
  SHIPPED_BUNDLE_OPTIONS,
  TOWER_NAMESPACE,
  shippedNodeFlags,
  startTowerHost,
  workspaceRoot,
} from '@knet/testing';
import { httpsGet, until } from './util';

export const NS = TOWER_NAMESPACE;

export interface Bundles {
  proxy: string;
  agent: string;
  sim: string;
  /** The restart floor's server (floor-server.ts). */
  floor: string;
}

/**
 * The apps bundled as `nx build` ships them (esbuild, CommonJS, source map in a separate file), and
 * the simulated-agents script. Not bundleScript(): its inline source map (~10 MB of base64) stays in
 * the V8 heap and adds ~50 MiB to every process's RSS, which would skew the memory figures.
 */
export async function buildBundles(dir: string): Promise<Bundles> {
  const root = workspaceRoot();
  const one = async (entry: string, name: string) => {
    const outfile = join(dir, 'bundles', name, `${name}.cjs`);
    await build({
      entryPoints: [join(root, entry)],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      sourcemap: true,
      ...SHIPPED_BUNDLE_OPTIONS,
      logLevel: 'error',
      tsconfig: join(root, 'tsconfig.base.json'),
      loader: { '.node': 'copy' },
    });
    return outfile;
  };
  const [proxy, agent, sim, floor] = await Promise.all([
    one('apps/tower-proxy/src/main.ts', 'tower-proxy'),
    one('apps/tower-agent/src/main.ts', 'tower-agent'),
    one('bench/tower/sim-agents.ts', 'sim-agents'),
    one('bench/tower/floor-server.ts', 'floor-server'),
  ]);
  return { proxy, agent, sim, floor };
}

/**
 * The host control plane with the Cluster CRD. Its Service CIDR is a /16 (the test bed's /24 holds
 * only ~250 ClusterIPs, and the proxy makes one Service mc-<name> per Cluster).
 */
export function startHost(): Promise<ControlPlane> {
  return startTowerHost({ apiServerFlags: ['--service-cluster-ip-range=10.0.0.0/16'] });
}

/** A ServiceAccount on the member for the agent: a directory with `token` and `ca.crt`. */
export async function memberServiceAccount(
  member: ControlPlane,
  parent: string,
): Promise<{ dir: string; token: string }> {
  await member.kubectlOk(['create', 'namespace', NS]);
  await member.kubectlOk(['create', 'serviceaccount', 'tower-agent', '-n', NS]);
  const token = (
    await member.kubectlOk(['create', 'token', 'tower-agent', '-n', NS, '--duration=2h'])
  ).trim();
  const dir = join(parent, 'member-sa');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.crt'), member.caPem);
  writeFileSync(join(dir, 'token'), token);
  return { dir, token };
}

/** How an app's bundle runs under node. */
export interface NodeRun {
  bundle: string;
  /**
   * Port of the node inspector on 127.0.0.1 (the bench uses the proxy's to force a GC before
   * measuring memory, the agent's for CPU profiles).
   */
  inspectPort?: number;
  /** Node flags besides the image's (shippedNodeFlags), e.g. --max-old-space-size=128 (--agent-node-flags). */
  nodeFlags?: string[];
}

/** Starts `app`'s bundle as its image does (node with the flags of `<app>.Dockerfile`), with `appArgs`. */
function startShipped(
  app: 'tower-proxy' | 'tower-agent',
  o: NodeRun,
  appArgs: string[],
  logFile: string,
  env?: NodeJS.ProcessEnv,
): ManagedProcess {
  const args = [
    ...(o.inspectPort ? [`--inspect=127.0.0.1:${o.inspectPort}`] : []),
    ...shippedNodeFlags(`${app}.Dockerfile`),
    ...(o.nodeFlags ?? []),
    o.bundle,
    ...appArgs,
  ];
  return ManagedProcess.start(app, process.execPath, args, logFile, env);
}

export interface ProxyOptions extends NodeRun {
  listenAddress: string;
  portRange: { min: number; max: number };
  logDir: string;
}

export interface RunningProxy {
  proc: ManagedProcess;
  url: string;
  fingerprint: string;
}

/** Starts tower-proxy as it ships (one bundle, `node` with the image's flags), at log level info, and waits until it is ready. */
export async function startProxy(host: ControlPlane, port: number, o: ProxyOptions): Promise<RunningProxy> {
  mkdirSync(o.logDir, { recursive: true });
  const proc = startShipped(
    'tower-proxy',
    o,
    [
      `--kubeconfig=${host.kubeconfigPath}`,
      '--host=127.0.0.1',
      `--port=${port}`,
      `--listen-address=${o.listenAddress}`,
      `--publish-service-address=${o.listenAddress}`,
      `--port-range=${o.portRange.min}-${o.portRange.max}`,
      `--namespace=${NS}`,
      '--log-level=info',
    ],
    join(o.logDir, `tower-proxy-${port}.log`),
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    const fingerprint = await until(
      () => `tower-proxy to become ready; its log:\n${proc.tail(30)}`,
      async () => {
        if (!proc.running) throw new Error('exited');
        const r = await fetch(`${url}/version`).catch(() => undefined);
        if (!r?.ok) return undefined;
        const ready = await fetch(`${url}/readyz`)
          .then((x) => x.ok)
          .catch(() => false);
        return ready ? ((await r.json()) as { fingerprint: string }).fingerprint : undefined;
      },
      60_000,
    );
    return { proc, url, fingerprint };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

export interface AgentOptions extends NodeRun {
  cluster: string;
  token: string;
  proxy: RunningProxy;
  apiServer: string;
  saDir: string;
  kubesphere: string;
  logDir: string;
}

/** Starts tower-agent as it ships (the image's node flags), serving the member's kube-apiserver and `kubesphere` (a raw TCP target). */
export function startAgent(a: AgentOptions): ManagedProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, TOWER_TOKEN: a.token };
  delete env['KUBECONFIG'];
  return startShipped(
    'tower-agent',
    a,
    [
      `--name=${a.cluster}`,
      `--proxy-server=${a.proxy.url}`,
      `--fingerprint=${a.proxy.fingerprint}`,
      `--service-account-dir=${a.saDir}`,
      `--kubernetes-service=${a.apiServer}`,
      `--kubesphere-service=${a.kubesphere}`,
      '--max-retry-interval=2s',
      '--metrics-port=0',
      '--metrics-host=127.0.0.1',
      '--agent-id=bench-agent',
      '--log-level=info',
    ],
    join(a.logDir, `tower-agent-${Date.now()}.log`),
    env,
  );
}

/** A proxy-type, federated Cluster as KubeSphere creates it (optionally with a token already set). */
export function clusterObject(name: string, token?: string): object {
  return {
    apiVersion: 'cluster.kubesphere.io/v1alpha1',
    kind: 'Cluster',
    metadata: { name },
    spec: {
      joinFederation: true,
      enable: true,
      connection: { type: 'proxy', ...(token ? { token } : {}) },
    },
  };
}

/** Creates Clusters in batches (one kubectl create per batch of a List). */
export async function createClusters(host: ControlPlane, objects: object[], batch = 250): Promise<void> {
  for (let i = 0; i < objects.length; i += batch) {
    const list = { apiVersion: 'v1', kind: 'List', items: objects.slice(i, i + batch) };
    await host.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(list) });
  }
}

/** Admin credentials of a control plane's kubeconfig, for plain node:https calls. */
export function adminCredentials(cp: ControlPlane): { ca: string; cert: string; key: string } {
  return kubeconfigTls(cp.adminKubeconfig());
}

/** GET a JSON object from a control plane's API as admin. */
export async function getJson<T>(cp: ControlPlane, path: string, timeoutMs = 30_000): Promise<T> {
  const u = new URL(cp.server);
  const body = await httpsGet(`GET ${path}`, {
    host: u.hostname,
    port: u.port,
    path,
    ...adminCredentials(cp),
    headers: { accept: 'application/json' },
    timeout: timeoutMs,
  });
  return JSON.parse(body) as T;
}

export async function listClusters(host: ControlPlane): Promise<Cluster[]> {
  return (await getJson<{ items: Cluster[] }>(host, '/apis/cluster.kubesphere.io/v1alpha1/clusters')).items;
}

/** The status of a Cluster's condition. */
export function conditionOf(c: Cluster, type: string): string | undefined {
  return getCondition(c.status?.conditions, type)?.status;
}

/** Waits until `name` has its token, ports and kubeconfig, and returns it. */
export async function waitForCluster(
  host: ControlPlane,
  name: string,
  proxy: ManagedProcess,
): Promise<Cluster> {
  return until(
    () => `Cluster ${name}'s kubeconfig; proxy log:\n${proxy.tail(30)}`,
    async () => {
      const c = await getJson<Cluster>(host, `/apis/cluster.kubesphere.io/v1alpha1/clusters/${name}`);
      const k = c.spec?.connection;
      return k?.kubeconfig && k.token && k.kubesphereAPIServerPort ? c : undefined;
    },
    60_000,
  );
}

/** A Cluster list with the resourceVersion to watch from. */
export async function listClustersAt(
  host: ControlPlane,
): Promise<{ items: Cluster[]; resourceVersion: string }> {
  const l = await getJson<{ items: Cluster[]; metadata: { resourceVersion: string } }>(
    host,
    '/apis/cluster.kubesphere.io/v1alpha1/clusters',
  );
  return { items: l.items, resourceVersion: l.metadata.resourceVersion };
}

/**
 * Watches Clusters from `resourceVersion` (admin credentials, one streaming GET): `onEvent` gets
 * every ADDED/MODIFIED/DELETED object with Date.now() of its arrival. Returns a stop function.
 * Rejects `failed` when the watch ends before it is stopped (the bench then reports it).
 */
export function watchClusters(
  host: ControlPlane,
  resourceVersion: string,
  onEvent: (type: string, c: Cluster, at: number) => void,
): { stop: () => void; failed: Promise<never> } {
  const u = new URL(host.server);
  let stopped = false;
  let fail!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const req = httpsRequest(
    {
      host: u.hostname,
      port: u.port,
      path: `/apis/cluster.kubesphere.io/v1alpha1/clusters?watch=1&resourceVersion=${resourceVersion}&timeoutSeconds=3600`,
      ...adminCredentials(host),
      headers: { accept: 'application/json' },
    },
    (res) => {
      if (res.statusCode !== 200) {
        fail(new Error(`watch Clusters: HTTP ${res.statusCode}`));
        res.resume();
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        buf += s;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line.trim()) continue;
          const e = JSON.parse(line) as { type: string; object: Cluster };
          if (e.type === 'ERROR') fail(new Error(`watch Clusters: ${JSON.stringify(e.object)}`));
          else onEvent(e.type, e.object, Date.now());
        }
      });
      res.on('end', () => {
        if (!stopped) fail(new Error('watch Clusters ended'));
      });
    },
  );
  req.on('error', (e) => {
    if (!stopped) fail(e);
  });
  req.end();
  return {
    stop: () => {
      stopped = true;
      req.destroy();
    },
    failed,
  };
}
