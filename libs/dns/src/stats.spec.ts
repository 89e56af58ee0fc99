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

  it('feeds every series from its own field', async () => {
    const registry = new Registry();
    const stats = createStats();
    registerDnsMetrics(registry, () => ({ stats, cacheEntries: 0 }), 'x_');
    const keys = Object.keys(stats) as (keyof typeof stats)[];
    keys.forEach((key, i) => (stats[key] = i + 1));
    const lines = (await registry.metrics())
      .split('\n')
      .filter((l) => l.startsWith('x_') && !l.startsWith('x_cache'));
    expect(lines.sort()).toEqual(
      [
        `x_queries_total{source="cache"} ${stats.queriesCache}`,
        `x_queries_total{source="local"} ${stats.queriesLocal}`,
        `x_queries_total{source="forwarded"} ${stats.queriesForwarded}`,
        `x_errors_total{kind="malformed"} ${stats.malformed}`,
        `x_errors_total{kind="servfail"} ${stats.servfail}`,
        `x_errors_total{kind="blocked"} ${stats.blocked}`,
        `x_errors_total{kind="overload"} ${stats.overload}`,
        `x_errors_total{kind="upstream_error"} ${stats.upstreamErrors}`,
        `x_errors_total{kind="upstream_rejected"} ${stats.upstreamRejected}`,
        `x_errors_total{kind="tcp_dropped"} ${stats.tcpDropped}`,
        `x_upstream_timeouts_total ${stats.upstreamTimeouts}`,
      ].sort(),
    );
  });
});
