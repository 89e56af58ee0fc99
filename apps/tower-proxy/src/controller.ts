import { CoreV1Api, KubeConfig, type KubernetesListObject, type V1Service } from '@kubernetes/client-node';
import {
  CLUSTER_API_VERSION,
  CLUSTERS_PATH,
  isProxyCluster,
  type Cluster,
  type Connection,
} from '@knet/cluster-crd';
import {
  constantTimeEqual,
  describeCertificate,
  isSignedBy,
  issueCertificate,
  randomToken,
  renderKubeconfig,
  type CertificateAuthority,
} from '@knet/crypto';
import {
  EventRecorder,
  ResilientInformer,
  WorkQueue,
  isNotFound,
  kubeRequest,
  patchObject,
  wrapApiError,
} from '@knet/k8s';
import type { Logger } from '@knet/runtime';
import type { Hello } from '@knet/tunnel';
import {
  CLUSTER_LABEL,
  MANAGED_SELECTOR,
  allocatePorts,
  desiredConditions,
  desiredService,
  endpoints,
  lbAnnotations,
  serviceName,
  servingNames,
  type PortRange,
  type Ports,
  type ServiceState,
} from './core/plan';
import { clientCommonName, type ClusterListeners } from './listeners';
import type { ProxyMetrics } from './metrics';
import type { SessionRegistry } from './sessions';
import type { Authorization } from './tunnel-server';

export interface ControllerOptions {
  kc: KubeConfig;
  ca: CertificateAuthority;
  registry: SessionRegistry;
  listeners: ClusterListeners;
  metrics: ProxyMetrics;
  logger: Logger;
  serviceNamespace: string;
  serviceSelector: Record<string, string>;
  publishAddress?: string;
  portRange: PortRange;
  /** Client certificates in kubeconfigs are re-issued when they expire sooner than this. */
  renewBeforeMs?: number;
  now?: () => Date;
}

const FIELD_MANAGER = 'tower-proxy';

/**
 * Watches Clusters and makes each proxy-type, federated one real: token, ports, Service mc-<name>,
 * certificates, kubeconfig, listeners and conditions. Also answers "is this hello valid" from its cache.
 */
export class ClusterController {
  private readonly informer: ResilientInformer<Cluster>;
  /** The mc-<cluster> Services: a change (LoadBalancer ingress, deletion by hand) re-reconciles the cluster. */
  private readonly services: ResilientInformer<V1Service>;
  private readonly queue: WorkQueue;
  private readonly events: EventRecorder;
  private leading = false;
  private readonly serving = new Map<string, { key: string; cert: { certPem: string; keyPem: string } }>();

  constructor(private readonly o: ControllerOptions) {
    this.queue = new WorkQueue((name) => this.reconcile(name), { logger: o.logger });
    this.events = new EventRecorder(o.kc, 'tower-proxy', { logger: o.logger });
    this.informer = new ResilientInformer({
      kc: o.kc,
      path: CLUSTERS_PATH,
      list: () => kubeRequest<KubernetesListObject<Cluster>>(o.kc, { method: 'GET', path: CLUSTERS_PATH }),
      onAdd: (c) => this.enqueue(c.metadata.name),
      onUpdate: (c) => this.enqueue(c.metadata.name),
      onDelete: (c) => this.enqueue(c.metadata.name),
      logger: o.logger,
    });
    const core = o.kc.makeApiClient(CoreV1Api);
    const owner = (svc: V1Service) => svc.metadata?.labels?.[CLUSTER_LABEL];
    this.services = new ResilientInformer<V1Service>({
      kc: o.kc,
      path: `/api/v1/namespaces/${o.serviceNamespace}/services`,
      labelSelector: MANAGED_SELECTOR,
      list: () =>
        core.listNamespacedService({ namespace: o.serviceNamespace, labelSelector: MANAGED_SELECTOR }),
      onUpdate: (svc) => {
        const c = owner(svc);
        if (c) this.enqueue(c);
      },
      onDelete: (svc) => {
        const c = owner(svc);
        if (c) this.enqueue(c);
      },
      logger: o.logger,
    });
    o.registry.on('change', (cluster) => this.enqueue(cluster));
  }

  async start(): Promise<void> {
    await Promise.all([this.informer.start(), this.services.start()]);
    await Promise.all([this.informer.synced, this.services.synced]);
  }

  /** Writes happen only while leading; on gaining leadership every cluster is reconciled. */
  setLeading(leading: boolean): void {
    this.leading = leading;
    if (leading) for (const c of this.informer.list()) this.enqueue(c.metadata.name);
  }

  async stop(): Promise<void> {
    this.queue.stop();
    await Promise.all([this.informer.stop(), this.services.stop()]);
  }

