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
import { until } from './util';

export const NS = TOWER_NAMESPACE;

export interface Bundles {
  proxy: string;
  agent: string;
  sim: string;
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
  const [proxy, agent, sim] = await Promise.all([
    one('apps/tower-proxy/src/main.ts', 'tower-proxy'),
    one('apps/tower-agent/src/main.ts', 'tower-agent'),
    one('bench/tower/sim-agents.ts', 'sim-agents'),
  ]);
  return { proxy, agent, sim };
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

export interface ProxyOptions {
  bundle: string;
  listenAddress: string;
  portRange: { min: number; max: number };
  logDir: string;
  /** Port of the node inspector on 127.0.0.1 (the bench uses it to force a GC before measuring memory). */
  inspectPort?: number;
  /** Node flags besides the image's (shippedNodeFlags), e.g. --max-old-space-size=128. */
  nodeFlags?: string[];
}

export interface RunningProxy {
  proc: ManagedProcess;
  url: string;
  fingerprint: string;
}

/** Starts tower-proxy as it ships (one bundle, `node` with the image's flags), at log level info, and waits until it is ready. */
export async function startProxy(host: ControlPlane, port: number, o: ProxyOptions): Promise<RunningProxy> {
  const args = [
    ...(o.inspectPort ? [`--inspect=127.0.0.1:${o.inspectPort}`] : []),
    ...shippedNodeFlags('tower-proxy.Dockerfile'),
    ...(o.nodeFlags ?? []),
    o.bundle,
    `--kubeconfig=${host.kubeconfigPath}`,
    '--host=127.0.0.1',
    `--port=${port}`,
    `--listen-address=${o.listenAddress}`,
    `--publish-service-address=${o.listenAddress}`,
    `--port-range=${o.portRange.min}-${o.portRange.max}`,
    `--namespace=${NS}`,
    '--log-level=info',
  ];
  mkdirSync(o.logDir, { recursive: true });
  const proc = ManagedProcess.start(
    'tower-proxy',
    process.execPath,
    args,
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

export interface AgentOptions {
  bundle: string;
  cluster: string;
  token: string;
  proxy: RunningProxy;
  apiServer: string;
  saDir: string;
  kubesphere: string;
  logDir: string;
  /** Port of the node inspector on 127.0.0.1 (for CPU profiles). */
  inspectPort?: number;
  /** Node flags besides the image's (--agent-node-flags). */
  nodeFlags?: string[];
}

/** Starts tower-agent as it ships (the image's node flags), serving the member's kube-apiserver and `kubesphere` (a raw TCP target). */
export function startAgent(a: AgentOptions): ManagedProcess {
  const args = [
    ...(a.inspectPort ? [`--inspect=127.0.0.1:${a.inspectPort}`] : []),
    ...shippedNodeFlags('tower-agent.Dockerfile'),
    ...(a.nodeFlags ?? []),
    a.bundle,
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
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, TOWER_TOKEN: a.token };
  delete env['KUBECONFIG'];
  return ManagedProcess.start(
    'tower-agent',
    process.execPath,
    args,
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
export function getJson<T>(cp: ControlPlane, path: string, timeoutMs = 30_000): Promise<T> {
  const c = adminCredentials(cp);
  const u = new URL(cp.server);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: u.hostname,
        port: u.port,
        path,
        ca: c.ca,
        cert: c.cert,
        key: c.key,
        headers: { accept: 'application/json' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${body}`));
          else resolve(JSON.parse(body) as T);
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
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
