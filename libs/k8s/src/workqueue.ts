import { Backoff, errorMessage, type Logger } from '@knet/runtime';

/**
 * A controller work queue: keys (e.g. object names) are processed one at a time by `handler`;
 * a key added while queued is coalesced, a key added while being processed runs again afterwards,
 * and a failing key is retried with per-key exponential backoff. Like client-go's rate-limited queue,
 * minus parallel workers (one is plenty for the controllers here and keeps reconciles ordered).
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly dirtyWhileRunning = new Set<string>();
  private readonly retries = new Map<string, { backoff: Backoff; timer?: NodeJS.Timeout }>();
  private running: string | undefined;
  private stopped = false;

  constructor(
    private readonly handler: (key: string) => Promise<void>,
    private readonly opts: { logger?: Logger; baseDelayMs?: number; maxDelayMs?: number } = {},
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.running === key) {
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
  }

  private pump(): void {
    if (this.running !== undefined || this.stopped) return;
    const key = this.queue.shift();
    if (key === undefined) return;
    this.queued.delete(key);
    this.running = key;
    void this.handler(key)
      .then(
        () => this.forget(key),
        (err: unknown) => this.retry(key, err),
      )
      .finally(() => {
        this.running = undefined;
        if (this.dirtyWhileRunning.delete(key)) this.add(key);
        this.pump();
      });
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
