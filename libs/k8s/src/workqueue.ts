import { Backoff, errorMessage, type Logger } from '@knet/runtime';

export interface WorkQueueOptions {
  logger?: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Keys processed at the same time (default 1). A key is never processed twice at once, whatever
   * the number: added while it runs, it runs again once that pass is over.
   */
  concurrency?: number;
}

/**
 * A controller work queue: keys (e.g. object names) are processed by `handler`, up to
 * `concurrency` different keys at a time (one by default), in the order they were added; a key
 * added while queued is coalesced, a key added while being processed runs again afterwards (never
 * two passes of one key at once), and a failing key is retried with per-key exponential backoff.
 * Like client-go's rate-limited queue with its workers.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly dirtyWhileRunning = new Set<string>();
  private readonly retries = new Map<string, { backoff: Backoff; timer?: NodeJS.Timeout }>();
  private readonly running = new Set<string>();
  private readonly concurrency: number;
  private stopped = false;

  constructor(
    private readonly handler: (key: string) => Promise<void>,
    private readonly opts: WorkQueueOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 1;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1)
      throw new RangeError(`WorkQueue concurrency must be a positive integer, got ${this.concurrency}`);
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.running.has(key)) {
      this.dirtyWhileRunning.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Forgets a key's retry state (after a delete, or a success). */
  forget(key: string): void {
    const r = this.retries.get(key);
    if (r?.timer) clearTimeout(r.timer);
    this.retries.delete(key);
  }

  stop(): void {
    this.stopped = true;
    for (const r of this.retries.values()) if (r.timer) clearTimeout(r.timer);
    this.retries.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.dirtyWhileRunning.clear();
  }

  private pump(): void {
    while (this.running.size < this.concurrency && !this.stopped) {
      const key = this.queue.shift();
      if (key === undefined) return;
      this.queued.delete(key);
      this.running.add(key);
      void this.handler(key)
        .then(
          () => this.forget(key),
          (err: unknown) => this.retry(key, err),
        )
        .finally(() => {
          this.running.delete(key);
          if (this.dirtyWhileRunning.delete(key)) this.add(key);
          this.pump();
        });
    }
  }

  private retry(key: string, err: unknown): void {
    if (this.stopped) return;
    let r = this.retries.get(key);
    if (!r) {
      r = {
        backoff: new Backoff({
          baseMs: this.opts.baseDelayMs ?? 200,
          maxMs: this.opts.maxDelayMs ?? 60_000,
          jitter: 0.2,
        }),
      };
      this.retries.set(key, r);
    }
    const delay = r.backoff.next();
    this.opts.logger?.warn({ key, err: errorMessage(err), retryInMs: delay }, 'reconcile failed; will retry');
    if (r.timer) clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      if (r) r.timer = undefined;
      this.add(key);
    }, delay);
  }
}
