import { collectDefaultMetrics, Registry, type Counter } from 'prom-client';

export { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';

export interface MetricsRegistryOptions {
  /** Collect prom-client's default process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
  /** Prefix for the default metrics' names, e.g. `knet_` (default none). */
  prefix?: string;
  /** Labels added to every metric of the registry, e.g. `{ app: 'wg-agent' }`. */
  defaultLabels?: Record<string, string>;
}

/**
 * A fresh prom-client registry for this process (never the global `register`, so tests and
 * several components in one process do not collide), with the default process metrics
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `nodejs_eventloop_lag_seconds`, …).
 */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry, ...(options.prefix ? { prefix: options.prefix } : {}) });
  }
  return registry;
}

/** Feeds a counter the growth of a running total since the last call for the same key. */
export type GrowthFeeder = (
  counter: Counter<string>,
  key: string,
  labels: Record<string, string>,
  total: number,
) => void;

/**
 * Counters fed at scrape time from running totals the code keeps as plain numbers (nothing per
 * packet or query on the hot path): each call increments `counter` by how much `total` grew since
 * the last call with the same `key` (one key per series). A total that went down (a reset) adds
 * nothing and becomes the new base.
 */
export function growthFeeder(): GrowthFeeder {
  const last = new Map<string, number>();
  return (counter, key, labels, total) => {
    const d = total - (last.get(key) ?? 0);
    if (d > 0) counter.inc(labels, d);
    last.set(key, total);
  };
}
