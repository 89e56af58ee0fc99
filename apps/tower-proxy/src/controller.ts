import { createHash } from 'node:crypto';
import { isProxyCluster, type Cluster } from '@knet/cluster-crd';
import {
  constantTimeEqual,
  describeCertificate,
  isSignedBy,
  issueCertificate,
  randomToken,
  renderKubeconfig,
  type CertificateAuthority,
} from '@knet/crypto';
import { WorkQueue, isConflict, isNotFound, kubeconfigTls } from '@knet/k8s';
import { errorMessage, type Logger } from '@knet/runtime';
import type { Hello } from '@knet/tunnel';
import type { ClusterStore } from './cluster-store';
import {
  planCluster,
  planConnection,
  type FailPlan,
  type PlanConfig,
  type ServePlan,
} from './core/cluster-plan';
import { conditionsUpdate, type ConditionInputs } from './core/plan';
import { clientCommonName, type ListenerSpec } from './listeners';
import type { ProxyMetrics } from './metrics';
import type { SessionRegistry } from './sessions';
import type { Authorization } from './tunnel-server';

export interface ControllerOptions extends PlanConfig {
  store: ClusterStore;
  ca: CertificateAuthority;
  registry: SessionRegistry;
  /** The per-cluster listeners (ClusterListeners). */
  listeners: { ensure(spec: ListenerSpec): Promise<void>; remove(cluster: string): Promise<void> };
  metrics: ProxyMetrics;
  logger: Logger;
  /** Client certificates in kubeconfigs are re-issued when they expire sooner than this. */
  renewBeforeMs?: number;
  now?: () => Date;
}

/**
 * What an agent of `cluster` is admitted against: the Cluster object (its UID) and its current
 * token (a digest, so the token itself is not kept in every session).
 */
export function sessionBinding(cluster: Cluster): string {
  const token = cluster.spec?.connection?.token ?? '';
  return `${cluster.metadata.uid ?? ''}/${createHash('sha256').update(token).digest('hex')}`;
}

/**
 * Makes each proxy-type, federated Cluster real: token, ports, Service mc-<name>, certificates,
 * kubeconfig, listeners and conditions. Each reconcile fetches from the store, plans (`planCluster`,
 * `planConnection`: pure) and applies. Also answers "is this hello valid" from the store's cache.
 */
export class ClusterController {
  private readonly queue: WorkQueue;
  private leading = false;
  private readonly serving = new Map<string, { key: string; cert: { certPem: string; keyPem: string } }>();

  constructor(private readonly o: ControllerOptions) {
    this.queue = new WorkQueue((name) => (this.leading ? this.reconcile(name) : Promise.resolve()), {
      logger: o.logger,
    });
    o.store.onChange((cluster) => this.enqueue(cluster));
    o.registry.on('change', (cluster) => this.enqueue(cluster));
  }

  start(): Promise<void> {
    return this.o.store.start();
  }

  /** Writes happen only while leading; on gaining leadership every cluster is reconciled. */
  setLeading(leading: boolean): void {
    this.leading = leading;
    if (leading) for (const c of this.o.store.clusters()) this.enqueue(c.metadata.name);
  }

  async stop(): Promise<void> {
    this.queue.stop();
    await this.o.store.stop();
  }

  private enqueue(name: string): void {
    if (this.leading) this.queue.add(name);
  }

  /** Checks an agent's hello against the cached Cluster, comparing the token in constant time. */
  authorize(h: Hello): Authorization {
    const c = this.o.store.cluster(h.cluster);
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
    return { ok: true, binding: sessionBinding(c) };
  }

  /** One pass over one Cluster: fetch, plan, apply. The work queue runs it while this replica leads. */
  async reconcile(name: string): Promise<void> {
    const cluster = this.o.store.cluster(name);
    try {
      const plan = planCluster(
        { cluster, clusters: this.o.store.clusters(), newToken: randomToken(32) },
        this.o,
      );
      if (plan.action === 'cleanup') await this.cleanup(name, plan.why);
      else {
        this.evictUnbound(plan.cluster);
        if (plan.action === 'fail') await this.fail(plan);
        else await this.serve(plan);
      }
      this.o.metrics.reconciles.inc({ result: 'ok' });
    } catch (e) {
      this.o.metrics.reconciles.inc({ result: 'error' });
      if (cluster)
        this.o.store.record(cluster, {
          type: 'Warning',
          reason: 'ReconcileFailed',
          message: errorMessage(e),
        });
      throw e;
    }
  }

