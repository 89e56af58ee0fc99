/**
 * The wiring of our charts on a NodeBed, shared by the e2e/node suites and the lab's scenes on the
 * node: what `helm install` is given (charts from this workspace, the values an operator of this
 * node would set) and what tower's proxy says about the tunnel (its metrics).
 */
import { join } from 'node:path';
import type { ControlPlane } from '../controlplane';
import { TOWER_NAMESPACE, getCluster } from '../tower-host';
import { workspaceRoot } from '../workspace';
import type { NodeBed } from './node-bed';
import { helmOrReport, valuesFile } from './report';

/** How long `helm install --wait` of a tower chart may take (the run gets a minute more). */
const TOWER_HELM_WAIT_S = 180;

/** `charts/<chart>` of this workspace (an absolute path: jest may run from a project's folder). */
export function chartDir(chart: string): string {
  return join(workspaceRoot(), 'charts', chart);
}

async function helmInstall(cp: ControlPlane, args: string[], waitS: number): Promise<void> {
  const r = await cp.helm([...args, '--wait', `--timeout=${waitS}s`], { timeoutMs: (waitS + 60) * 1000 });
  if (r.exitCode !== 0) {
    throw new Error(`helm ${args.slice(0, 3).join(' ')} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  }
}

/**
 * `helm install tower-proxy charts/tower-proxy -n kubesphere-system --wait` with the chart's
 * defaults (the node must have the tower-proxy image, and the host the Cluster CRD:
 * `prepareTowerHost`).
 */
export async function installTowerProxyChart(cp: ControlPlane, release = 'tower-proxy'): Promise<void> {
  await helmInstall(
    cp,
    ['install', release, chartDir('tower-proxy'), '-n', TOWER_NAMESPACE],
    TOWER_HELM_WAIT_S,
  );
}

/** The values charts/tower-agent is installed with for Cluster `cluster` of a node's host. */
export interface TowerAgentValues {
  name: string;
  /** The proxy's Service `tower` at its ClusterIP (the node has no cluster DNS). */
  proxyServer: string;
  /** The host key's fingerprint the proxy published (ConfigMap tower-proxy). */
  fingerprint: string;
  /** The Cluster's token (a secret: never logged). */
  token: string;
}

/**
 * What tower-agent needs to dial the proxy of the same node: the ClusterIP of the Service `tower`
 * (as an agent of a member cluster would dial a LoadBalancer address), the fingerprint the proxy
 * published and the token it gave Cluster `cluster`.
 */
export async function towerAgentValues(cp: ControlPlane, cluster: string): Promise<TowerAgentValues> {
  const towerIp = await cp.kubectlOk([
    'get',
    'service',
    'tower',
    '-n',
    TOWER_NAMESPACE,
    '-o',
    'jsonpath={.spec.clusterIP}',
  ]);
  const fingerprint = await cp.kubectlOk([
    '-n',
    TOWER_NAMESPACE,
    'get',
    'configmap',
    'tower-proxy',
    '-o',
    'jsonpath={.data.fingerprint}',
  ]);
  const token = (await getCluster(cp, cluster)).spec?.connection?.token;
  if (!token) throw new Error(`Cluster ${cluster} has no token yet (is tower-proxy running?)`);
  return { name: cluster, proxyServer: `http://${towerIp}:8080`, fingerprint, token };
}

/** `helm install tower-agent charts/tower-agent -n kubesphere-system --wait` with `values`. */
export async function installTowerAgentChart(
  cp: ControlPlane,
  values: TowerAgentValues,
  release = 'tower-agent',
): Promise<void> {
  await helmInstall(
    cp,
    [
      'install',
      release,
      chartDir('tower-agent'),
      '-n',
      TOWER_NAMESPACE,
      '--set-string',
      `name=${values.name}`,
      '--set-string',
      `proxyServer=${values.proxyServer}`,
      '--set-string',
      `fingerprint=${values.fingerprint}`,
      '--set-string',
      `token=${values.token}`,
    ],
    TOWER_HELM_WAIT_S,
  );
}

/**
 * The pods of helm release `release` in `namespace` (the charts' `app.kubernetes.io/instance`
 * label), as `kubectl get -o json` gives them; `P` names the fields the caller reads.
 */
export async function releasePods<P extends { metadata: { name: string } }>(
  cp: ControlPlane,
  namespace: string,
  release: string,
): Promise<P[]> {
  const list = JSON.parse(
    await cp.kubectlOk([
      'get',
      'pods',
      '-n',
      namespace,
      '-l',
      `app.kubernetes.io/instance=${release}`,
      '-o',
      'json',
    ]),
  ) as { items: P[] };
  return list.items;
}

/** The one pod of a single-replica release; fails naming what it found otherwise. */
export async function releasePod<P extends { metadata: { name: string } }>(
  cp: ControlPlane,
  namespace: string,
  release: string,
): Promise<P> {
  const pods = await releasePods<P>(cp, namespace, release);
  if (pods.length !== 1)
    throw new Error(
      `release ${release}: expected one pod, found ${pods.map((p) => p.metadata.name).join(', ') || 'none'}`,
    );
  return pods[0] as P;
}

/** tower-proxy's /metrics (its metricsPort, 9090), through the API server's pod proxy. */
export async function towerProxyMetrics(cp: ControlPlane, release = 'tower-proxy'): Promise<string> {
  const pod = (await releasePod(cp, TOWER_NAMESPACE, release)).metadata.name;
  return cp.kubectlOk([
    'get',
    '--raw',
    `/api/v1/namespaces/${TOWER_NAMESPACE}/pods/${pod}:9090/proxy/metrics`,
  ]);
}

/** `tower_proxy_bytes_total` of Cluster `cluster`'s kubernetes target in `direction`, from `metrics`. */
export function towerTunnelBytes(
  metrics: string,
  cluster: string,
  direction: 'from_agent' | 'to_agent',
): number {
  const re = new RegExp(
    `^tower_proxy_bytes_total\\{cluster="${cluster}",target="kubernetes",direction="${direction}"\\} (\\d+)`,
    'm',
  );
  return Number(re.exec(metrics)?.[1] ?? 0);
}

/**
 * The values of charts/pod-gateway an operator of this node gives: no VPN client (the gateway NATs
 * straight out of its eth0, "the internet" is behind the node's uplink), the cluster's networks,
 * and ip_forward as a pod sysctl that the kubelet allows (instead of a privileged gateway-init;
 * start the node with `kubelet: { allowedUnsafeSysctls: ['net.ipv4.ip_forward'] }`).
 */
export function podGatewayNodeValues(
  bed: NodeBed,
  routedNamespaces: readonly string[],
): Record<string, unknown> {
  const net = bed.network;
  return {
    routed_namespaces: [...routedNamespaces],
    gatewayInit: { ipForward: 'podSysctl' },
    settings: {
      // Services, pods and the node (kubelet probes) stay on the pod network; the rest goes to the gateway.
      NOT_ROUTED_TO_GATEWAY_CIDRS: [net.serviceCidr, net.podCidr, `${net.nodeIp}/32`],
      VPN_INTERFACE: '',
      VPN_LOCAL_CIDRS: [net.podCidr, net.serviceCidr],
    },
    // Without a VPN the gateway's egress is the internet itself, not VPN servers (and this node's
    // CNI, the bridge plugin, enforces no NetworkPolicy).
    networkPolicy: { enabled: false },
  };
}

/** The images charts/pod-gateway's pods run, and busybox for the routed clients and Jobs. */
export const POD_GATEWAY_IMAGES = [
  'busybox',
  'gateway-init',
  'gateway-sidecar',
  'client-init',
  'client-sidecar',
  'gateway-webhook',
] as const;

/**
 * `helm install <release> charts/pod-gateway -n <namespace> --wait --timeout=4m` with
 * `podGatewayNodeValues`; a failure carries what the node says about the release's pods.
 */
export async function installPodGatewayChart(
  bed: NodeBed,
  opts: { release: string; namespace: string; routedNamespaces: readonly string[] },
): Promise<void> {
  const values = valuesFile(podGatewayNodeValues(bed, opts.routedNamespaces));
  try {
    await helmOrReport(
      bed,
      [
        'install',
        opts.release,
        chartDir('pod-gateway'),
        '-n',
        opts.namespace,
        '--wait',
        '--timeout=4m',
        '--values',
        values.path,
      ],
      [opts.namespace],
      300_000,
    );
  } finally {
    values.remove();
  }
}
