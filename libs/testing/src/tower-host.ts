import { writeFileSync } from 'node:fs';
import { clusterCrdPath, type Cluster, type ClusterCondition } from '@knet/cluster-crd';
import { ControlPlane, type ControlPlaneOptions, type ManagedProcess } from './controlplane';
import { until } from './wait';
import { workspaceRoot } from './workspace';

/** Where tower-proxy runs and keeps its Secrets, ConfigMap, Lease and mc-<cluster> Services. */
export const TOWER_NAMESPACE = 'kubesphere-system';

/** Makes a running control plane a host for tower-proxy: KubeSphere's Cluster CRD established, the proxy's namespace. */
export async function prepareTowerHost(cp: ControlPlane): Promise<void> {
  await cp.kubectlOk(['apply', '-f', clusterCrdPath(workspaceRoot())]);
  await cp.kubectlOk([
    'wait',
    '--for=condition=Established',
    'crd/clusters.cluster.kubesphere.io',
    '--timeout=30s',
  ]);
  await cp.kubectlOk(['create', 'namespace', TOWER_NAMESPACE]);
}

/**
 * A host cluster for tower-proxy (e2e/tower, the tower bench, tower-proxy's own tests): a control
 * plane prepared by prepareTowerHost. Stopped again when any of that fails.
 */
export async function startTowerHost(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const host = await ControlPlane.start(options);
  try {
    await prepareTowerHost(host);
  } catch (e) {
    await host.stop();
    throw e;
  }
  return host;
}

/** Cluster `name` as the host's API server stores it. */
export async function getCluster(host: ControlPlane, name: string): Promise<Cluster> {
  return JSON.parse(
    await host.kubectlOk(['get', 'clusters.cluster.kubesphere.io', name, '-o', 'json']),
  ) as Cluster;
}

/** Applies a proxy-type Cluster `name` (joinFederation, enable), `spec` merged over that. */
export async function createCluster(host: ControlPlane, name: string, spec: object = {}): Promise<void> {
  const c = {
    apiVersion: 'cluster.kubesphere.io/v1alpha1',
    kind: 'Cluster',
    metadata: { name },
    spec: { joinFederation: true, enable: true, connection: { type: 'proxy' }, ...spec },
  };
  await host.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(c) });
}

/**
 * Creates a proxy-type Cluster and waits until the proxy has initialized it (token, ports,
 * endpoints, kubeconfig written; Initialized=True). `proxy`'s log only enriches the failure message.
 */
export async function createReadyCluster(
  host: ControlPlane,
  name: string,
  proxy?: ManagedProcess,
): Promise<Cluster> {
  await createCluster(host, name);
  return until(
    () => `Cluster ${name} to be initialized${proxy ? `; proxy log:\n${proxy.tail(20)}` : ''}`,
    async () => {
      const c = await getCluster(host, name);
      const conn = c.spec?.connection;
      return conn?.kubeconfig && conn.token && clusterCondition(c, 'Initialized')?.status === 'True'
        ? c
        : undefined;
    },
    30_000,
  );
}

/**
 * Cluster `name` with its condition `type` True, and the condition; otherwise throws one line
 * (`Cluster member AgentAvailable=False: <message>`).
 */
export async function expectClusterCondition(
  host: ControlPlane,
  name: string,
  type: string,
): Promise<{ cluster: Cluster; condition: ClusterCondition }> {
  const cluster = await getCluster(host, name);
  const condition = clusterCondition(cluster, type);
  if (condition?.status !== 'True') {
    throw new Error(`Cluster ${name} ${type}=${condition?.status ?? 'unset'}: ${condition?.message ?? ''}`);
  }
  return { cluster, condition };
}

/** The Cluster's condition `type` (status, since when, why), if it has one. */
export function clusterCondition(c: Cluster, type: string): ClusterCondition | undefined {
  // Not @knet/k8s's getCondition: its tests import this library.
  return c.status?.conditions?.find((x) => x.type === type);
}

/** Writes the kubeconfig the proxy put into the Cluster (through its listener) to `file`; returns `file`. */
export function writeClusterKubeconfig(c: Cluster, file: string): string {
  const kc = c.spec?.connection?.kubeconfig;
  if (!kc) throw new Error(`Cluster ${c.metadata.name} has no kubeconfig yet`);
  writeFileSync(file, Buffer.from(kc, 'base64'), { mode: 0o600 });
  return file;
}
