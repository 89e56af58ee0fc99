// The DHCP server's counters for Prometheus, read at scrape time (nothing per packet).
import { Counter, Gauge, growthFeeder, type Registry } from '@knet/runtime';
import type { LeaseUsage } from './pool';

/** What {@link registerDhcpMetrics} reads at each scrape. */
export interface DhcpMetricsSource {
  /** By message type name. */
  received: Record<string, number>;
  sent: Record<string, number>;
  /** By reason; malformed packets are `malformed` (their decoder reasons are not a bounded set). */
  ignored: Record<string, number>;
  /** DISCOVERs that got no offer: nothing free. */
  exhausted: number;
  /** Addresses found in use on the overlay (not leased by us) and set aside. */
  inUse: number;
  usage: LeaseUsage;
}

/**
 * Registers, under `prefix` (default `knet_dhcp_`): `packets_total{direction,type}`,
 * `ignored_total{reason}`, `pool_exhausted_total`, `address_in_use_total`, `leases{state}`
 * (active, offered, declined) and `pool_addresses{state}` (size, free).
 */
export function registerDhcpMetrics(
  registry: Registry,
  source: () => DhcpMetricsSource,
  prefix = 'knet_dhcp_',
): void {
  // Counters are fed the growth since the last scrape.
  const grow = growthFeeder();
  new Counter({
    name: `${prefix}packets_total`,
    help: 'DHCP packets received and sent, by direction and message type',
    labelNames: ['direction', 'type'],
    registers: [registry],
    collect() {
      const s = source();
      for (const [direction, byType] of [
        ['received', s.received],
        ['sent', s.sent],
      ] as const) {
        for (const [type, n] of Object.entries(byType))
          grow(this, `${direction}/${type}`, { direction, type }, n);
      }
    },
  });
  new Counter({
    name: `${prefix}ignored_total`,
    help: 'DHCP packets dropped without an answer, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(source().ignored))
        grow(this, `ignored/${reason}`, { reason }, n);
    },
  });
  new Counter({
    name: `${prefix}pool_exhausted_total`,
    help: 'DHCP DISCOVERs left unanswered because no address was free',
    registers: [registry],
    collect() {
      grow(this, 'exhausted', {}, source().exhausted);
    },
  });
  new Counter({
    name: `${prefix}address_in_use_total`,
    help: 'Addresses found in use on the overlay by a client we had not leased them to, set aside',
    registers: [registry],
    collect() {
      grow(this, 'inUse', {}, source().inUse);
    },
  });
  new Gauge({
    name: `${prefix}leases`,
    help: 'DHCP leases by state (active, offered, declined: set aside after a DECLINE or an in-use check)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const u = source().usage;
      this.set({ state: 'active' }, u.active);
      this.set({ state: 'offered' }, u.offered);
      this.set({ state: 'declined' }, u.declined);
    },
  });
  new Gauge({
    name: `${prefix}pool_addresses`,
    help: 'Dynamic addresses of the pool: size, and free (neither leased, offered nor set aside)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const u = source().usage;
      this.set({ state: 'size' }, u.size);
      this.set({ state: 'free' }, u.free);
    },
  });
}
