import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { isProxyCluster, type Cluster, type ClusterCondition } from '@knet/cluster-crd';
import {
  constantTimeEqual,
  issueCertificate,
  randomToken,
  renderKubeconfig,
  type CertificateAuthority,
} from '@knet/crypto';
import { WorkQueue, isConflict, kubeconfigTls } from '@knet/k8s';
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
import {
  conditionsUpdate,
  externalServiceName,
  serviceName,
  withoutTunnelConditions,
  type ConditionInputs,
  type ServiceState,
} from './core/plan';
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
  /**
   * Validity of the certificates the controller issues: the client certificate in each kubeconfig
   * and each listener's serving certificate (default `CERTIFICATE_VALIDITY_DAYS`).
   */
  certificateValidityDays?: number;
  /**
   * A certificate is re-issued when it expires sooner than this (default: a third of the validity).
   * Each Cluster is reconciled again when its first certificate comes due.
   */
  renewBeforeMs?: number;
  /**
   * How long the listener still accepts the kubeconfig a renewal replaced, so that clients switch
   * over without a refusal (default `RENEWAL_OVERLAP_MS`). A kubeconfig removed from the Cluster, or
   * one of an earlier Cluster of the same name, gets no overlap.
   */
  renewalOverlapMs?: number;
  now?: () => Date;
  /** Runs `fn` after `delayMs`; returns a cancel function (tests pass a recording one). */
  schedule?: (fn: () => void, delayMs: number) => () => void;
  /**
   * Clusters reconciled at the same time (default `RECONCILE_CONCURRENCY`); one cluster is never
   * reconciled twice at once. After a start or a failover every Cluster is reconciled, and each
   * pass waits on the API server: one at a time, 1,000 Clusters took a minute and more.
   */
  concurrency?: number;
  /**
   * After this replica starts leading, how long a Cluster without an agent keeps the AgentAvailable
   * it has (default `AGENT_GRACE_PERIOD_MS`): its agents are still redialling after a restart or a
   * failover, and turning every Cluster False, then True again as each agent comes back, is two
   * writes per Cluster and a false alarm for each. Each such Cluster is reconciled again when it ends.
   */
  agentGracePeriodMs?: number;
}

/** How long AgentAvailable is left as it is after this replica starts leading (agents redial). */
export const AGENT_GRACE_PERIOD_MS = 30_000;

/** Clusters reconciled at the same time by default. */
export const RECONCILE_CONCURRENCY = 8;

/** Validity of issued certificates: short, because they are renewed automatically. */
export const CERTIFICATE_VALIDITY_DAYS = 30;
/** How long a replaced kubeconfig keeps working after a renewal. */
export const RENEWAL_OVERLAP_MS = 10 * 60_000;
const DAY_MS = 86_400_000;
/** setTimeout's limit (about 24.8 days); a longer wait is re-planned when it runs out. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function defaultSchedule(fn: () => void, delayMs: number): () => void {
  const t = setTimeout(fn, delayMs);
  t.unref();
  return () => clearTimeout(t);
}

/** A reconcile that was under way when this replica stopped leading: it stops before its next write. */
class SteppedDown extends Error {
  constructor() {
    super('this replica stopped leading');
  }
}

/** The client certificate in the kubeconfig a listener accepts. */
interface ClientCert {
  fingerprint: string;
  notAfter: Date;
}

/**
 * What the controller reads of a certificate, parsed once by node's native X.509 parser (the
 * JavaScript ASN.1 of @knet/crypto's describeCertificate, certificateFingerprintSha256 and
 * isSignedBy cost ~18 ms per kubeconfig together: 18 s of a restart with 1,000 Clusters).
 * `fingerprint` is the SHA-256 of the DER, colon-separated upper-case hex, as
 * certificateFingerprintSha256 writes it.
 */
