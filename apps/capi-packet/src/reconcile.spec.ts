import { Backoff, RecordingLogger, createMetricsRegistry } from '@knet/runtime';
import { createAppMetrics } from './metrics';
import { OWNER, type Item } from './plan';
import { reconcileLoop, reconcileOnce, type ItemStore } from './reconcile';

/** An in-memory ItemStore that fails like the real one would when told to. */
class FakeStore implements ItemStore {
  items = new Map<string, Item>();
  failNext: Error | undefined;
  calls: string[] = [];
  private check(op: string): void {
    this.calls.push(op);
    const e = this.failNext;
    this.failNext = undefined;
    if (e) throw e;
  }
  async list(): Promise<Item[]> {
    this.check('list');
    return [...this.items.values()];
  }
  async create(item: Item): Promise<void> {
    this.check(`create ${item.name}`);
    if (this.items.has(item.name)) throw new Error(`${item.name} already exists`);
    this.items.set(item.name, item);
  }
  async remove(item: Item): Promise<void> {
    this.check(`remove ${item.name}`);
    if (!this.items.delete(item.name)) throw new Error(`${item.name} not found`);
  }
}

describe('reconcileOnce', () => {
  it('converges, then changes nothing', async () => {
    const store = new FakeStore();
    store.items.set('old', { name: 'old', ownedBy: OWNER });
    store.items.set('theirs', { name: 'theirs', ownedBy: 'someone-else' });
    expect(await reconcileOnce(store, ['a'])).toEqual(['created a', 'removed old']);
    expect([...store.items.keys()].sort()).toEqual(['a', 'theirs']);
    expect(await reconcileOnce(store, ['a'])).toEqual([]);
  });
});

describe('reconcileLoop', () => {
  it('logs and counts a failure, retries after the backoff, and stops on abort', async () => {
    const store = new FakeStore();
    store.failNext = new Error('API server unavailable');
    const logger = new RecordingLogger();
    const registry = createMetricsRegistry({ defaultMetrics: false });
    const stop = new AbortController();
    const loop = reconcileLoop({
      store,
      desired: ['a'],
      intervalMs: 60_000,
      signal: stop.signal,
      logger,
      metrics: createAppMetrics(registry),
      backoff: new Backoff({ baseMs: 10, maxMs: 10, factor: 1, jitter: 0 }),
    });
    for (let i = 0; i < 100 && !store.items.has('a'); i++) await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    await loop;
    expect(store.items.has('a')).toBe(true);
    expect(logger.messages('warn')).toEqual(['reconcile failed']);
    const counts = await registry.getSingleMetricAsString('capi_packet_reconciles_total');
    expect(counts).toContain('result="error"} 1');
    expect(counts).toContain('result="ok"} 1');
  });
});
