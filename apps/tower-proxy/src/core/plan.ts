import { isIP } from 'node:net';
import {
  EXTERNAL_LB_ANNOTATIONS,
  isProxyCluster,
  type Cluster,
  type ClusterCondition,
  type Connection,
} from '@knet/cluster-crd';
import { setCondition } from '@knet/k8s';

/** Where per-cluster ports come from: kubernetes in [min, max), kubesphere = kubernetes + offset (Tower's scheme). */
export interface PortRange {
  min: number;
  max: number;
  kubesphereOffset: number;
}

export interface Ports {
  kubernetes: number;
  kubesphere: number;
}

/**
 * Ports for `cluster`: keeps its current ones when valid and not taken by another cluster the proxy
 * serves (of two clusters with the same port, the one whose name sorts first keeps it), else the
 * lowest free pair. A port left in a Cluster the proxy does not serve (type direct, or
 * joinFederation false) takes nothing: no listener runs on it. Deterministic, so a restarted proxy
 * computes the same answer. Throws when the range is exhausted.
 */
export function allocatePorts(cluster: Cluster, others: readonly Cluster[], range: PortRange): Ports {
  const used = new Set<number>();
  const mine = cluster.spec?.connection?.kubernetesAPIServerPort ?? 0;
  const myName = cluster.metadata.name;
  for (const o of others) {
    if (o.metadata.name === myName || !isProxyCluster(o)) continue;
    const p = o.spec?.connection?.kubernetesAPIServerPort;
    if (!p) continue;
    // On a duplicate, the cluster whose name sorts first keeps the port (stable and coordination-free).
    if (p === mine && o.metadata.name > myName) continue;
    used.add(p);
  }
  const valid = (p: number) => Number.isInteger(p) && p >= range.min && p < range.max && !used.has(p);
  if (valid(mine)) return { kubernetes: mine, kubesphere: mine + range.kubesphereOffset };
  for (let p = range.min; p < range.max; p++) {
    if (valid(p)) return { kubernetes: p, kubesphere: p + range.kubesphereOffset };
  }
  throw new Error(`no free port left in [${range.min}, ${range.max}) for cluster ${cluster.metadata.name}`);
}

/** The LoadBalancer annotations from KubeSphere's (misspelled) annotation; invalid JSON is an error to report. */
export function lbAnnotations(
  cluster: Cluster,
): { ok: true; annotations: Record<string, string> } | { ok: false; message: string } {
  const raw = cluster.metadata.annotations?.[EXTERNAL_LB_ANNOTATIONS];
  if (!raw) return { ok: true, annotations: {} };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { ok: false, message: `annotation ${EXTERNAL_LB_ANNOTATIONS} is not JSON` };
  }
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    Object.values(v).some((x) => typeof x !== 'string')
  ) {
    return { ok: false, message: `annotation ${EXTERNAL_LB_ANNOTATIONS} must be a JSON object of strings` };
  }
  return { ok: true, annotations: v as Record<string, string> };
}

export interface ServiceOptions {
  namespace: string;
  selector: Record<string, string>;
}

export const serviceName = (cluster: string) => `mc-${cluster}`;
/**
 * The LoadBalancer of a cluster with external access. Not `mc-<cluster>-…`: any suffix could be
 * another cluster's `mc-` name (a cluster named `<cluster>-external`); no `mc-` name starts `ext-`.
 */
export const externalServiceName = (cluster: string) => `ext-mc-${cluster}`;
/** A Service name is a DNS label: at most 63 characters. */
export const MAX_SERVICE_NAME = 63;
/** Labels of the Services the proxy manages: which cluster each belongs to, and who manages it. */
export const CLUSTER_LABEL = 'tower.knet.io/cluster';
const MANAGED_BY = ['app.kubernetes.io/managed-by', 'tower-proxy'] as const;
export const MANAGED_SELECTOR = MANAGED_BY.join('=');

/** A Service as tower-proxy applies it (server-side apply: exactly the fields it owns). */
export interface ServiceIntent {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: { apiVersion: string; kind: string; name: string; uid: string }[];
  };
  spec: {
    type: 'ClusterIP' | 'LoadBalancer';
    selector: Record<string, string>;
    ports: { name: string; protocol: 'TCP'; port: number; targetPort: number }[];
  };
}