  /** Resolves when no reconcile is queued or running (for tests). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private enqueue(name: string): void {
    if (this.leading) this.queue.add(name);
  }

  /** Checks an agent's hello against the cached Cluster, comparing the token in constant time. */
  authorize(h: Hello): Authorization {
    const c = this.informer.get(h.cluster);
    if (!c)
      return {
        ok: false,
        reason: 'unknown-cluster',
        message: `no Cluster named ${h.cluster} on the host cluster`,
      };
    if (!isProxyCluster(c)) {
      return {
        ok: false,
        reason: 'not-a-proxy-cluster',
        message: `Cluster ${h.cluster} is not of connection type proxy with joinFederation=true`,
      };
    }
    const token = c.spec?.connection?.token ?? '';
    if (!token || !constantTimeEqual(token, h.token)) {
      return {
        ok: false,
        reason: 'bad-token',
        message: `the token does not match Cluster ${h.cluster}'s spec.connection.token`,
      };
    }
    return { ok: true };
  }

  private async reconcile(name: string): Promise<void> {
    if (!this.leading) return;
    const cluster = this.informer.get(name);
    try {
      if (!cluster || cluster.metadata.deletionTimestamp || !isProxyCluster(cluster)) {
        await this.cleanup(name, cluster ? 'no longer a proxy cluster' : 'deleted');
      } else {
        await this.reconcileProxyCluster(cluster);
      }
      this.o.metrics.reconciles.inc({ result: 'ok' });
    } catch (e) {
      this.o.metrics.reconciles.inc({ result: 'error' });
      if (cluster) void this.events.warning(cluster, 'ReconcileFailed', (e as Error).message);
      throw e;
    }
  }

  private async cleanup(name: string, why: string): Promise<void> {
    this.o.registry.closeCluster(name, why);
    await this.o.listeners.remove(name);
    this.serving.delete(name);
    try {
      await kubeRequest(this.o.kc, {
        method: 'DELETE',
        path: `/api/v1/namespaces/${this.o.serviceNamespace}/services/${serviceName(name)}`,
      });
      this.o.logger.info({ cluster: name, why }, 'cluster cleaned up');
    } catch (e) {
      if (!isNotFound(e)) throw wrapApiError(`delete Service ${serviceName(name)}`, e);
    }
  }

  private async reconcileProxyCluster(cluster: Cluster): Promise<void> {
    const name = cluster.metadata.name;
    const now = this.o.now?.() ?? new Date();
    const conn: Connection = { ...cluster.spec?.connection };
    const patch: Connection = {};

    if (!conn.token) patch.token = randomToken(32);

    let ports: Ports;
    try {
      ports = allocatePorts(cluster, this.informer.list(), this.o.portRange);
    } catch (e) {
      await this.writeStatus(
        cluster,
        { ok: false, reason: 'NoFreePort', message: (e as Error).message },
        undefined,
      );
      throw e;
    }
    if (conn.kubernetesAPIServerPort !== ports.kubernetes) patch.kubernetesAPIServerPort = ports.kubernetes;
    if (conn.kubesphereAPIServerPort !== ports.kubesphere) patch.kubesphereAPIServerPort = ports.kubesphere;

    const lb = lbAnnotations(cluster);
    if (!lb.ok) void this.events.warning(cluster, 'InvalidAnnotation', lb.message);
    const svc = await patchObject<V1Service>(
      this.o.kc,
      { apiVersion: 'v1', kind: 'Service', name: serviceName(name), namespace: this.o.serviceNamespace },
      desiredService(
        cluster,
        ports,
        { namespace: this.o.serviceNamespace, selector: this.o.serviceSelector },
        lb.ok ? lb.annotations : {},
      ),
      'apply',
      { fieldManager: FIELD_MANAGER, force: true },
    );
    const ingress = svc.status?.loadBalancer?.ingress?.[0];
    const state: ServiceState = {
      ...(svc.spec?.clusterIP ? { clusterIP: svc.spec.clusterIP } : {}),
      ...(ingress?.ip || ingress?.hostname ? { ingress: (ingress.ip ?? ingress.hostname) as string } : {}),
    };

    const ep = endpoints(ports, state, this.o.publishAddress);
    for (const k of [
      'kubernetesAPIEndpoint',
      'kubesphereAPIEndpoint',
      'externalKubernetesAPIEndpoint',
    ] as const) {
      if (ep[k] !== undefined && conn[k] !== ep[k]) patch[k] = ep[k];
    }

    if (ep.kubernetesAPIEndpoint) {
      const kubeconfig = await this.kubeconfigFor(name, ep.kubernetesAPIEndpoint, conn.kubeconfig, now);
      if (kubeconfig !== undefined) patch.kubeconfig = kubeconfig;
    }

    await this.o.listeners.ensure({
      cluster: name,
      kubernetesPort: ports.kubernetes,
      kubespherePort: ports.kubesphere,
      serving: await this.servingCert(name, state),
      caPem: this.o.ca.certPem,
    });

    // The status write is conditional on resourceVersion: after our own spec patch it must use the
    // new one, or it always conflicts (409) and every cluster needs a second reconcile.
    let current = cluster;
    if (Object.keys(patch).length > 0) {
      const changed = Object.keys(patch).filter((k) => k !== 'token' && k !== 'kubeconfig');
      this.o.logger.info({ cluster: name, fields: Object.keys(patch) }, 'updating cluster connection');
      current = await patchObject<Cluster>(
        this.o.kc,
        { apiVersion: CLUSTER_API_VERSION, kind: 'Cluster', name },
        { spec: { connection: patch } },
        'merge',
      );
      if (patch.kubeconfig)
        void this.events.normal(
          cluster,
          'KubeconfigIssued',
          `kubeconfig for ${ep.kubernetesAPIEndpoint} issued`,
        );
      if (changed.length) void this.events.normal(cluster, 'ConnectionUpdated', `set ${changed.join(', ')}`);
    }
    await this.writeStatus(
      current,
      { ok: true },
      {
        enabled: cluster.spec?.externalKubeAPIEnabled === true,
        ...(state.ingress ? { ingress: state.ingress } : {}),
        ...(lb.ok ? {} : { annotationError: lb.message }),
      },
    );
  }

