import { collectDefaultMetrics, Registry } from 'prom-client';

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