function managedService(
  cluster: Cluster,
  name: string,
  o: ServiceOptions,
  annotations: Record<string, string>,
  spec: ServiceIntent['spec'],
): ServiceIntent {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: o.namespace,
      labels: { [MANAGED_BY[0]]: MANAGED_BY[1], [CLUSTER_LABEL]: cluster.metadata.name },
      annotations,
      ownerReferences: cluster.metadata.uid
        ? [
            {
              apiVersion: cluster.apiVersion,
              kind: 'Cluster',
              name: cluster.metadata.name,
              uid: cluster.metadata.uid,
            },
          ]
        : [],
    },
    spec,
  };
}

/**
 * The Service `mc-<cluster>` (server-side apply intent), inside the host cluster only (ClusterIP):
 * 6443 → kubernetes port, 80 → kubesphere port. The endpoints KubeSphere reads are its ClusterIP.
 */
export function desiredService(cluster: Cluster, ports: Ports, o: ServiceOptions): ServiceIntent {
  return managedService(
    cluster,
    serviceName(cluster.metadata.name),
    o,
    {},
    {
      type: 'ClusterIP',
      selector: o.selector,
      ports: [
        { name: 'kubernetes', protocol: 'TCP', port: 6443, targetPort: ports.kubernetes },
        { name: 'kubesphere', protocol: 'TCP', port: 80, targetPort: ports.kubesphere },
      ],
    },
  );
}

/**
 * The LoadBalancer `ext-mc-<cluster>` of a cluster with external access (`externalKubeAPIEnabled`),
 * with KubeSphere's LB annotations: the kubernetes port only (6443, TLS with client certificates).
 * The kubesphere port is plain HTTP without authentication (KubeSphere's own proxying speaks it):
 * it never leaves the host cluster. (Tower made `mc-<cluster>` itself the LoadBalancer, both ports.)
 */
export function desiredExternalService(
  cluster: Cluster,
  ports: Ports,
  o: ServiceOptions,
  annotations: Record<string, string>,
): ServiceIntent {
  return managedService(cluster, externalServiceName(cluster.metadata.name), o, annotations, {
    type: 'LoadBalancer',
    selector: o.selector,
    ports: [{ name: 'kubernetes', protocol: 'TCP', port: 6443, targetPort: ports.kubernetes }],
  });
}

/** The cluster's Services as the API server has them. */
export interface ServiceState {
  /** The ClusterIP of mc-<cluster>. */
  clusterIP?: string;
  /** The first LoadBalancer ingress (ip or hostname) of ext-mc-<cluster>, when there is one. */
  ingress?: string;
}

/** Host part of a URL (IPv6 in brackets). */
function urlHost(h: string): string {
  return isIP(h) === 6 ? `[${h}]` : h;
}

/**
 * The connection fields KubeSphere reads. With `publishAddress` (e.g. a node address in tests) the
 * listener ports are published directly instead of the Service's 6443/80.
 */
export function endpoints(
  ports: Ports,
  svc: ServiceState,
  publishAddress: string | undefined,
): Pick<Connection, 'kubernetesAPIEndpoint' | 'kubesphereAPIEndpoint' | 'externalKubernetesAPIEndpoint'> {
  const out: Pick<
    Connection,
    'kubernetesAPIEndpoint' | 'kubesphereAPIEndpoint' | 'externalKubernetesAPIEndpoint'
  > = {};
  if (publishAddress) {
    out.kubernetesAPIEndpoint = `https://${urlHost(publishAddress)}:${ports.kubernetes}`;
    out.kubesphereAPIEndpoint = `http://${urlHost(publishAddress)}:${ports.kubesphere}`;
  } else if (svc.clusterIP && svc.clusterIP !== 'None') {
    out.kubernetesAPIEndpoint = `https://${urlHost(svc.clusterIP)}:6443`;
    out.kubesphereAPIEndpoint = `http://${urlHost(svc.clusterIP)}:80`;
  }
  if (svc.ingress) out.externalKubernetesAPIEndpoint = `https://${urlHost(svc.ingress)}:6443`;
  return out;
}

/** Names and addresses the listener's serving certificate must cover. */
export function servingNames(
  cluster: string,
  namespace: string,
  svc: ServiceState,
  publishAddress?: string,
): { dnsNames: string[]; ipAddresses: string[] } {
  const svcName = serviceName(cluster);
  const dnsNames = [
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    svcName,
    `${svcName}.${namespace}`,
    `${svcName}.${namespace}.svc`,
  ];
  const ipAddresses: string[] = [];
  for (const h of [svc.clusterIP, publishAddress, svc.ingress]) {
    if (!h || h === 'None') continue;
    if (isIP(h)) ipAddresses.push(h);
    else dnsNames.push(h);
  }
  return { dnsNames: [...new Set(dnsNames)], ipAddresses: [...new Set(ipAddresses)] };
}

