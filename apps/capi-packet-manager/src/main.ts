import { parseOptions, runMain, startApp } from '@knet/runtime';
import { createAppMetrics } from './metrics';
import { program } from './options';
import { reconcileLoop, type ItemStore } from './reconcile';

// Wiring only: options → app (logger, signals, metrics) → parts → serve → run until shutdown.
void runMain('capi-packet-manager', async () => {
  const opts = parseOptions(program);
  const app = startApp('capi-packet-manager', opts);
  const metrics = createAppMetrics(app.registry);
  await app.serve({ readiness: { reconciled: () => metrics.ready } });
  await reconcileLoop({
    store: memoryStore(), // the scaffold's placeholder: put the real driver here (@knet/k8s, @knet/host-net)
    desired: opts.items,
    intervalMs: opts.interval,
    signal: app.signal,
    logger: app.logger,
    metrics,
  });
});

function memoryStore(): ItemStore {
  const items = new Map<string, { name: string; ownedBy?: string }>();
  return {
    list: async () => [...items.values()],
    create: async (i) => void items.set(i.name, i),
    remove: async (i) => void items.delete(i.name),
  };
}
