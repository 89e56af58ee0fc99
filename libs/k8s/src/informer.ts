import {
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ListPromise,
  type ObjectCache,
} from '@kubernetes/client-node';
import type { Logger } from '@knet/runtime';
import { decodeApiError } from './errors';

export interface ResilientInformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Watch path, e.g. /api/v1/namespaces/x/secrets or /apis/cluster.kubesphere.io/v1alpha1/clusters */
  path: string;
  /** Lists the objects; it must apply the same labelSelector as the watch (client-node only passes it to the watch). */
  list: ListPromise<T>;
  labelSelector?: string;
  onAdd?: (obj: T) => void;
  onUpdate?: (obj: T) => void;
  onDelete?: (obj: T) => void;
  logger?: Logger;
  /** First retry delay after an error (default 500 ms), doubled up to maxBackoffMs (default 30 s), ±20 % jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * client-node's informer relists by itself only on 410 Gone; on any other error (API server restart,
 * network cut, 5xx, expired token) it stops for good. This wrapper restarts it with capped
 * exponential backoff and jitter, so a controller keeps watching across API server outages.
 */
export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer: Informer<T> & ObjectCache<T>;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  private syncedResolve!: () => void;
  /** Resolves after the first successful list (the cache is then complete). */
  readonly synced: Promise<void>;
  /** How many times the informer was restarted after an error. */
  restarts = 0;

  constructor(private readonly o: ResilientInformerOptions<T>) {
    this.backoff = o.minBackoffMs ?? 500;
    this.synced = new Promise((r) => (this.syncedResolve = r));
    this.informer = makeInformer(o.kc, o.path, o.list, o.labelSelector);
    if (o.onAdd) this.informer.on('add', o.onAdd);
    if (o.onUpdate) this.informer.on('update', o.onUpdate);
    if (o.onDelete) this.informer.on('delete', o.onDelete);
    this.informer.on('connect', () => {
      this.backoff = this.o.minBackoffMs ?? 500;
      this.o.logger?.debug({ path: o.path }, 'informer connected');
    });
    this.informer.on('error', (err: unknown) => this.scheduleRestart(err));
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.startOnce();
  }

  private async startOnce(): Promise<void> {
    try {
      await this.informer.start();
      this.syncedResolve();
    } catch (e) {
      // start() rejects when the initial list fails; the 'error' handler is not called then.
      this.scheduleRestart(e);
    }
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.retryTimer) return;
    const d = decodeApiError(err);
    const delay = Math.min(this.backoff, this.o.maxBackoffMs ?? 30_000) * (0.8 + Math.random() * 0.4);
    this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs ?? 30_000);
    this.o.logger?.warn(
      { path: this.o.path, code: d.code, reason: d.reason, err: d.message, retryInMs: Math.round(delay) },
      'informer stopped by an error; restarting',
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.stopped) return;
      this.restarts++;
      void this.startOnce();
    }, delay);
  }

  /** Objects in the cache (all, or those of one namespace). */
  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.informer.stop();
  }
}
