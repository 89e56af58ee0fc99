import {
  CoreV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type V1Service,
} from '@kubernetes/client-node';
import {
  CLUSTER_API_VERSION,
  CLUSTERS_PATH,
  type Cluster,
  type ClusterCondition,
  type Connection,
} from '@knet/cluster-crd';
import { EventRecorder, ResilientInformer, kubeRequest, patchObject, wrapApiError } from '@knet/k8s';
import type { Logger } from '@knet/runtime';
import type { ClusterEvent } from './core/cluster-plan';
import {
  CLUSTER_LABEL,
  MANAGED_SELECTOR,
  serviceName,
  type ServiceIntent,
  type ServiceState,
} from './core/plan';

/**
 * What ClusterController reads and writes on the host cluster, and nothing more. Failures are the
 * API server's (`KubeApiError`: 404 NotFound, 409 Conflict…), in the real store and in the fake.
 */
export interface ClusterStore {
  /** Starts watching Clusters and the managed Services; resolves once both caches are complete. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** `fn(cluster)` runs whenever a Cluster or its Service mc-<cluster> changes or goes. */
  onChange(fn: (cluster: string) => void): void;
  /** A Cluster from the cache. */
  cluster(name: string): Cluster | undefined;
  /** Every Cluster in the cache. */
  clusters(): readonly Cluster[];
  /** Server-side apply (forced) of a Service; answers with its address as the API server has it. */
  applyService(intent: ServiceIntent): Promise<ServiceState>;
  /** Deletes mc-<cluster>; 404 when there is none. */
  deleteService(cluster: string): Promise<void>;
  /** Merge-patches spec.connection; answers with the Cluster as written. */
  patchConnection(name: string, fields: Connection): Promise<Cluster>;
  /**
   * Writes status.conditions (the Cluster has no status sub-resource: on the object itself), on
   * condition that `cluster` is the current version: 409 when the server has a newer one.
   */
  writeConditions(cluster: Cluster, conditions: ClusterCondition[]): Promise<Cluster>;
  /** Records an Event about a Cluster; never fails. */
  record(cluster: Cluster, event: ClusterEvent): void;
}

/** The address of a Service as the proxy uses it. */
export function serviceState(svc: V1Service): ServiceState {
  const ingress = svc.status?.loadBalancer?.ingress?.[0];
  const address = ingress?.ip || ingress?.hostname;
  return {
    ...(svc.spec?.clusterIP ? { clusterIP: svc.spec.clusterIP } : {}),
    ...(address ? { ingress: address } : {}),
  };
}

const FIELD_MANAGER = 'tower-proxy';

/** The ClusterStore of a real API server: informers for the reads, @knet/k8s for the writes. */
export class KubeClusterStore implements ClusterStore {
  private readonly informer: ResilientInformer<Cluster>;
  /** The mc-<cluster> Services: a change (LoadBalancer ingress, deletion by hand) is a change of the cluster. */
  private readonly services: ResilientInformer<V1Service>;
  private readonly events: EventRecorder;
  private readonly listeners: ((cluster: string) => void)[] = [];

  constructor(
    private readonly kc: KubeConfig,
    private readonly o: { serviceNamespace: string; logger: Logger },
  ) {
    const changed = (name: string | undefined) => {
      if (name) for (const fn of this.listeners) fn(name);
    };
    this.events = new EventRecorder(kc, 'tower-proxy', { logger: o.logger });
    this.informer = new ResilientInformer({
      kc,
      path: CLUSTERS_PATH,
      list: () => kubeRequest<KubernetesListObject<Cluster>>(kc, { method: 'GET', path: CLUSTERS_PATH }),
      onAdd: (c) => changed(c.metadata.name),
      onUpdate: (c) => changed(c.metadata.name),
      onDelete: (c) => changed(c.metadata.name),
      logger: o.logger,
    });
    const core = kc.makeApiClient(CoreV1Api);
    const owner = (svc: V1Service) => svc.metadata?.labels?.[CLUSTER_LABEL];
    this.services = new ResilientInformer<V1Service>({
      kc,
      path: `/api/v1/namespaces/${o.serviceNamespace}/services`,
      labelSelector: MANAGED_SELECTOR,
      list: () =>
        core.listNamespacedService({ namespace: o.serviceNamespace, labelSelector: MANAGED_SELECTOR }),
      onUpdate: (svc) => changed(owner(svc)),
      onDelete: (svc) => changed(owner(svc)),
      logger: o.logger,
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.informer.start(), this.services.start()]);
    await Promise.all([this.informer.synced, this.services.synced]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.informer.stop(), this.services.stop()]);
  }

  onChange(fn: (cluster: string) => void): void {
    this.listeners.push(fn);
  }

  cluster(name: string): Cluster | undefined {
    return this.informer.get(name);
  }

  clusters(): readonly Cluster[] {
    return this.informer.list();
  }

  async applyService(intent: ServiceIntent): Promise<ServiceState> {
    const svc = await patchObject<V1Service>(
      this.kc,
      { apiVersion: 'v1', kind: 'Service', name: intent.metadata.name, namespace: intent.metadata.namespace },
      intent,
      'apply',
      { fieldManager: FIELD_MANAGER, force: true },
    );
    return serviceState(svc);
  }

  async deleteService(cluster: string): Promise<void> {
    const name = serviceName(cluster);
    try {
      await kubeRequest(this.kc, {
        method: 'DELETE',
        path: `/api/v1/namespaces/${this.o.serviceNamespace}/services/${name}`,
      });
    } catch (e) {
      throw wrapApiError(`delete Service ${this.o.serviceNamespace}/${name}`, e);
    }
  }

  patchConnection(name: string, fields: Connection): Promise<Cluster> {
    return patchObject<Cluster>(
      this.kc,
      { apiVersion: CLUSTER_API_VERSION, kind: 'Cluster', name },
      { spec: { connection: fields } },
      'merge',
    );
  }

  writeConditions(cluster: Cluster, conditions: ClusterCondition[]): Promise<Cluster> {
    return patchObject<Cluster>(
      this.kc,
      { apiVersion: CLUSTER_API_VERSION, kind: 'Cluster', name: cluster.metadata.name },
      { metadata: { resourceVersion: cluster.metadata.resourceVersion }, status: { conditions } },
      'merge',
    );
  }

  record(cluster: Cluster, e: ClusterEvent): void {
    void this.events.event(cluster, e.type, e.reason, e.message);
  }
}
