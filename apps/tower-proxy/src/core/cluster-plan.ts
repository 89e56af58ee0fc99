import { isProxyCluster, type Cluster, type Connection } from '@knet/cluster-crd';
import { errorMessage } from '@knet/runtime';
import {
  allocatePorts,
  desiredExternalService,
  desiredService,
  endpoints,
  externalServiceName,
  MAX_SERVICE_NAME,
  lbAnnotations,
  servingNames,
  type ConditionInputs,
  type PortRange,
  type Ports,
  type ServiceIntent,
  type ServiceState,
} from './plan';

/** An Event to record about a Cluster. */
export interface ClusterEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** How this proxy serves clusters (from its flags). */
export interface PlanConfig {
  /** Namespace of the mc-<cluster> Services. */
  serviceNamespace: string;
  /** Pod labels the mc-<cluster> Services select (the proxy pods). */
  serviceSelector: Record<string, string>;
  portRange: PortRange;
  /** Written into endpoints instead of the Service's ClusterIP (then with the listener ports). */
  publishAddress?: string;
}

/** What the controller fetched for one Cluster. */
export interface ClusterInput {
  /** The Cluster as cached; undefined once it is deleted. */
  cluster: Cluster | undefined;
  /** Every cached Cluster (ports are allocated against them). */
  clusters: readonly Cluster[];
  /** A fresh random token, used only when the Cluster has none. */
  newToken: string;
}

/** Nothing to serve: drop the cluster's agents, listeners and Services. */
export interface CleanupPlan {
  action: 'cleanup';
  why: 'deleted' | 'no longer a proxy cluster';
}

/**
 * A Cluster being deleted (deletionTimestamp set, finalizers left): KubeSphere's own finalizer
 * unjoins the member through the tunnel, so its agents and listeners stay as they are, with the
 * credentials it has now; nothing is written or created for it. The cleanup runs once it is gone.
 */
export interface HoldPlan {
  action: 'hold';
  cluster: Cluster;
}

/** The cluster cannot be served (no free port): write these conditions, then fail the reconcile. */
export interface FailPlan {
  action: 'fail';
  cluster: Cluster;
  message: string;
  status: Omit<ConditionInputs, 'agents'>;
}

/**
 * Serve the cluster: apply `service` (and `external`, or delete the cluster's LoadBalancer when
 * there is none), then `planConnection` with the API server's answer.
 */
export interface ServePlan {
  action: 'serve';
  cluster: Cluster;
  ports: Ports;
  /** mc-<cluster>, inside the host cluster. */
  service: ServiceIntent;
  /** ext-mc-<cluster>, the LoadBalancer: only with external access. */
  external?: ServiceIntent;
  /** A token to write, when the Cluster has none. */
  token?: string;
  /** Why KubeSphere's LoadBalancer annotation was not used (it is not valid). */
  annotationError?: string;
  /** Why external access is on and there is no LoadBalancer (`external` is absent). */
  externalUnavailable?: { reason: string; message: string };
  /** Events to record at once. */
  events: ClusterEvent[];
}

export type ClusterPlan = CleanupPlan | HoldPlan | FailPlan | ServePlan;

/**
 * The first half of a reconcile: whether the cluster is served, on which ports, and the Service
 * Services it needs. Pure: the controller fetches the inputs and applies the result.
 */
