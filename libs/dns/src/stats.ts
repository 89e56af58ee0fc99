// Counters of the DNS server: plain numbers on the hot path, exported to Prometheus at scrape time.
import { Counter, Gauge, growthFeeder, type Registry } from '@knet/runtime';

export interface DnsStats {
  /** Answered from the cache. */
  queriesCache: number;
  /** Answered from the local names (leases). */
  queriesLocal: number;
  /** Sent upstream (cache misses, including coalesced duplicates). */
  queriesForwarded: number;
  /** Malformed queries: answered FORMERR/NOTIMP/BADVERS, or dropped when no reply was possible. */
  malformed: number;
  /** SERVFAIL sent because no upstream answered (or none was configured). */
  servfail: number;
  /** SERVFAIL sent because the gate allowed none of the default upstreams (kill switch). */
  blocked: number;
  /** Queries dropped because too many were waiting for upstreams. */
  overload: number;
  upstreamTimeouts: number;
  /** Upstream network errors (unreachable, refused connection…). */
  upstreamErrors: number;
  /** Upstream replies ignored: unknown ID, wrong source or question, unparsable. */
  upstreamRejected: number;
  /** TCP connections refused or closed for idleness/limits. */
  tcpDropped: number;
}

export function createStats(): DnsStats {
  return {
    queriesCache: 0,
    queriesLocal: 0,
    queriesForwarded: 0,
    malformed: 0,
    servfail: 0,
    blocked: 0,
    overload: 0,
    upstreamTimeouts: 0,
    upstreamErrors: 0,
    upstreamRejected: 0,
    tcpDropped: 0,
  };
}

/**
 * Registers `<prefix>queries_total{source}`, `<prefix>errors_total{kind}`,
 * `<prefix>upstream_timeouts_total` and `<prefix>cache_entries`, read from `source()` when
 * scraped (so counting costs nothing per query). Default prefix `knet_dns_`.
 */
export function registerDnsMetrics(
  registry: Registry,
  source: () => { stats: DnsStats; cacheEntries: number },
  prefix = 'knet_dns_',
): void {
  // Counters are fed the growth since the last scrape (each field feeds one series).
  const feed = growthFeeder();
  const grow = (c: Counter<string>, labels: Record<string, string>, key: keyof DnsStats, s: DnsStats) =>
    feed(c, key, labels, s[key]);
  /** A counter with one label, a series per value, each fed by its field of the stats. */
  const labelled = (name: string, help: string, label: string, series: Record<string, keyof DnsStats>) =>
    new Counter({
      name: `${prefix}${name}`,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        const s = source().stats;
        for (const [value, key] of Object.entries(series)) grow(this, { [label]: value }, key, s);
      },
    });
  labelled('queries_total', 'DNS queries answered, by source (cache, local, forwarded)', 'source', {
    cache: 'queriesCache',
    local: 'queriesLocal',
    forwarded: 'queriesForwarded',
  });
  labelled('errors_total', 'DNS errors, by kind', 'kind', {
    malformed: 'malformed',
    servfail: 'servfail',
    blocked: 'blocked',
    overload: 'overload',
    upstream_error: 'upstreamErrors',
    upstream_rejected: 'upstreamRejected',
    tcp_dropped: 'tcpDropped',
  });
  new Counter({
    name: `${prefix}upstream_timeouts_total`,
    help: 'Upstream DNS queries that timed out',
    registers: [registry],
    collect() {
      grow(this, {}, 'upstreamTimeouts', source().stats);
    },
  });
  new Gauge({
    name: `${prefix}cache_entries`,
    help: 'Responses in the DNS cache',
    registers: [registry],
    collect() {
      this.set(source().cacheEntries);
    },
  });
}