  private async writeStatus(
    cluster: Cluster,
    initialized: { ok: true } | { ok: false; reason: string; message: string },
    external: { enabled: boolean; ingress?: string; annotationError?: string } | undefined,
  ): Promise<void> {
    const now = this.o.now?.() ?? new Date();
    const conditions = desiredConditions(
      cluster,
      {
        initialized,
        agents: this.o.registry.count(cluster.metadata.name),
        ...(external ? { external } : {}),
      },
      now,
    );
    if (JSON.stringify(conditions) === JSON.stringify(cluster.status?.conditions ?? [])) return;
    // KubeSphere's Cluster has no status sub-resource: status is written on the object itself.
    await patchObject(
      this.o.kc,
      { apiVersion: CLUSTER_API_VERSION, kind: 'Cluster', name: cluster.metadata.name },
      { metadata: { resourceVersion: cluster.metadata.resourceVersion }, status: { conditions } },
      'merge',
    ).catch((e: unknown) => {
      // A newer version exists: the informer will bring it and we will write again.
      if ((e as { decoded?: { code?: number } }).decoded?.code === 409) return;
      throw e;
    });
  }

  /** A kubeconfig (base64) for the cluster, or undefined when the current one is still right. */
  private async kubeconfigFor(
    cluster: string,
    server: string,
    current: string | undefined,
    now: Date,
  ): Promise<string | undefined> {
    if (current && (await this.kubeconfigStillValid(cluster, server, current, now))) return undefined;
    const client = await issueCertificate(this.o.ca, {
      commonName: clientCommonName(cluster),
      organizations: ['knet-tower'],
      usage: 'client',
      validityDays: 365,
    });
    const yaml = renderKubeconfig({
      name: cluster,
      server,
      caPem: this.o.ca.certPem,
      credentials: { clientCertificatePem: client.certPem, clientKeyPem: client.keyPem },
    });
    return Buffer.from(yaml).toString('base64');
  }

  private async kubeconfigStillValid(
    cluster: string,
    server: string,
    current: string,
    now: Date,
  ): Promise<boolean> {
    try {
      const kc = new KubeConfig();
      kc.loadFromString(Buffer.from(current, 'base64').toString('utf8'));
      const c = kc.getCurrentCluster();
      const u = kc.getCurrentUser();
      if (!c || !u?.certData || c.server !== server) return false;
      if (Buffer.from(c.caData ?? '', 'base64').toString() !== this.o.ca.certPem) return false;
      const certPem = Buffer.from(u.certData, 'base64').toString();
      const d = describeCertificate(certPem);
      if (d.subject !== `CN=${clientCommonName(cluster)}, O=knet-tower`) return false;
      if (d.notAfter.getTime() - now.getTime() < (this.o.renewBeforeMs ?? 30 * 86_400_000)) return false;
      return await isSignedBy(certPem, this.o.ca.certPem);
    } catch {
      return false;
    }
  }

  private async servingCert(
    cluster: string,
    svc: ServiceState,
  ): Promise<{ certPem: string; keyPem: string }> {
    const names = servingNames(cluster, this.o.serviceNamespace, svc, this.o.publishAddress);
    const key = JSON.stringify(names);
    const cached = this.serving.get(cluster);
    if (cached?.key === key) return cached.cert;
    const cert = await issueCertificate(this.o.ca, {
      commonName: `mc-${cluster}`,
      ...names,
      usage: 'server',
      validityDays: 365,
    });
    this.serving.set(cluster, { key, cert });
    return cert;
  }
}
