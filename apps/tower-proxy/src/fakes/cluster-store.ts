import type { V1Service } from '@kubernetes/client-node';
import type { Cluster, ClusterCondition, Connection } from '@knet/cluster-crd';
import { statusError, wrapApiError } from '@knet/k8s';
import {
  notOwnedError,
  ownsService,
  serviceState,
  type ClusterStore,
  type ServiceDeletion,
} from '../cluster-store';
import type { ClusterEvent } from '../core/cluster-plan';
import {
  CLUSTER_LABEL,
  externalServiceName,
  serviceName,
  type ServiceIntent,
  type ServiceState,
} from '../core/plan';

/** The store's calls, to make one of them fail (`failNext`). */
export type ClusterStoreCall = 'applyService' | 'deleteService' | 'patchConnection' | 'writeConditions';

/**
 * An in-memory ClusterStore that answers like the API server does for these calls
 * (`test/cluster-store-parity.test.ts` runs the same script against both):
 * - every change of an object bumps one global resourceVersion; a write that changes nothing does
 *   not, and is not reported by `onChange` (a watch sees no event either);
 * - a conditional write on an old resourceVersion is `409 Conflict`, a missing object `404 NotFound`,
 *   with the API server's messages, as `KubeApiError`s from the same operations;
 * - a Service gets a ClusterIP when created; leaving type LoadBalancer clears its ingress;
 * - a Service that is not the proxy's (`ownsService`: its labels) is neither applied over (409) nor
 *   deleted (`none`), like the real store, which checks the labels and deletes on condition of the
 *   UID and resourceVersion it saw;
 * - like the informer it stands for, it reports Cluster adds, updates and deletes, and Service
 *   updates and deletes (not creations), after the call that made them has returned.
 *
 * What users, clouds and the tests do goes through `put`, `remove`, `putService`, `setIngress`,
 * `removeService` and `failNext`; `events` holds what was recorded. `synced` is true until
 * stop(); a test sets it false for caches that do not follow the API server (a refused watch).
 */
export class FakeClusterStore implements ClusterStore {
  /** Events recorded, oldest first. */
  readonly events: (ClusterEvent & { cluster: string })[] = [];
  /** Whether the caches follow the API server (the real store: both watches established). */
  synced = true;
  private readonly objects = new Map<string, Cluster>();
  private readonly svcs = new Map<string, V1Service>();
  private readonly listeners: ((cluster: string) => void)[] = [];
  private readonly failures = new Map<ClusterStoreCall, unknown[]>();
  private revision = 100;
  private nextIp = 10;
  private uids = 0;

