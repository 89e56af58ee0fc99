import { Registry } from '@knet/runtime';
import { createStats, registerDnsMetrics } from './stats';

describe('registerDnsMetrics', () => {
  it('exports the counters at scrape time, growing by what happened in between', async () => {
    const registry = new Registry();
    const stats = createStats();
    let entries = 0;
    registerDnsMetrics(registry, () => ({ stats, cacheEntries: entries }));
    stats.queriesCache = 10;
    stats.queriesForwarded = 2;
    stats.upstreamTimeouts = 1;
    stats.malformed = 3;
    entries = 7;
    let text = await registry.metrics();
    expect(text).toContain('knet_dns_queries_total{source="cache"} 10');
    expect(text).toContain('knet_dns_queries_total{source="forwarded"} 2');
    expect(text).toContain('knet_dns_errors_total{kind="malformed"} 3');
    expect(text).toContain('knet_dns_upstream_timeouts_total 1');
    expect(text).toContain('knet_dns_cache_entries 7');
    stats.queriesCache = 25;
    text = await registry.metrics();
    expect(text).toContain('knet_dns_queries_total{source="cache"} 25');
    expect(text).toContain('knet_dns_upstream_timeouts_total 1');
  });
});
