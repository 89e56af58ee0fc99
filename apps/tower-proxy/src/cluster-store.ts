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
import {
  EventRecorder,
  ResilientInformer,
  isConflict,
  isNotFound,
  kubeRequest,
  patchObject,
  statusError,
  wrapApiError,
} from '@knet/k8s';
import type { Logger } from '@knet/runtime';
import type { ClusterEvent } from './core/cluster-plan';
import { CLUSTER_LABEL, MANAGED_SELECTOR, type ServiceIntent, type ServiceState } from './core/plan';

/**
 * What ClusterController reads and writes on the host cluster, and nothing more. Failures are the
 * API server's (`KubeApiError`: 404 NotFound, 409 Conflict…), in the real store and in the fake.
 */
export interface ClusterStore {
  /** Starts watching Clusters and the managed Services; resolves once both caches are complete. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Whether both caches follow the API server now: listed, and both watches answered and not
   * failed since (false before start(), while a watch is refused or broken, and after stop()).
   * Until it is, a Cluster created or changed is not seen: readiness checks it.
   */
  readonly synced: boolean;
  /** `fn(cluster)` runs whenever a Cluster or one of its Services changes or goes. */
  onChange(fn: (cluster: string) => void): void;
  /** A Cluster from the cache. */
  cluster(name: string): Cluster | undefined;
  /** Every Cluster in the cache. */
  clusters(): readonly Cluster[];
  /**
   * Server-side apply (forced) of the proxy's Service; answers with its address as the API server
   * has it. A Service of that name that is not the proxy's (`ownsService`) is never taken over:
   * `409 Conflict` (`notOwnedError`), and it is left as it is. A Service that already is the intent
   * (`matchesIntent`, as last seen) is answered from the cache, without a request: after a start
   * or a failover, every Cluster's pass would otherwise apply its unchanged Services once more.
   */
  applyService(intent: ServiceIntent): Promise<ServiceState>;
  /**
   * Deletes the Service `name` (mc-<cluster> or ext-mc-<cluster>) if it is the proxy's Service of
   * `cluster`, on condition (UID and resourceVersion) that it is still the object seen to be the
   * proxy's: `deleted`. `none` when there is nothing of the proxy's to delete (no Service, or one
   * that is not the proxy's: left alone). Nothing in the cache, no request: cleaning up a Cluster
   * that was never served costs nothing.
   */
  deleteService(cluster: string, name: string): Promise<ServiceDeletion>;
  /**
   * Merge-patches spec.connection; answers with the Cluster as written. With `resourceVersion` (of
   * the Cluster the fields were planned from) only on that version: `409 Conflict` when the server
   * has a newer one, so a concurrent edit is not overwritten.
   */
  patchConnection(name: string, fields: Connection, resourceVersion?: string): Promise<Cluster>;
  /**
   * Writes status.conditions (the Cluster has no status sub-resource: on the object itself), on
   * condition that `cluster` is the current version: 409 when the server has a newer one.
   */
  writeConditions(cluster: Cluster, conditions: ClusterCondition[]): Promise<Cluster>;
  /** Records an Event about a Cluster; never fails. */
  record(cluster: Cluster, event: ClusterEvent): void;
}

/** What `deleteService` did. */
export type ServiceDeletion = 'deleted' | 'none';

const [MANAGED_KEY, MANAGED_VALUE] = MANAGED_SELECTOR.split('=') as [string, string];

/**
 * Whether a Service is the proxy's Service of `cluster`: it carries both labels the proxy puts on
 * it (`app.kubernetes.io/managed-by=tower-proxy`, `tower.knet.io/cluster=<cluster>`). The proxy
 * changes and deletes nothing else, whatever its name.
 */
export function ownsService(svc: V1Service | undefined, cluster: string): boolean {
  const labels = svc?.metadata?.labels ?? {};
  return labels[MANAGED_KEY] === MANAGED_VALUE && labels[CLUSTER_LABEL] === cluster;
}

/** The answer to applying over a Service that is not the proxy's (as the API server's own 409s read). */
export function notOwnedError(namespace: string, name: string, cluster: string) {
  return statusError(
    409,
    'Conflict',
    `Service ${namespace}/${name} exists and is not tower-proxy's (it lacks the labels ${MANAGED_SELECTOR}, ${CLUSTER_LABEL}=${cluster}); the proxy leaves it alone: delete or rename that Service to let the proxy create its own`,
    { name, kind: 'services' },
  );
}

/**
 * Whether `svc` already has every field of `intent` as it would be applied: its labels, exactly its
 * annotations and owner references, type, selector and ports. Then an apply would change nothing
 * (server-side apply: the proxy owns exactly these fields), and is not sent. Fields others set
 * (nodePorts, a cloud's annotations) are compared only where the proxy sets them too: a Service
 * with extra annotations is applied again (a no-op for the API server, one round trip).
 */