function readCertificate(pem: string): { x509: X509Certificate; fingerprint: string; notAfter: Date } {
  const x509 = new X509Certificate(pem);
  return { x509, fingerprint: x509.fingerprint256, notAfter: new Date(x509.validTo) };
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
 * Makes each proxy-type, federated Cluster real: token, ports, Services (mc-<name>, and ext-mc-<name>
 * with external access), certificates,
 * kubeconfig, listeners and conditions. Each reconcile fetches from the store, plans (`planCluster`,
 * `planConnection`: pure) and applies. Also answers "is this hello valid" from the store's cache.
 */
export class ClusterController {
  private readonly queue: WorkQueue;
  private leading = false;
  /** Counts losses of leadership: a reconcile begun under an earlier term writes nothing more. */
  private term = 0;
  private readonly serving = new Map<
    string,
    { key: string; cert: { certPem: string; keyPem: string }; notAfter: Date }
  >();
  /** The kubeconfig certificate a renewal replaced, accepted until `until` (Cluster UID-bound). */
  private readonly replaced = new Map<string, { uid: string; fingerprint: string; until: Date }>();
  /**
   * What `currentClientCert` last found in each cluster's kubeconfig, for that kubeconfig and
   * server: a pass (and there is one each time an agent comes or goes) does not parse the YAML and
   * the certificate and verify its signature again while they are the same.
   */
  private readonly clientCerts = new Map<
    string,
    { kubeconfig: string; server: string; cert: ClientCert | undefined }
  >();
  /** Cancels of the pending renewal requeues, per cluster. */
  private readonly renewals = new Map<string, () => void>();
  /**
   * Ports planned for clusters whose Cluster in the store's cache does not show them yet (the
   * patch is under way, or written and not seen yet): passes run in parallel, and two of them
   * must not plan the same free port.
   */
  private readonly claims = new Map<string, number>();
  private readonly validityDays: number;
  private readonly renewBeforeMs: number;
  private readonly caPublicKey: KeyObject;
  /** Until when (ms, this controller's clock) AgentAvailable is not turned False: see agentGracePeriodMs. */
  private graceUntil = 0;

  constructor(private readonly o: ControllerOptions) {
    this.queue = new WorkQueue((name) => (this.leading ? this.reconcile(name) : Promise.resolve()), {
      logger: o.logger,
      concurrency: o.concurrency ?? RECONCILE_CONCURRENCY,
    });
    this.caPublicKey = new X509Certificate(o.ca.certPem).publicKey;
    o.store.onChange((cluster) => this.enqueue(cluster));
    o.registry.on('change', (cluster) => this.enqueue(cluster));
    this.validityDays = o.certificateValidityDays ?? CERTIFICATE_VALIDITY_DAYS;
    this.renewBeforeMs = o.renewBeforeMs ?? (this.validityDays * DAY_MS) / 3;
    // A certificate due as soon as it is issued would be re-issued at every pass, back to back.
    if (!(this.validityDays > 0) || !(this.renewBeforeMs < this.validityDays * DAY_MS))
      throw new RangeError(
        `certificates must be renewed (${this.renewBeforeMs} ms before expiry) sooner than they expire (${this.validityDays} days)`,
      );
  }

  start(): Promise<void> {
    return this.o.store.start();
  }

  /** Writes happen only while leading; on gaining leadership every cluster is reconciled. */
  setLeading(leading: boolean): void {
    this.leading = leading;
    if (leading) {
      this.graceUntil = this.now().getTime() + (this.o.agentGracePeriodMs ?? AGENT_GRACE_PERIOD_MS);
      for (const c of this.o.store.clusters()) this.enqueue(c.metadata.name);
    } else {
      this.term++;
      this.cancelRenewals();
    }
  }

  async stop(): Promise<void> {
    this.term++;
    this.cancelRenewals();
    this.queue.stop();
    await this.o.store.stop();
  }

  /** Reconciles `cluster` again at `at` (its first certificate renewal, or the end of an overlap). */
  private requeueAt(cluster: string, at: Date): void {
    this.renewals.get(cluster)?.();
    const delay = Math.min(Math.max(0, at.getTime() - this.now().getTime()), MAX_TIMER_MS);
    const schedule = this.o.schedule ?? defaultSchedule;
    this.renewals.set(
      cluster,
      schedule(() => {
        this.renewals.delete(cluster);
        this.enqueue(cluster);
      }, delay),
    );
  }

  private cancelRenewals(): void {
    for (const cancel of this.renewals.values()) cancel();
    this.renewals.clear();
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
    const term = this.term;
    // Checked before each write and each listener start: a replica that lost the Lease meanwhile
    // (its agents and listeners are closed) must not write stale conditions or start listeners.
    const leading = () => {
      if (this.term !== term) throw new SteppedDown();
    };
    try {
      const plan = planCluster(
        { cluster, clusters: this.withClaims(name), newToken: randomToken(32) },
        this.o,
      );
      // Claimed before the first await: a pass that starts meanwhile plans around it.
      if (
        plan.action === 'serve' &&
        plan.ports.kubernetes !== cluster?.spec?.connection?.kubernetesAPIServerPort
      )
        this.claims.set(name, plan.ports.kubernetes);
      else this.claims.delete(name);
      if (plan.action === 'cleanup') await this.cleanup(name, plan.why, cluster, leading);
      else {
        this.evictUnbound(plan.cluster);
        if (plan.action === 'fail') await this.fail(plan, leading);
        else if (plan.action === 'serve') await this.serve(plan, leading);
      }
      this.o.metrics.reconciles.inc({ result: 'ok' });
    } catch (e) {
      if (e instanceof SteppedDown) {
        this.o.logger.info({ cluster: name }, 'reconcile abandoned: this replica stopped leading');
        return;
      }
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
   * The cached Clusters, the others' with the ports claimed for them and not in the cache yet.
   * A claim the cache has caught up with (or whose Cluster is gone) is dropped.
   */
  private withClaims(name: string): readonly Cluster[] {
    const clusters = this.o.store.clusters();
    if (this.claims.size === 0) return clusters;
    for (const [n, port] of this.claims) {
      const c = this.o.store.cluster(n);
      if (!c || c.spec?.connection?.kubernetesAPIServerPort === port) this.claims.delete(n);
    }
    return clusters.map((c) => {
      const port = this.claims.get(c.metadata.name);
      if (port === undefined || c.metadata.name === name) return c;
      return {
        ...c,
        spec: { ...c.spec, connection: { ...c.spec?.connection, kubernetesAPIServerPort: port } },
      };
    });
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

  /**
   * Drops what served the cluster. A Cluster that still exists (its type changed, or it left the
   * federation) also loses the conditions that describe its tunnel, which nobody keeps true now.
   */
  private async cleanup(
    name: string,
    why: string,
    cluster: Cluster | undefined,
    leading: () => void,
  ): Promise<void> {
    this.o.registry.closeCluster(name, why);
    await this.o.listeners.remove(name);
    this.serving.delete(name);
    this.replaced.delete(name);
    this.clientCerts.delete(name);
    this.renewals.get(name)?.();
    this.renewals.delete(name);
    leading();
    const deleted = await Promise.all(
      [serviceName(name), externalServiceName(name)].map((s) => this.o.store.deleteService(name, s)),
    );
    if (deleted.includes('deleted')) this.o.logger.info({ cluster: name, why }, 'cluster cleaned up');
    const conditions = cluster && withoutTunnelConditions(cluster);
    if (cluster && conditions) {
      leading();
      await this.writeConditionsOnce(cluster, conditions);
    }
  }

  private async fail(plan: FailPlan, leading: () => void): Promise<void> {
    leading();
    await this.writeConditions(plan.cluster, plan.status);
    throw new Error(plan.message);
  }

  private async serve(plan: ServePlan, leading: () => void): Promise<void> {
    const { cluster, ports } = plan;
    const name = cluster.metadata.name;
    for (const e of plan.events) this.o.store.record(cluster, e);
    // The API server allocates the ClusterIP (and a cloud the LoadBalancer ingress): the endpoints
    // are planned from its answer. Without external access the cluster has no LoadBalancer.
    leading();
    const [internal, external] = await Promise.all([
      this.o.store.applyService(plan.service),
      plan.external
        ? this.o.store.applyService(plan.external)
        : this.o.store.deleteService(name, externalServiceName(name)).then(() => ({}) as ServiceState),
    ]);
    const service: ServiceState = {
      ...(internal.clusterIP ? { clusterIP: internal.clusterIP } : {}),
      ...(external.ingress ? { ingress: external.ingress } : {}),
    };
    const next = planConnection(plan, service, this.o);

    const issued = next.kubeconfigServer
      ? await this.kubeconfigFor(cluster, next.kubeconfigServer)
      : undefined;
    const kubeconfig = issued?.kubeconfig;
    const serving = await this.servingCert(name, next.servingNames);
    leading();
    try {
      await this.o.listeners.ensure({
        cluster: name,
        kubernetesPort: ports.kubernetes,
        kubespherePort: ports.kubesphere,
        serving: serving.cert,
        caPem: this.o.ca.certPem,
        clientCertificates: issued ? this.acceptedClientCerts(cluster, issued) : [],
      });
    } catch (e) {
      // Not initialized: the Cluster's endpoints lead nowhere until a listener runs.
      leading();
      await this.writeConditions(cluster, {
        ...next.status,
        initialized: { ok: false, reason: 'ListenerFailed', message: errorMessage(e) },
      });
      throw e;
    }
    leading();
    this.requeueAtNextRenewal(name, [serving.notAfter, issued?.client.notAfter]);

    // The conditions are written conditionally on the resourceVersion: after our own spec patch it
    // must be the new one, or the write always conflicts (409) and every cluster needs a second pass.
    let current = cluster;
    const patch = { ...next.connection, ...(kubeconfig ? { kubeconfig } : {}) };
    if (Object.keys(patch).length > 0) {
      this.o.logger.info({ cluster: name, fields: Object.keys(patch) }, 'updating cluster connection');
      leading();
      try {
        current = await this.o.store.patchConnection(name, patch, cluster.metadata.resourceVersion);
      } catch (e) {
        // The Cluster changed since this pass planned it (a token rotated, a kubeconfig removed, the
        // Cluster re-created): the store reports the change, and the next pass plans on it.
        if (isConflict(e)) return;
        throw e;
      }
      if (kubeconfig)
        this.o.store.record(cluster, {
          type: 'Normal',
          reason: 'KubeconfigIssued',
          message: `kubeconfig for ${next.kubeconfigServer} issued`,
        });
      for (const e of next.events) this.o.store.record(cluster, e);
    }
    leading();
    await this.writeConditions(current, next.status);
  }

  private async writeConditions(cluster: Cluster, status: Omit<ConditionInputs, 'agents'>): Promise<void> {
    const name = cluster.metadata.name;
    const agents = this.awaitingAgents(name) ? undefined : this.o.registry.count(name);
    const conditions = conditionsUpdate(cluster, { ...status, agents }, this.now());
    if (conditions) await this.writeConditionsOnce(cluster, conditions);
  }

  /** Writes conditions on condition of `cluster`'s resourceVersion; a conflict is left to the next pass. */
  private async writeConditionsOnce(cluster: Cluster, conditions: ClusterCondition[]): Promise<void> {
    try {
      await this.o.store.writeConditions(cluster, conditions);
    } catch (e) {
      // A newer version exists: the store reports it as a change and the cluster is reconciled again.
      if (!isConflict(e)) throw e;
    }
  }

  /** Whether the cluster has no agent yet and its agents may still be redialling (the grace period). */
  private awaitingAgents(cluster: string): boolean {
    return this.o.registry.count(cluster) === 0 && this.now().getTime() < this.graceUntil;
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /**
   * The client certificate the cluster's kubeconfig holds once this pass is written, and the
   * kubeconfig (base64) to write when the current one is missing, wrong or due for renewal.
   */
  private async kubeconfigFor(
    cluster: Cluster,
    server: string,
  ): Promise<{ client: ClientCert; kubeconfig?: string; renewed?: ClientCert }> {
    const name = cluster.metadata.name;
    const valid = this.currentClientCert(name, server, cluster.spec?.connection?.kubeconfig);
    if (valid && valid.notAfter.getTime() - this.now().getTime() >= this.renewBeforeMs)
      return { client: valid };
    const client = await issueCertificate(this.o.ca, {
      commonName: clientCommonName(name),
      organizations: ['knet-tower'],
      usage: 'client',
      validityDays: this.validityDaysFromNow(),
    });
    const yaml = renderKubeconfig({
      name,
      server,
      caPem: this.o.ca.certPem,
      credentials: { clientCertificatePem: client.certPem, clientKeyPem: client.keyPem },
    });
    const { fingerprint, notAfter } = readCertificate(client.certPem);
    return {
      client: { fingerprint, notAfter },
      kubeconfig: Buffer.from(yaml).toString('base64'),
      // Only a renewal of a still valid kubeconfig for this very Cluster gets an overlap.
      ...(valid && valid.notAfter > this.now() ? { renewed: valid } : {}),
    };
  }

  /**
   * The client certificate of `kubeconfig` when it is one this proxy issued (signed by its CA)
   * for this cluster and server; read once per kubeconfig and server (`clientCerts`).
   */
  private currentClientCert(
    cluster: string,
    server: string,
    kubeconfig: string | undefined,
  ): ClientCert | undefined {
    if (!kubeconfig) return undefined;
    const seen = this.clientCerts.get(cluster);
    if (seen?.kubeconfig === kubeconfig && seen.server === server) return seen.cert;
    const cert = this.readClientCert(cluster, server, kubeconfig);
    this.clientCerts.set(cluster, { kubeconfig, server, cert });
    return cert;
  }

  /** Parses the kubeconfig and its certificate, and checks the certificate's subject and signature. */
  private readClientCert(cluster: string, server: string, kubeconfig: string): ClientCert | undefined {
    try {
      const tls = kubeconfigTls(Buffer.from(kubeconfig, 'base64').toString('utf8'));
      if (tls.server !== server || tls.ca !== this.o.ca.certPem || !tls.cert) return undefined;
      const { x509, fingerprint, notAfter } = readCertificate(tls.cert);
      // Node writes the subject one attribute a line: exactly CN=<client CN>, O=knet-tower.
      if (x509.subject !== `CN=${clientCommonName(cluster)}\nO=knet-tower`) return undefined;
      if (!x509.verify(this.caPublicKey)) return undefined;
      return { fingerprint, notAfter };
    } catch {
      return undefined;
    }
  }

  /**
   * The fingerprints the cluster's kubernetes listener accepts: the certificate of the kubeconfig
   * being written (or kept), and for `renewalOverlapMs` after a renewal the one it replaced.
   */
  private acceptedClientCerts(
    cluster: Cluster,
    issued: { client: ClientCert; renewed?: ClientCert },
  ): string[] {
    const name = cluster.metadata.name;
    const uid = cluster.metadata.uid ?? '';
    const now = this.now();
    if (issued.renewed) {
      const overlap = this.o.renewalOverlapMs ?? RENEWAL_OVERLAP_MS;
      const until = new Date(Math.min(now.getTime() + overlap, issued.renewed.notAfter.getTime()));
      this.replaced.set(name, { uid, fingerprint: issued.renewed.fingerprint, until });
    }
    const r = this.replaced.get(name);
    if (!r || r.uid !== uid || r.until <= now || r.fingerprint === issued.client.fingerprint) {
      this.replaced.delete(name);
      return [issued.client.fingerprint];
    }
    return [issued.client.fingerprint, r.fingerprint];
  }

  /** Requeues the cluster when its first certificate comes due (or an overlap or the agents' grace period ends). */
  private requeueAtNextRenewal(cluster: string, notAfters: (Date | undefined)[]): void {
    const times = notAfters
      .filter((d): d is Date => d !== undefined)
      .map((d) => d.getTime() - this.renewBeforeMs);
    const overlapEnd = this.replaced.get(cluster)?.until.getTime();
    if (overlapEnd !== undefined) times.push(overlapEnd);
    // AgentAvailable is left as it is until then: decided when the grace period ends.
    if (this.awaitingAgents(cluster)) times.push(this.graceUntil);
    this.requeueAt(cluster, new Date(Math.min(...times)));
  }

  /**
   * The validity to ask for so that a certificate expires `validityDays` after this controller's
   * clock (`now`), not the machine's: the same thing in production, and in tests the renewals
   * follow the injected clock.
   */
  private validityDaysFromNow(): number {
    return this.validityDays + (this.now().getTime() - Date.now()) / DAY_MS;
  }

  /** The listener's serving certificate: cached while its names stay the same and it is not due. */
  private async servingCert(
    cluster: string,
    names: { dnsNames: string[]; ipAddresses: string[] },
  ): Promise<{ cert: { certPem: string; keyPem: string }; notAfter: Date }> {
    const key = JSON.stringify(names);
    const cached = this.serving.get(cluster);
    if (cached?.key === key && cached.notAfter.getTime() - this.now().getTime() >= this.renewBeforeMs)
      return cached;
    const cert = await issueCertificate(this.o.ca, {
      commonName: `mc-${cluster}`,
      ...names,
      usage: 'server',
      validityDays: this.validityDaysFromNow(),
    });
    const entry = { key, cert, notAfter: readCertificate(cert.certPem).notAfter };
    this.serving.set(cluster, entry);
    return entry;
  }
}
