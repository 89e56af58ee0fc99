/**
 * Watches and queues: which change wakes which object, and when an object is looked at again.
 * PacketClusters wake on themselves and their Cluster; PacketMachines on themselves, their Machine
 * (the bootstrap data secret appears there), their Cluster (paused, infrastructure provisioned)
 * and their PacketCluster (the endpoint). A reconcile that asks to look again later (a provisioning
 * device, a rate limit) is re-queued after that long; everything is re-queued every sync period.
 * One that the Metal API told to wait (429, 503, no answer) is held off until then: what wakes it
 * meanwhile — the watch event of its own condition, a resync, a change of its Cluster — waits too.
 */
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import {
  BOOTSTRAP_API_VERSION,
  CAPI_GROUP,
  CAPI_VERSION,
  CLUSTER_NAME_LABEL,
  INFRA_API_VERSION,
  type CapiCluster,
  type CapiMachine,
  type PacketCluster,
  type PacketKubeadmConfig,
  type PacketMachine,
} from '@knet/capi';
import { ResilientInformer, WorkQueue, kubeRequest } from '@knet/k8s';
import type { Logger } from '@knet/runtime';
import type { ReconcileResult } from './machine-reconciler';

export const WATCH_FILTER_LABEL = 'cluster.x-k8s.io/watch-filter';

export interface ControllerOptions {
  kc: KubeConfig;
  namespace?: string;
  watchFilter?: string;
  syncPeriodMs: number;
  clusterConcurrency: number;
  machineConcurrency: number;
  reconcileCluster: (namespace: string, name: string) => Promise<ReconcileResult>;
  reconcileMachine: (namespace: string, name: string) => Promise<ReconcileResult>;
  /** The bootstrap provider (PacketKubeadmConfig). */
  reconcileBootstrap: (namespace: string, name: string) => Promise<ReconcileResult>;
  bootstrapConcurrency: number;
  /** Each pass, for metrics. */
  observe?: (kind: Kind, seconds: number, outcome: 'ok' | 'error') => void;
  logger: Logger;
}

export type Kind = 'PacketCluster' | 'PacketMachine' | 'PacketKubeadmConfig';

export class Controller {
  private readonly informers: ResilientInformer<KubernetesObject>[] = [];
  private readonly queues: Record<Kind, WorkQueue>;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** `<kind>/<key>` → until when nothing may reconcile it (`holdOff` results). */
  private readonly holds = new Map<string, number>();
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly packetMachines: ResilientInformer<PacketMachine>;
  private readonly packetClusters: ResilientInformer<PacketCluster>;
  private readonly configs: ResilientInformer<PacketKubeadmConfig>;
  private stopped = false;

  constructor(private readonly o: ControllerOptions) {
    const wrap =
      (kind: Kind, fn: (ns: string, name: string) => Promise<ReconcileResult>) => async (key: string) => {
        const [ns, name] = split(key);
        // Held off (the API asked to wait): whatever woke it — an event, a resync, a change that
        // came while the last pass ran — it runs when the wait is over, not before.
        const id = `${kind}/${key}`;
        const heldFor = (this.holds.get(id) ?? 0) - Date.now();
        if (heldFor > 0) {
          this.later(kind, key, heldFor);
          return;
        }
        const started = performance.now();
        try {
          const r = await fn(ns, name);
          o.observe?.(kind, (performance.now() - started) / 1000, 'ok');
          if (r.holdOff && r.requeueAfterMs !== undefined) this.holds.set(id, Date.now() + r.requeueAfterMs);
          else this.holds.delete(id);
          if (r.requeueAfterMs !== undefined) this.later(kind, key, r.requeueAfterMs);
        } catch (e) {
          o.observe?.(kind, (performance.now() - started) / 1000, 'error');
          throw e;
        }
      };
    this.queues = {
      PacketCluster: new WorkQueue(wrap('PacketCluster', o.reconcileCluster), {
        logger: o.logger,
        concurrency: o.clusterConcurrency,
        baseDelayMs: 1000,
        maxDelayMs: 300_000,
      }),
      PacketMachine: new WorkQueue(wrap('PacketMachine', o.reconcileMachine), {
        logger: o.logger,
        concurrency: o.machineConcurrency,
        baseDelayMs: 1000,
        maxDelayMs: 300_000,
      }),
      PacketKubeadmConfig: new WorkQueue(wrap('PacketKubeadmConfig', o.reconcileBootstrap), {
        logger: o.logger,
        concurrency: o.bootstrapConcurrency,
        baseDelayMs: 1000,
        maxDelayMs: 300_000,
      }),
    };
    const selector = o.watchFilter ? `${WATCH_FILTER_LABEL}=${o.watchFilter}` : undefined;
    const add = (kind: Kind) => (obj: KubernetesObject) => this.enqueue(kind, keyOf(obj));
    this.packetClusters = this.informer<PacketCluster>(
      `/apis/${INFRA_API_VERSION}`,
      'packetclusters',
      selector,
      {
        onChange: add('PacketCluster'),
        also: (pcl) =>
          this.ofCluster(
            this.packetMachines,
            'PacketMachine',
            pcl.metadata.namespace,
            pcl.metadata.labels?.[CLUSTER_NAME_LABEL],
          ),
      },
    );
    this.packetMachines = this.informer<PacketMachine>(
      `/apis/${INFRA_API_VERSION}`,
      'packetmachines',
      selector,
      {
        onChange: add('PacketMachine'),
      },
    );
    this.configs = this.informer<PacketKubeadmConfig>(
      `/apis/${BOOTSTRAP_API_VERSION}`,
      'packetkubeadmconfigs',
      selector,
      {
        onChange: add('PacketKubeadmConfig'),
      },
    );
    this.informer<CapiCluster>(`/apis/${CAPI_GROUP}/${CAPI_VERSION}`, 'clusters', selector, {
      onChange: (c) => {
        const ref = c.spec?.infrastructureRef;
        if (ref?.kind === 'PacketCluster')
          this.enqueue('PacketCluster', `${c.metadata.namespace}/${ref.name}`);
        this.ofCluster(this.packetMachines, 'PacketMachine', c.metadata.namespace, c.metadata.name);
        this.ofCluster(this.configs, 'PacketKubeadmConfig', c.metadata.namespace, c.metadata.name);
      },
    });
    this.informer<CapiMachine>(`/apis/${CAPI_GROUP}/${CAPI_VERSION}`, 'machines', selector, {
      onChange: (m) => {
        const ref = m.spec.infrastructureRef;
        if (ref?.kind === 'PacketMachine')
          this.enqueue('PacketMachine', `${m.metadata.namespace}/${ref.name}`);
        const cfg = m.spec.bootstrap?.configRef;
        if (cfg?.kind === 'PacketKubeadmConfig') {
          this.enqueue('PacketKubeadmConfig', `${m.metadata.namespace}/${cfg.name}`);
        }
      },
    });
  }