export function matchesIntent(svc: V1Service, intent: ServiceIntent): boolean {
  const m = svc.metadata ?? {};
  const spec = svc.spec ?? {};
  const same = (a: Record<string, string> | undefined, b: Record<string, string>) =>
    Object.keys(a ?? {}).length === Object.keys(b).length &&
    Object.entries(b).every(([k, v]) => a?.[k] === v);
  const owners = m.ownerReferences ?? [];
  const ports = spec.ports ?? [];
  return (
    Object.entries(intent.metadata.labels).every(([k, v]) => m.labels?.[k] === v) &&
    same(m.annotations, intent.metadata.annotations) &&
    owners.length === intent.metadata.ownerReferences.length &&
    intent.metadata.ownerReferences.every(
      (o, i) =>
        owners[i]?.apiVersion === o.apiVersion &&
        owners[i]?.kind === o.kind &&
        owners[i]?.name === o.name &&
        owners[i]?.uid === o.uid,
    ) &&
    spec.type === intent.spec.type &&
    same(spec.selector, intent.spec.selector) &&
    ports.length === intent.spec.ports.length &&
    intent.spec.ports.every(
      (p, i) =>
        ports[i]?.name === p.name &&
        (ports[i]?.protocol ?? 'TCP') === p.protocol &&
        ports[i]?.port === p.port &&
        ports[i]?.targetPort === p.targetPort,
    )
  );
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
  /** The proxy's Services: a change (LoadBalancer ingress, deletion by hand) is a change of the cluster. */
  private readonly services: ResilientInformer<V1Service>;
  private readonly events: EventRecorder;
  private readonly listeners: ((cluster: string) => void)[] = [];
  /**
   * The proxy's Services as its own applies answered, until the informer's cache has caught up
   * (an event for the same UID): a Service created a moment ago is known to be ours at once.
   */
  private readonly applied = new Map<string, V1Service>();

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
    const caughtUp = (svc: V1Service) => {
      const name = svc.metadata?.name ?? '';
      if (this.applied.get(name)?.metadata?.uid === svc.metadata?.uid) this.applied.delete(name);
    };
    this.services = new ResilientInformer<V1Service>({
      kc,
      path: `/api/v1/namespaces/${o.serviceNamespace}/services`,
      labelSelector: MANAGED_SELECTOR,
      list: () =>
        core.listNamespacedService({ namespace: o.serviceNamespace, labelSelector: MANAGED_SELECTOR }),
      onAdd: caughtUp,
      onUpdate: (svc) => {
        caughtUp(svc);
        changed(owner(svc));
      },
      onDelete: (svc) => {
        caughtUp(svc);
        changed(owner(svc));
      },
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

  get synced(): boolean {
    return this.informer.watching && this.services.watching;
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
    const { name, namespace } = intent.metadata;
    const cluster = intent.metadata.labels[CLUSTER_LABEL] ?? '';
    // Server-side apply takes over whatever has the name (with force, even fields others own; and
    // without force too when the values agree): a Service not known to be ours is read first.
    const seen = this.ours(cluster, name);
    if (seen && matchesIntent(seen, intent)) return serviceState(seen);
    if (!seen) {
      const cur = await this.readService(namespace, name);
      if (cur && !ownsService(cur, cluster)) {
        throw wrapApiError(
          `apply patch Service ${namespace}/${name}`,
          notOwnedError(namespace, name, cluster),
        );
      }
    }
    const svc = await patchObject<V1Service>(
      this.kc,
      { apiVersion: 'v1', kind: 'Service', name: intent.metadata.name, namespace: intent.metadata.namespace },
      intent,
      'apply',
      { fieldManager: FIELD_MANAGER, force: true },
    );
    this.applied.set(name, svc);
    return serviceState(svc);
  }

  async deleteService(cluster: string, name: string): Promise<ServiceDeletion> {
    const namespace = this.o.serviceNamespace;
    let seen = this.ours(cluster, name);
    // A few rounds: each conflict means the Service changed since it was seen; it is read again.
    for (let attempt = 1; seen; attempt++) {
      try {
        await kubeRequest(this.kc, {
          method: 'DELETE',
          path: `/api/v1/namespaces/${namespace}/services/${name}`,
          body: {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            preconditions: { uid: seen.metadata?.uid, resourceVersion: seen.metadata?.resourceVersion },
          },
        });
        this.applied.delete(name);
        return 'deleted';
      } catch (e) {
        if (isNotFound(e)) break;
        if (!isConflict(e) || attempt === 3) throw wrapApiError(`delete Service ${namespace}/${name}`, e);
      }
      const cur = await this.readService(namespace, name);
      if (cur && !ownsService(cur, cluster)) {
        this.o.logger.warn(
          { cluster, service: `${namespace}/${name}` },
          "Service is not tower-proxy's (any more): left alone",
        );
        break;
      }
      seen = cur;
    }
    this.applied.delete(name);
    return 'none';
  }

  /** The Service `name` as last seen, if it is the proxy's of `cluster` (the informer's cache, or our own apply). */
  private ours(cluster: string, name: string): V1Service | undefined {
    const seen = this.services.get(name, this.o.serviceNamespace) ?? this.applied.get(name);
    return ownsService(seen, cluster) ? seen : undefined;
  }

  /** The Service as the API server has it now; undefined when there is none. */
  private async readService(namespace: string, name: string): Promise<V1Service | undefined> {
    try {
      return await kubeRequest<V1Service>(this.kc, {
        method: 'GET',
        path: `/api/v1/namespaces/${namespace}/services/${name}`,
      });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw wrapApiError(`get Service ${namespace}/${name}`, e);
    }
  }

  patchConnection(name: string, fields: Connection, resourceVersion?: string): Promise<Cluster> {
    return patchObject<Cluster>(
      this.kc,
      { apiVersion: CLUSTER_API_VERSION, kind: 'Cluster', name },
      { ...(resourceVersion ? { metadata: { resourceVersion } } : {}), spec: { connection: fields } },
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
