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
  /**
   * First retry delay after an error (default 500 ms), doubled up to maxBackoffMs (default 30 s),
   * ±20 % jitter; back to the first once a watch is established. A 429 (the API server's "storage
   * is (re)initializing" while a resource's watch cache starts, or its rate limits) is retried
   * after the first delay, never a doubled one.
   */
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
  /** A list has succeeded (client-node keeps its resourceVersion: a restart watches on from there). */
  private listed = false;
  /** Errors so far: an attempt during which this moved did not establish its watch. */
  private errors = 0;
  private established = false;
  /** Resolves after the first successful list (the cache is then complete). */
  readonly synced: Promise<void>;
  /** How many times the informer was restarted after an error. */
  restarts = 0;

  constructor(private readonly o: ResilientInformerOptions<T>) {
    this.backoff = this.minBackoff;
    this.synced = new Promise((r) => (this.syncedResolve = r));
    const list: ListPromise<T> = async () => {
      const answer = await o.list();
      this.listed = true;
      return answer;
    };
    this.informer = makeInformer(o.kc, o.path, list, o.labelSelector);
    if (o.onAdd) this.informer.on('add', o.onAdd);
    if (o.onUpdate) this.informer.on('update', o.onUpdate);
    if (o.onDelete) this.informer.on('delete', o.onDelete);
    // client-node reports a failed list, a refused watch and a broken watch stream here, and then
    // does nothing more.
    this.informer.on('error', (err: unknown) => {
      this.errors++;
      this.established = false;
      this.scheduleRestart(err);
    });
  }

  /**
   * Whether the cache follows the API server: the list has succeeded and the watch request was
   * answered (200) and has not failed since. False before start(), from an error until a restart
   * has its watch answered, and after stop(). A watch refused with 429 ("storage is
   * (re)initializing") is not watching: the cache misses every change until it is.
   */
  get watching(): boolean {
    return this.established && !this.stopped;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.startOnce();
  }

  private get minBackoff(): number {
    return this.o.minBackoffMs ?? 500;
  }

  private async startOnce(): Promise<void> {
    const errors = this.errors;
    try {
      // Resolves once the list has failed (reported on 'error'), or once the watch request has
      // been answered: 200 and streaming, or refused (reported on 'error' before it resolves).
      await this.informer.start();
    } catch (e) {
      // A watch that could not even be sent (no cluster, credentials) rejects, without 'error'.
      this.scheduleRestart(e);
      return;
    }
    if (this.stopped) {
      // stop() came while the list was under way: client-node starts the watch all the same.
      await this.informer.stop();
      return;
    }
    if (this.listed) this.syncedResolve();
    if (!this.listed || this.errors !== errors) return; // 'error' has scheduled the restart
    this.established = true;
    this.backoff = this.minBackoff;
    this.o.logger?.debug({ path: this.o.path }, 'informer watching');
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.retryTimer) return;
    const d = decodeApiError(err);
    const code = d.code || httpStatus(err);
    const max = this.o.maxBackoffMs ?? 30_000;
    // The API server asks to come back soon (Retry-After: 1 s while a watch cache starts): a
    // doubled delay would only leave the cache blind for longer.
    if (code === 429) this.backoff = this.minBackoff;
    const delay = Math.min(this.backoff, max) * (0.8 + Math.random() * 0.4);
    if (code !== 429) this.backoff = Math.min(this.backoff * 2, max);
    this.o.logger?.warn(
      {
        path: this.o.path,
        code,
        reason: d.reason,
        err: d.message,
        retryInMs: Math.round(delay),
      },
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
    this.established = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.informer.stop();
  }
}

/** The HTTP status of a refused watch: client-node throws a plain Error with `statusCode` (no body). */
function httpStatus(err: unknown): number {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : 0;
}