export function planCluster(input: ClusterInput, config: PlanConfig): ClusterPlan {
  const { cluster } = input;
  if (!cluster) return { action: 'cleanup', why: 'deleted' };
  if (!isProxyCluster(cluster)) return { action: 'cleanup', why: 'no longer a proxy cluster' };
  if (cluster.metadata.deletionTimestamp) return { action: 'hold', cluster };
  let ports: Ports;
  try {
    ports = allocatePorts(cluster, input.clusters, config.portRange);
  } catch (e) {
    const message = errorMessage(e);
    return {
      action: 'fail',
      cluster,
      message,
      status: { initialized: { ok: false, reason: 'NoFreePort', message } },
    };
  }
  const lb = lbAnnotations(cluster);
  const o = { namespace: config.serviceNamespace, selector: config.serviceSelector };
  const lbName = externalServiceName(cluster.metadata.name);
  // The cluster is served all the same; only its LoadBalancer cannot exist.
  const unavailable =
    lbName.length > MAX_SERVICE_NAME
      ? {
          reason: 'NameTooLong',
          message: `no LoadBalancer: its Service ${lbName} would be longer than ${MAX_SERVICE_NAME} characters; external access needs a Cluster name of at most ${MAX_SERVICE_NAME - lbName.length + cluster.metadata.name.length}`,
        }
      : undefined;
  const external = cluster.spec?.externalKubeAPIEnabled === true;
  return {
    action: 'serve',
    cluster,
    ports,
    service: desiredService(cluster, ports, o),
    ...(external && !unavailable
      ? { external: desiredExternalService(cluster, ports, o, lb.ok ? lb.annotations : {}) }
      : {}),
    ...(external && unavailable ? { externalUnavailable: unavailable } : {}),
    ...(cluster.spec?.connection?.token ? {} : { token: input.newToken }),
    ...(lb.ok ? {} : { annotationError: lb.message }),
    events: [
      ...(lb.ok ? [] : [{ type: 'Warning' as const, reason: 'InvalidAnnotation', message: lb.message }]),
      ...(external && unavailable ? [{ type: 'Warning' as const, ...unavailable }] : []),
    ],
  };
}

/** The second half: what to write once the Service exists. */
export interface ConnectionPlan {
  /** spec.connection fields to merge (token, ports, endpoints); empty when all are right. */
  connection: Connection;
  /** The server the kubeconfig must name; undefined while the cluster has no endpoint yet. */
  kubeconfigServer?: string;
  /** Names and addresses the listener's serving certificate covers. */
  servingNames: { dnsNames: string[]; ipAddresses: string[] };
  /** Conditions to set (with the number of agents connected when they are written). */
  status: Omit<ConditionInputs, 'agents'>;
  /** Events to record once `connection` is written. */
  events: ClusterEvent[];
}

/**
 * The connection fields, certificate names and conditions of a served cluster, from the Service
 * as the API server answered the apply (it allocates the ClusterIP; a cloud, the LB ingress). Pure.
 */
export function planConnection(plan: ServePlan, service: ServiceState, config: PlanConfig): ConnectionPlan {
  const { cluster, ports } = plan;
  const current = cluster.spec?.connection ?? {};
  const connection: Connection = {};
  if (plan.token) connection.token = plan.token;
  if (current.kubernetesAPIServerPort !== ports.kubernetes)
    connection.kubernetesAPIServerPort = ports.kubernetes;
  if (current.kubesphereAPIServerPort !== ports.kubesphere)
    connection.kubesphereAPIServerPort = ports.kubesphere;
  const ep = endpoints(ports, service, config.publishAddress);
  for (const k of [
    'kubernetesAPIEndpoint',
    'kubesphereAPIEndpoint',
    'externalKubernetesAPIEndpoint',
  ] as const) {
    if (ep[k] !== undefined && current[k] !== ep[k]) connection[k] = ep[k];
  }
  const changed = Object.keys(connection).filter((k) => k !== 'token');
  return {
    connection,
    ...(ep.kubernetesAPIEndpoint ? { kubeconfigServer: ep.kubernetesAPIEndpoint } : {}),
    servingNames: servingNames(
      cluster.metadata.name,
      config.serviceNamespace,
      service,
      config.publishAddress,
    ),
    status: {
      initialized: { ok: true },
      external: {
        enabled: cluster.spec?.externalKubeAPIEnabled === true,
        ...(service.ingress ? { ingress: service.ingress } : {}),
        ...(plan.annotationError ? { annotationError: plan.annotationError } : {}),
        ...(plan.externalUnavailable ? { unavailable: plan.externalUnavailable } : {}),
      },
    },
    events: changed.length
      ? [{ type: 'Normal', reason: 'ConnectionUpdated', message: `set ${changed.join(', ')}` }]
      : [],
  };
}