export interface ConditionInputs {
  initialized: { ok: true } | { ok: false; reason: string; message: string };
  /**
   * Agents connected now; `undefined` while that says nothing yet (just after this replica took
   * over, the agents are still redialling): AgentAvailable is then left as it is.
   */
  agents: number | undefined;
  external?: {
    enabled: boolean;
    ingress?: string;
    annotationError?: string;
    /** Why the cluster has no LoadBalancer at all (its name is too long for one). */
    unavailable?: { reason: string; message: string };
  };
}

/** KubeSphere's conditions carry lastUpdateTime besides lastTransitionTime. */
const KUBESPHERE_TIMESTAMPS = { lastUpdateTime: true };

/** The three conditions the proxy owns, true to what it observed. Other conditions are kept. */
export function desiredConditions(cluster: Cluster, i: ConditionInputs, now: Date): ClusterCondition[] {
  let c = cluster.status?.conditions ?? [];
  c = setCondition(
    c,
    i.initialized.ok
      ? {
          type: 'Initialized',
          status: 'True',
          reason: 'Initialized',
          message: 'Cluster has been initialized',
        }
      : {
          type: 'Initialized',
          status: 'False',
          reason: i.initialized.reason,
          message: i.initialized.message,
        },
    now,
    KUBESPHERE_TIMESTAMPS,
  );
  if (i.agents !== undefined)
    c = setCondition(
      c,
      i.agents > 0
        ? {
            type: 'AgentAvailable',
            status: 'True',
            reason: 'AgentConnected',
            // No count: it would be stale (the proxy reconciles when the first agent comes and the last
            // goes) or write the Cluster, and wake KubeSphere's controller, at every agent connection.
            // The count is the metric tower_proxy_agent_sessions{cluster}.
            message: 'an agent is connected to the proxy',
          }
        : {
            type: 'AgentAvailable',
            status: 'False',
            reason: 'NoAgent',
            message: 'no agent is connected to the proxy',
          },
      now,
      KUBESPHERE_TIMESTAMPS,
    );
  if (i.external?.enabled) {
    c = setCondition(
      c,
      i.external.unavailable
        ? { type: 'ExternalAccessReady', status: 'False', ...i.external.unavailable }
        : i.external.annotationError
          ? {
              type: 'ExternalAccessReady',
              status: 'False',
              reason: 'InvalidAnnotation',
              message: i.external.annotationError,
            }
          : i.external.ingress
            ? {
                type: 'ExternalAccessReady',
                status: 'True',
                reason: 'LoadBalancerReady',
                message: `reachable at ${i.external.ingress}`,
              }
            : {
                type: 'ExternalAccessReady',
                status: 'False',
                reason: 'WaitingForLoadBalancer',
                message: 'the LoadBalancer Service has no ingress yet',
              },
      now,
      KUBESPHERE_TIMESTAMPS,
    );
  } else {
    c = c.filter((x) => x.type !== 'ExternalAccessReady');
  }
  return c;
}

/** The conditions to write to `cluster`, or undefined when they are already what they should be. */
export function conditionsUpdate(
  cluster: Cluster,
  i: ConditionInputs,
  now: Date,
): ClusterCondition[] | undefined {
  const conditions = desiredConditions(cluster, i, now);
  return JSON.stringify(conditions) === JSON.stringify(cluster.status?.conditions ?? [])
    ? undefined
    : conditions;
}

/** Conditions that describe a Cluster's tunnel, which only a served proxy cluster keeps true. */
const TUNNEL_CONDITIONS = new Set(['AgentAvailable', 'ExternalAccessReady']);

/**
 * The conditions of a Cluster the proxy stopped serving (its type changed, or it left the
 * federation) without the tunnel's, or undefined when it has none of them. `Initialized` is kept:
 * it tells that the Cluster was set up, not that it is served.
 */
export function withoutTunnelConditions(cluster: Cluster): ClusterCondition[] | undefined {
  const c = cluster.status?.conditions ?? [];
  const kept = c.filter((x) => !TUNNEL_CONDITIONS.has(x.type));
  return kept.length === c.length ? undefined : kept;
}
