import { Backoff, errorMessage, sleep, type Logger } from '@knet/runtime';
import type { AppMetrics } from './metrics';
import { plan, type Item } from './plan';

/** The narrow port to the outside world the reconciler needs (real driver in main.ts, fake in tests). */
export interface ItemStore {
  list(): Promise<Item[]>;
  create(item: Item): Promise<void>;
  remove(item: Item): Promise<void>;
}

/** One pass: fetch, plan, apply. Returns what changed. */
export async function reconcileOnce(store: ItemStore, desired: readonly string[]): Promise<string[]> {
  const p = plan(desired, await store.list());
  for (const item of p.create) await store.create(item);
  for (const item of p.remove) await store.remove(item);
  return [...p.create.map((i) => `created ${i.name}`), ...p.remove.map((i) => `removed ${i.name}`)];
}

export interface ReconcileLoopOptions {
  store: ItemStore;
  desired: readonly string[];
  intervalMs: number;
  signal: AbortSignal;
  logger: Logger;
  metrics: AppMetrics;
  /** Delays after failures (default: 1 s doubling up to the interval); reset after a success. */
  backoff?: Backoff;
}

/** Reconciles every `intervalMs` until `signal` aborts; a failure is logged, counted and retried. */
export async function reconcileLoop(o: ReconcileLoopOptions): Promise<void> {
  const backoff =
    o.backoff ?? new Backoff({ baseMs: Math.min(1000, o.intervalMs), maxMs: o.intervalMs, factor: 2 });
  do {
    let delay = o.intervalMs;
    try {
      const changes = await reconcileOnce(o.store, o.desired);
      for (const c of changes) o.logger.info({ change: c }, 'changed');
      o.metrics.reconciled('ok');
      backoff.reset();
    } catch (e) {
      o.metrics.reconciled('error');
      delay = backoff.next();
      o.logger.warn({ err: errorMessage(e), retryInMs: delay }, 'reconcile failed');
    }
    if (!(await sleep(delay, o.signal))) break;
  } while (!o.signal.aborted);
}