  /**
   * Closes the agent sessions admitted against another Cluster of this name (deleted and
   * re-created: another UID) or another token (rotated): an agent holds only what the Cluster
   * grants now. Runs on every reconcile, before anything that can fail.
   */
  private evictUnbound(cluster: Cluster): void {
    const name = cluster.metadata.name;
    const evicted = this.o.registry.closeUnbound(
      name,
      sessionBinding(cluster),
      'the token was rotated or the Cluster re-created',
    );
    if (evicted === 0) return;
    this.o.logger.info(
      { cluster: name, evicted },
      'agents evicted: admitted with an earlier token or an earlier Cluster of this name',
    );
    this.o.store.record(cluster, {
      type: 'Normal',
      reason: 'AgentsEvicted',
      message: `closed ${evicted} agent session(s) admitted with an earlier token or an earlier Cluster of this name`,
    });
  }

  private async cleanup(name: string, why: string): Promise<void> {
    this.o.registry.closeCluster(name, why);
    await this.o.listeners.remove(name);
    this.serving.delete(name);
    try {
      await this.o.store.deleteService(name);
      this.o.logger.info({ cluster: name, why }, 'cluster cleaned up');
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  private async fail(plan: FailPlan): Promise<void> {
    await this.writeConditions(plan.cluster, plan.status);
    throw new Error(plan.message);
  }

  private async serve(plan: ServePlan): Promise<void> {
    const { cluster, ports } = plan;
    const name = cluster.metadata.name;
    for (const e of plan.events) this.o.store.record(cluster, e);
    // The API server allocates the ClusterIP (and a cloud the LoadBalancer ingress): the endpoints
    // are planned from its answer.
    const service = await this.o.store.applyService(plan.service);
    const next = planConnection(plan, service, this.o);

    const kubeconfig = next.kubeconfigServer
      ? await this.kubeconfigFor(name, next.kubeconfigServer, cluster.spec?.connection?.kubeconfig)
      : undefined;
    await this.o.listeners.ensure({
      cluster: name,
      kubernetesPort: ports.kubernetes,
      kubespherePort: ports.kubesphere,
      serving: await this.servingCert(name, next.servingNames),
      caPem: this.o.ca.certPem,
    });

    // The conditions are written conditionally on the resourceVersion: after our own spec patch it
    // must be the new one, or the write always conflicts (409) and every cluster needs a second pass.
    let current = cluster;
    const patch = { ...next.connection, ...(kubeconfig ? { kubeconfig } : {}) };
    if (Object.keys(patch).length > 0) {
      this.o.logger.info({ cluster: name, fields: Object.keys(patch) }, 'updating cluster connection');
      current = await this.o.store.patchConnection(name, patch);
      if (kubeconfig)
        this.o.store.record(cluster, {
          type: 'Normal',
          reason: 'KubeconfigIssued',
          message: `kubeconfig for ${next.kubeconfigServer} issued`,
        });
      for (const e of next.events) this.o.store.record(cluster, e);
    }
    await this.writeConditions(current, next.status);
  }

  private async writeConditions(cluster: Cluster, status: Omit<ConditionInputs, 'agents'>): Promise<void> {
    const agents = this.o.registry.count(cluster.metadata.name);
    const conditions = conditionsUpdate(cluster, { ...status, agents }, this.now());
    if (!conditions) return;
    try {
      await this.o.store.writeConditions(cluster, conditions);
    } catch (e) {
      // A newer version exists: the store reports it as a change and the cluster is reconciled again.
      if (!isConflict(e)) throw e;
    }
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /** A kubeconfig (base64) for the cluster, or undefined when the current one is still right. */
  private async kubeconfigFor(
    cluster: string,
    server: string,
    current: string | undefined,
  ): Promise<string | undefined> {
    if (current && (await this.kubeconfigStillValid(cluster, server, current))) return undefined;
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

  private async kubeconfigStillValid(cluster: string, server: string, current: string): Promise<boolean> {
    try {
      const tls = kubeconfigTls(Buffer.from(current, 'base64').toString('utf8'));
      if (tls.server !== server || tls.ca !== this.o.ca.certPem) return false;
      const d = describeCertificate(tls.cert);
      if (d.subject !== `CN=${clientCommonName(cluster)}, O=knet-tower`) return false;
      if (d.notAfter.getTime() - this.now().getTime() < (this.o.renewBeforeMs ?? 30 * 86_400_000))
        return false;
      return await isSignedBy(tls.cert, this.o.ca.certPem);
    } catch {
      return false;
    }
  }

  private async servingCert(
    cluster: string,
    names: { dnsNames: string[]; ipAddresses: string[] },
  ): Promise<{ certPem: string; keyPem: string }> {
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