  constructor(private readonly o: { serviceNamespace: string } = { serviceNamespace: 'kubesphere-system' }) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.synced = false;
    return Promise.resolve();
  }

  onChange(fn: (cluster: string) => void): void {
    this.listeners.push(fn);
  }

  cluster(name: string): Cluster | undefined {
    const c = this.objects.get(name);
    return c && clone(c);
  }

  clusters(): readonly Cluster[] {
    return [...this.objects.values()].map(clone);
  }

  applyService(intent: ServiceIntent): Promise<ServiceState> {
    return this.call(
      'applyService',
      `apply patch Service ${intent.metadata.namespace}/${intent.metadata.name}`,
      () => {
        const name = intent.metadata.name;
        const cur = this.svcs.get(name);
        const cluster = intent.metadata.labels[CLUSTER_LABEL] ?? '';
        if (cur && !ownsService(cur, cluster)) throw notOwnedError(intent.metadata.namespace, name, cluster);
        const next: V1Service = {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: {
            ...clone(intent.metadata),
            uid: cur?.metadata?.uid ?? this.uid(),
            resourceVersion: cur?.metadata?.resourceVersion ?? '',
          },
          spec: { ...clone(intent.spec), clusterIP: cur?.spec?.clusterIP ?? `10.96.0.${this.nextIp++}` },
          // Leaving type LoadBalancer clears the ingress at once (the API server's dropTypeDependentFields).
          status:
            intent.spec.type === 'LoadBalancer'
              ? clone(cur?.status ?? { loadBalancer: {} })
              : { loadBalancer: {} },
        };
        const stored = this.write(this.svcs, name, cur, next);
        if (cur && stored !== cur) this.report(intent.metadata.labels[CLUSTER_LABEL]);
        return serviceState(stored);
      },
    );
  }

  deleteService(cluster: string, name: string): Promise<ServiceDeletion> {
    return this.call('deleteService', `delete Service ${this.o.serviceNamespace}/${name}`, () => {
      if (!ownsService(this.svcs.get(name), cluster)) return 'none';
      this.svcs.delete(name);
      this.report(cluster);
      return 'deleted';
    });
  }

  patchConnection(name: string, fields: Connection, resourceVersion?: string): Promise<Cluster> {
    return this.call('patchConnection', `merge patch Cluster ${name}`, () => {
      if (resourceVersion) this.precondition(name, resourceVersion);
      return this.update(name, (c) => {
        c.spec = { ...c.spec, connection: { ...c.spec?.connection, ...clone(fields) } };
      });
    });
  }

  writeConditions(cluster: Cluster, conditions: ClusterCondition[]): Promise<Cluster> {
    const name = cluster.metadata.name;
    return this.call('writeConditions', `merge patch Cluster ${name}`, () => {
      this.precondition(name, cluster.metadata.resourceVersion);
      return this.update(name, (c) => {
        c.status = { ...c.status, conditions: clone(conditions) };
      });
    });
  }

  record(cluster: Cluster, event: ClusterEvent): void {
    this.events.push({ cluster: cluster.metadata.name, ...event });
  }

  // What others do: users, a cloud controller, the tests.

  /** Creates or replaces a Cluster, as `kubectl apply` would; returns it as stored. */
  put(c: Omit<Cluster, 'apiVersion' | 'kind'>): Cluster {
    const name = c.metadata.name;
    const cur = this.objects.get(name);
    const next: Cluster = {
      ...clone(c),
      apiVersion: 'cluster.kubesphere.io/v1alpha1',
      kind: 'Cluster',
      metadata: {
        ...clone(c.metadata),
        uid: cur?.metadata.uid ?? this.uid(),
        resourceVersion: cur?.metadata.resourceVersion ?? '',
      },
    };
    const stored = this.write(this.objects, name, cur, next);
    if (stored !== cur) this.report(name);
    return clone(stored);
  }

  /** Deletes a Cluster (nothing else: like the test bed, the fake runs no garbage collector). */
  remove(name: string): void {
    if (this.objects.delete(name)) this.report(name);
  }

  /** A Service of the cluster as stored: mc-<cluster>, or `name` (e.g. `externalServiceName(cluster)`). */
  service(cluster: string, name = serviceName(cluster)): V1Service | undefined {
    const s = this.svcs.get(name);
    return s && clone(s);
  }

  /**
   * A user's Service, created or updated (e.g. one of the proxy's relabelled; `removeService` first
   * to replace it by a new object): stored as given, with a ClusterIP; reported when it was the
   * proxy's.
   */
  putService(svc: V1Service): V1Service {
    const name = svc.metadata?.name ?? '';
    const cur = this.svcs.get(name);
    const stored = this.write(this.svcs, name, cur, {
      ...clone(svc),
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        ...clone(svc.metadata),
        uid: cur?.metadata?.uid ?? this.uid(),
        namespace: this.o.serviceNamespace,
      },
      spec: { ...clone(svc.spec), clusterIP: cur?.spec?.clusterIP ?? `10.96.0.${this.nextIp++}` },
    });
    this.report(cur?.metadata?.labels?.[CLUSTER_LABEL]);
    return clone(stored);
  }

  /** What a cloud controller does once the load balancer (ext-mc-<cluster>, or `name`) exists. */
  setIngress(cluster: string, ip: string, name = externalServiceName(cluster)): void {
    const s = this.svcs.get(name);
    if (!s) throw new Error(`no Service ${name}`);
    this.write(this.svcs, name, s, {
      ...clone(s),
      status: { loadBalancer: { ingress: [{ ip }] } },
    });
    this.report(cluster);
  }

  /** Deletes mc-<cluster> by hand. */
  removeService(cluster: string): void {
    if (this.svcs.delete(serviceName(cluster))) this.report(cluster);
  }

  /** The next call of `call` fails with `error` (e.g. `statusError(500, …)`), once per call to this. */
  failNext(call: ClusterStoreCall, error: unknown): void {
    this.failures.set(call, [...(this.failures.get(call) ?? []), error]);
  }

  private async call<T>(call: ClusterStoreCall, operation: string, fn: () => T): Promise<T> {
    await Promise.resolve(); // answered asynchronously, as over the network
    try {
      const failure = this.failures.get(call)?.shift();
      if (failure !== undefined) throw failure;
      return fn();
    } catch (e) {
      throw wrapApiError(operation, e);
    }
  }

  /** A merge patch carrying metadata.resourceVersion applies only to that version (a missing Cluster is 404 later). */
  private precondition(name: string, resourceVersion: string | undefined): void {
    const cur = this.objects.get(name);
    if (cur && resourceVersion !== cur.metadata.resourceVersion) {
      throw statusError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on clusters.cluster.kubesphere.io "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, kind: 'clusters.cluster.kubesphere.io' },
      );
    }
  }

  private update(name: string, mutate: (c: Cluster) => void): Cluster {
    const cur = this.objects.get(name);
    if (!cur) throw notFound('clusters.cluster.kubesphere.io', name);
    const next = clone(cur);
    mutate(next);
    const stored = this.write(this.objects, name, cur, next);
    if (stored !== cur) this.report(name);
    return clone(stored);
  }

  /** Stores `next` in place of `cur` with a new resourceVersion, unless nothing changed; returns what is stored. */
  private write<T extends { metadata?: { resourceVersion?: string } }>(
    map: Map<string, T>,
    name: string,
    cur: T | undefined,
    next: T,
  ): T {
    if (cur && !changed(cur, next)) return cur;
    const stored = { ...next, metadata: { ...next.metadata, resourceVersion: this.bump() } };
    map.set(name, stored);
    return stored;
  }

  private bump(): string {
    return String(++this.revision);
  }

  private uid(): string {
    return `00000000-0000-4000-8000-${String(++this.uids).padStart(12, '0')}`;
  }

  private report(cluster: string | undefined): void {
    if (!cluster) return;
    setImmediate(() => {
      for (const fn of this.listeners) fn(cluster);
    });
  }
}

function notFound(resource: string, name: string) {
  return statusError(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource });
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function changed(a: object, b: object): boolean {
  return JSON.stringify(a) !== JSON.stringify(b);
}