  private informer<T extends KubernetesObject>(
    base: string,
    plural: string,
    labelSelector: string | undefined,
    on: { onChange: (obj: T) => void; also?: (obj: T) => void },
  ): ResilientInformer<T> {
    const ns = this.o.namespace;
    const path = ns ? `${base}/namespaces/${ns}/${plural}` : `${base}/${plural}`;
    const fire = (obj: T) => {
      if (this.stopped) return;
      on.onChange(obj);
      on.also?.(obj);
    };
    const inf = new ResilientInformer<T>({
      kc: this.o.kc,
      path,
      labelSelector,
      list: () =>
        kubeRequest<KubernetesListObject<T>>(this.o.kc, { method: 'GET', path, query: { labelSelector } }),
      onAdd: fire,
      onUpdate: fire,
      onDelete: fire,
      logger: this.o.logger,
    });
    this.informers.push(inf as unknown as ResilientInformer<KubernetesObject>);
    return inf;
  }

  /** Enqueues the objects of `kind` labelled for the cluster (CAPI labels what it creates or adopts). */
  private ofCluster<T extends KubernetesObject>(
    informer: ResilientInformer<T> | undefined,
    kind: Kind,
    namespace: string | undefined,
    cluster: string | undefined,
  ): void {
    if (!cluster || !informer) return;
    for (const o of informer.list(namespace ?? 'default')) {
      if (o.metadata?.labels?.[CLUSTER_NAME_LABEL] === cluster) this.enqueue(kind, keyOf(o));
    }
  }

  enqueue(kind: Kind, key: string): void {
    if (this.stopped) return;
    const id = `${kind}/${key}`;
    const t = this.timers.get(id);
    if (t) {
      clearTimeout(t);
      this.timers.delete(id);
    }
    this.queues[kind].add(key);
  }

  private later(kind: Kind, key: string, ms: number): void {
    if (this.stopped) return;
    const id = `${kind}/${key}`;
    const prev = this.timers.get(id);
    if (prev) clearTimeout(prev);
    const t = setTimeout(() => {
      this.timers.delete(id);
      this.queues[kind].add(key);
    }, ms);
    t.unref();
    this.timers.set(id, t);
  }

  /** Starts the watches; resolves once every one has listed (the caches are complete). */
  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
    await Promise.all(this.informers.map((i) => i.synced));
    this.resyncAll();
    this.syncTimer = setInterval(() => this.resyncAll(), this.o.syncPeriodMs);
    this.syncTimer.unref();
  }

  private resyncAll(): void {
    for (const pcl of this.packetClusters.list()) this.enqueue('PacketCluster', keyOf(pcl));
    for (const pm of this.packetMachines.list()) this.enqueue('PacketMachine', keyOf(pm));
    for (const c of this.configs.list()) this.enqueue('PacketKubeadmConfig', keyOf(c));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.holds.clear();
    for (const q of Object.values(this.queues)) q.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;
const split = (key: string): [string, string] => {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
};
