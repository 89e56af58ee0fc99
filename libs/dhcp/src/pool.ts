// The lease pool: which client gets which address. Pure and deterministic: no I/O, no clock (every
// operation takes `now` in ms since the epoch), no randomness. DhcpServer drives it.
import { z } from 'zod';
import { intToIp, ipToInt, isIPv4, isMac, parseNetwork, prefixToNetmask, type Ipv4Network } from './ipv4';

export interface Reservation {
  /** Matched exactly against the client's option 12 (case-insensitively). */
  hostname: string;
  ip: string;
}

export interface LeasePoolConfig {
  /** `172.16.0.0/24`, or pod-gateway's VXLAN_IP_NETWORK form `172.16.0` (a /24). */
  network: string;
  /** The server's own address (pod-gateway: NET.1); never leased. */
  gateway: string;
  /** First dynamic host number (the last octet in a /24). Default 20 (static IPs go below it). */
  firstDynamic?: number;
  /**
   * Last dynamic host number. Default: the one before the broadcast address (254 in a /24).
   * pod-gateway's dnsmasq range NET.FIRST..NET.255 includes the broadcast address; that is refused.
   */
  lastDynamic?: number;
  /** Default 43200 (12 h, as pod-gateway's dnsmasq). */
  leaseTimeSec?: number;
  /**
   * How long an offered address is held for the client that was offered it. Default 10: a client
   * REQUESTs within milliseconds, and a held offer is an address nobody else can have.
   */
  offerHoldSec?: number;
  /** How long a DECLINEd address stays out of the pool. Default 600. */
  declineHoldSec?: number;
  reservations?: readonly Reservation[];
}

/** A client as the pool sees it. */
export interface PoolClient {
  /** `id:<hex of option 61>` or `mac:<chaddr>` (see clientKeyOf). */
  clientKey: string;
  chaddr: string;
  /** Option 12, already sanitised; reservations match it case-insensitively. */
  hostname?: string;
}

export interface Lease {
  ip: string;
  clientKey: string;
  chaddr: string;
  hostname?: string;
  /** ms since the epoch; the lease is active while `now < expiresAt`. */
  expiresAt: number;
  /** ms since the epoch of the last ACK. */
  boundAt: number;
}

export type RequestResult =
  | {
      type: 'ack';
      lease: Lease;
      leaseTimeSec: number;
      /** a lease of another client ended by this ACK (reservation takeover) */ replaced?: Lease;
    }
  | { type: 'nak'; reason: string };

/** Pool counts for metrics (see LeasePool.usage). */
export interface LeaseUsage {
  /** Dynamic addresses (reservations and the gateway excluded). */
  size: number;
  /** Dynamic addresses neither leased, offered nor set aside now. */
  free: number;
  active: number;
  offered: number;
  /** Addresses set aside (DECLINE, in-use check). */
  declined: number;
}

export const LEASE_FILE_VERSION = 1;

/** The JSON document of {@link LeasePool.snapshot} (and of the server's lease file). */
export interface LeaseSnapshot {
  version: typeof LEASE_FILE_VERSION;
  leases: {
    ip: string;
    client: string;
    chaddr: string;
    hostname?: string;
    /** ISO 8601 */
    expiresAt: string;
    /** ISO 8601 */
    boundAt: string;
  }[];
  declined: { ip: string; /** ISO 8601 */ until: string }[];
}

const isoDate = z.string().refine((s) => Number.isFinite(Date.parse(s)), 'not a date');
const snapshotSchema = z.object({
  version: z.literal(LEASE_FILE_VERSION),
  leases: z.array(
    z.object({
      ip: z.string().refine(isIPv4, 'not an IPv4 address'),
      client: z.string().min(1).max(600),
      chaddr: z.string().refine(isMac, 'not a MAC address'),
      hostname: z.string().min(1).max(255).optional(),
      expiresAt: isoDate,
      boundAt: isoDate,
    }),
  ),
  declined: z
    .array(z.object({ ip: z.string().refine(isIPv4, 'not an IPv4 address'), until: isoDate }))
    .default([]),
});

/** A lease document that cannot be used (wrong version, wrong shape). One line. */
export class LeaseSnapshotError extends Error {
  override readonly name = 'LeaseSnapshotError';
}

/** Parses and validates a snapshot document (e.g. the lease file's JSON). */
export function parseLeaseSnapshot(doc: unknown): LeaseSnapshot {
  const r = snapshotSchema.safeParse(doc);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new LeaseSnapshotError(
      `invalid lease document: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'unknown error'}`,
    );
  }
  return r.data as LeaseSnapshot;
}

interface Offer {
  ip: string;
  clientKey: string;
  chaddr: string;
  expiresAt: number;
}

const lower = (h: string | undefined) => h?.toLowerCase();

/**
 * Address allocation for one IPv4 subnet.
 *
 * - A client (option 61, else chaddr) gets its existing lease back, also after it expired as long as
 *   nobody else took the address meanwhile.
 * - A reservation gives its address to the client whose hostname matches; the address is never given
 *   to anyone else, and a client with a reservation is NAKed for any other address. Reservations
 *   belong to the hostname: a new client presenting it (DISCOVER, OFFER, REQUEST) takes the address
 *   over (a replaced pod), ending the previous holder's lease at the ACK; the previous holder's
 *   renewals are then NAKed.
 * - A requested address (option 50 / ciaddr) is honoured when it is free, in the dynamic range, not
 *   reserved, not quarantined.
 * - Otherwise the lowest free dynamic address, preferring never-used ones over expired leases.
 * - Offers hold their address for `offerHoldSec`; DECLINE quarantines an address for
 *   `declineHoldSec`; RELEASE ends a lease (the record stays, for stickiness).
 */
export class LeasePool {
  readonly network: Ipv4Network;
  readonly gateway: string;
  readonly netmask: string;
  readonly leaseTimeSec: number;
  readonly offerHoldSec: number;
  readonly declineHoldSec: number;
  readonly firstDynamic: number;
  readonly lastDynamic: number;

  private readonly reservationsByHost = new Map<string, string>();
  private readonly reservedIps = new Map<string, string>();
  /** Bound leases (active and expired) by IP. */
  private readonly bound = new Map<string, Lease>();
  /** clientKey → IP of its bound lease. */
  private readonly byClient = new Map<string, string>();
  /** Offers by IP. */
  private readonly offers = new Map<string, Offer>();
  /** clientKey → IP offered. */
  private readonly offerByClient = new Map<string, string>();
  private readonly declined = new Map<string, number>();
  /** Leases reported expired by sweep() already (ip → expiresAt reported). */
  private lastSweep = -Infinity;

  constructor(config: LeasePoolConfig) {
    const net = parseNetwork(config.network);
    this.network = net;
    this.netmask = prefixToNetmask(net.prefixLength);
    const hostMax = net.size - 2;
    const pos = (name: string, v: number | undefined, def: number, min: number, max: number): number => {
      const x = v ?? def;
      if (!Number.isInteger(x) || x < min || x > max) {
        throw new TypeError(`LeasePool: ${name} must be an integer in ${min}..${max}, got ${String(v)}`);
      }
      return x;
    };
    this.firstDynamic = pos('firstDynamic', config.firstDynamic, Math.min(20, hostMax), 1, hostMax);
    this.lastDynamic = pos('lastDynamic', config.lastDynamic, hostMax, this.firstDynamic, hostMax);
    this.leaseTimeSec = pos('leaseTimeSec', config.leaseTimeSec, 43_200, 10, 0x7fffffff);
    this.offerHoldSec = pos('offerHoldSec', config.offerHoldSec, 10, 1, 3600);
    this.declineHoldSec = pos('declineHoldSec', config.declineHoldSec, 600, 0, 86_400 * 7);
    if (!this.isHostAddress(config.gateway)) {
      throw new TypeError(`LeasePool: gateway ${config.gateway} is not a host address of ${net.cidr}`);
    }
    this.gateway = config.gateway;
    for (const r of config.reservations ?? []) {
      const host = lower(r.hostname);
      if (!host || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(host)) {
        throw new TypeError(`LeasePool: invalid reservation hostname ${JSON.stringify(r.hostname)}`);
      }
      if (!this.isHostAddress(r.ip) || r.ip === this.gateway) {
        throw new TypeError(`LeasePool: reservation ${host}: ${r.ip} is not a usable address of ${net.cidr}`);
      }
      if (this.reservationsByHost.has(host))
        throw new TypeError(`LeasePool: hostname ${host} is reserved twice`);
      if (this.reservedIps.has(r.ip)) throw new TypeError(`LeasePool: address ${r.ip} is reserved twice`);
      this.reservationsByHost.set(host, r.ip);
      this.reservedIps.set(r.ip, host);
    }
  }

  /** Prefix length of the subnet. */
  get prefixLength(): number {
    return this.network.prefixLength;
  }

  private hostNumber(ip: string): number | undefined {
    if (!isIPv4(ip)) return undefined;
    const n = ipToInt(ip) - this.network.base;
    return n >= 0 && n < this.network.size ? n : undefined;
  }

  /** In the subnet and neither the network nor the broadcast address. */
  isHostAddress(ip: string): boolean {
    const n = this.hostNumber(ip);
    return n !== undefined && n > 0 && n < this.network.size - 1;
  }

  private inDynamicRange(ip: string): boolean {
    const n = this.hostNumber(ip);
    return n !== undefined && n >= this.firstDynamic && n <= this.lastDynamic;
  }

  /** The reserved address for a hostname, if any. */
  reservationFor(hostname: string | undefined): string | undefined {
    const h = lower(hostname);
    return h === undefined ? undefined : this.reservationsByHost.get(h);
  }

  private activeOfferTo(ip: string, now: number): Offer | undefined {
    const o = this.offers.get(ip);
    return o && o.expiresAt > now ? o : undefined;
  }

  private activeLeaseAt(ip: string, now: number): Lease | undefined {
    const l = this.bound.get(ip);
    return l && l.expiresAt > now ? l : undefined;
  }

  private quarantined(ip: string, now: number): boolean {
    return (this.declined.get(ip) ?? -Infinity) > now;
  }

  /**
   * Why `client` may not have `ip` now, or undefined when it may. `takeover`: the client may take
   * its reserved address from another client that holds it (offers, and REQUESTs after an offer).
   */
  refusal(client: PoolClient, ip: string, now: number, takeover = false): string | undefined {
    if (!this.isHostAddress(ip)) return `${ip} is not a host address of ${this.network.cidr}`;
    if (ip === this.gateway) return `${ip} is the gateway`;
    if (this.quarantined(ip, now)) return `${ip} was declined recently`;
    const own = this.reservationFor(client.hostname);
    const lease = this.activeLeaseAt(ip, now);
    if (own !== undefined) {
      if (own !== ip) return `${lower(client.hostname)} has the reserved address ${own}`;
      return lease && lease.clientKey !== client.clientKey && !takeover
        ? `${ip} is leased to another client`
        : undefined;
    }
    if (this.reservedIps.has(ip)) return `${ip} is reserved for another host`;
    if (!this.inDynamicRange(ip)) return `${ip} is outside the dynamic range`;
    if (lease && lease.clientKey !== client.clientKey) return `${ip} is leased to another client`;
    const offer = this.activeOfferTo(ip, now);
    if (offer && offer.clientKey !== client.clientKey) return `${ip} is offered to another client`;
    return undefined;
  }

  private lowestFree(now: number): string | undefined {
    let fallback: { ip: string; expiresAt: number } | undefined;
    for (let n = this.firstDynamic; n <= this.lastDynamic; n++) {
      const ip = intToIp(this.network.base + n);
      if (ip === this.gateway || this.reservedIps.has(ip) || this.quarantined(ip, now)) continue;
      if (this.activeOfferTo(ip, now)) continue;
      const l = this.bound.get(ip);
      if (!l) return ip;
      if (l.expiresAt <= now && (!fallback || l.expiresAt < fallback.expiresAt)) {
        fallback = { ip, expiresAt: l.expiresAt };
      }
    }
    return fallback?.ip;
  }

  private dropOffer(clientKey: string): void {
    const ip = this.offerByClient.get(clientKey);
    if (ip === undefined) return;
    this.offerByClient.delete(clientKey);
    if (this.offers.get(ip)?.clientKey === clientKey) this.offers.delete(ip);
  }

  /**
   * DISCOVER: the address to offer, held for `offerHoldSec`, or undefined when the pool is exhausted
   * (or the client's reserved address is quarantined).
   */
  offer(
    client: PoolClient & { requestedIp?: string },
    now: number,
  ): { ip: string; leaseTimeSec: number } | undefined {
    const ok = (ip: string | undefined): ip is string =>
      ip !== undefined && !this.refusal(client, ip, now, true);
    const reserved = this.reservationFor(client.hostname);
    let ip: string | undefined;
    if (reserved !== undefined) {
      ip = ok(reserved) ? reserved : undefined;
      if (ip === undefined) return undefined;
    } else {
      const previous = this.byClient.get(client.clientKey);
      const offered = this.offerByClient.get(client.clientKey);
      if (ok(previous)) ip = previous;
      else if (ok(offered)) ip = offered;
      else if (ok(client.requestedIp)) ip = client.requestedIp;
      else ip = this.lowestFree(now);
    }
    if (ip === undefined) return undefined;
    this.dropOffer(client.clientKey);
    // An offer of the address the client already holds does not touch its lease.
    const current = this.activeLeaseAt(ip, now);
    if (!current || current.clientKey !== client.clientKey) {
      this.offers.set(ip, {
        ip,
        clientKey: client.clientKey,
        chaddr: client.chaddr,
        expiresAt: now + this.offerHoldSec * 1000,
      });
      this.offerByClient.set(client.clientKey, ip);
    }
    return { ip, leaseTimeSec: this.leaseTimeSec };
  }

  /** The client chose another server (REQUEST with a foreign server id): forget its offer. */
  cancelOffer(clientKey: string): void {
    this.dropOffer(clientKey);
  }

  /**
   * REQUEST for `ip` (option 50 when selecting / init-reboot, ciaddr when renewing / rebinding):
   * ACK (the lease is bound for `leaseTimeSec`) or NAK with a reason.
   */
  request(client: PoolClient, ip: string, now: number): RequestResult {
    // A reserved address is taken over only by a client that was just offered it (a new pod that
    // went through DISCOVER), not by a renewal of a client that lost it.
    const offered = this.activeOfferTo(ip, now)?.clientKey === client.clientKey;
    const reason = this.refusal(client, ip, now, offered);
    if (reason) return { type: 'nak', reason };
    const previousIp = this.byClient.get(client.clientKey);
    if (previousIp !== undefined && previousIp !== ip) this.bound.delete(previousIp);
    let replaced: Lease | undefined;
    const existing = this.bound.get(ip);
    if (existing && existing.clientKey !== client.clientKey) {
      this.byClient.delete(existing.clientKey);
      if (existing.expiresAt > now) replaced = { ...existing };
    }
    this.dropOffer(client.clientKey);
    const lease: Lease = {
      ip,
      clientKey: client.clientKey,
      chaddr: client.chaddr,
      ...(client.hostname !== undefined ? { hostname: client.hostname } : {}),
      expiresAt: now + this.leaseTimeSec * 1000,
      boundAt: now,
    };
    this.bound.set(ip, lease);
    this.byClient.set(client.clientKey, ip);
    return {
      type: 'ack',
      lease: { ...lease },
      leaseTimeSec: this.leaseTimeSec,
      ...(replaced ? { replaced } : {}),
    };
  }

  /**
   * RELEASE: ends the client's lease on `ip` (the record stays for stickiness). Only the lease's own
   * client may: the same client key and chaddr (a client id alone is guessable). True if it did.
   */
  release(client: Pick<PoolClient, 'clientKey' | 'chaddr'>, ip: string, now: number): boolean {
    const l = this.activeLeaseAt(ip, now);
    if (!l || l.clientKey !== client.clientKey || l.chaddr !== client.chaddr) return false;
    this.dropOffer(client.clientKey);
    l.expiresAt = now;
    return true;
  }

  /**
   * DECLINE: the client found `ip` in use. If it was leased (same client key and chaddr) or offered
   * to that client, the address is quarantined for `declineHoldSec` and the lease dropped. True if
   * it did.
   */
  decline(client: Pick<PoolClient, 'clientKey' | 'chaddr'>, ip: string, now: number): boolean {
    const lease = this.bound.get(ip);
    const offer = this.activeOfferTo(ip, now);
    const leased = lease?.clientKey === client.clientKey && lease.chaddr === client.chaddr;
    const mine = leased || (offer?.clientKey === client.clientKey && offer.chaddr === client.chaddr);
    if (!mine) return false;
    if (leased) {
      this.bound.delete(ip);
      this.byClient.delete(client.clientKey);
    }
    this.dropOffer(client.clientKey);
    if (this.declineHoldSec > 0) this.declined.set(ip, now + this.declineHoldSec * 1000);
    return true;
  }

  /**
   * Drops ended offers and quarantines; returns the leases that ended since the previous sweep
   * (released ones included).
   */
  sweep(now: number): Lease[] {
    const expired: Lease[] = [];
    for (const l of this.bound.values()) {
      if (l.expiresAt <= now && l.expiresAt > this.lastSweep) expired.push({ ...l });
    }
    for (const [ip, o] of this.offers) {
      if (o.expiresAt <= now) {
        this.offers.delete(ip);
        if (this.offerByClient.get(o.clientKey) === ip) this.offerByClient.delete(o.clientKey);
      }
    }
    for (const [ip, until] of this.declined) if (until <= now) this.declined.delete(ip);
    this.lastSweep = now;
    return expired;
  }

  /** Active (bound, unexpired) leases, ordered by address. */
  activeLeases(now: number): Lease[] {
    return [...this.bound.values()]
      .filter((l) => l.expiresAt > now)
      .sort((a, b) => ipToInt(a.ip) - ipToInt(b.ip))
      .map((l) => ({ ...l }));
  }

  /** The address of the client's lease record (active or ended), if any: its "record" in RFC 2131. */
  recordOf(clientKey: string): string | undefined {
    return this.byClient.get(clientKey);
  }

  /** The lease record (active or ended) of `ip`, if any. */
  recordAt(ip: string): Lease | undefined {
    const l = this.bound.get(ip);
    return l ? { ...l } : undefined;
  }

  /** The address offered to the client, while the offer holds. */
  offerOf(clientKey: string, now: number): string | undefined {
    const ip = this.offerByClient.get(clientKey);
    return ip !== undefined && this.activeOfferTo(ip, now)?.clientKey === clientKey ? ip : undefined;
  }

  /**
   * Takes `ip` out of the pool for `declineHoldSec`, as a DECLINE does (the server found it in
   * use); an offer of it is dropped. Leases are not touched.
   */
  setAside(ip: string, now: number): void {
    const offer = this.offers.get(ip);
    if (offer) this.dropOffer(offer.clientKey);
    this.declined.set(ip, now + Math.max(1, this.declineHoldSec) * 1000);
  }

  /** Counts for metrics: addresses of the dynamic range and how many of them can be offered now. */
  usage(now: number): LeaseUsage {
    let size = 0;
    let free = 0;
    for (let n = this.firstDynamic; n <= this.lastDynamic; n++) {
      const ip = intToIp(this.network.base + n);
      if (ip === this.gateway || this.reservedIps.has(ip)) continue;
      size++;
      if (this.quarantined(ip, now) || this.activeOfferTo(ip, now) || this.activeLeaseAt(ip, now)) continue;
      free++;
    }
    let active = 0;
    for (const l of this.bound.values()) if (l.expiresAt > now) active++;
    let offered = 0;
    for (const o of this.offers.values()) if (o.expiresAt > now) offered++;
    let declined = 0;
    for (const until of this.declined.values()) if (until > now) declined++;
    return { size, free, active, offered, declined };
  }

  /** The client's active lease, if any. */
  leaseOf(clientKey: string, now: number): Lease | undefined {
    const ip = this.byClient.get(clientKey);
    const l = ip === undefined ? undefined : this.activeLeaseAt(ip, now);
    return l ? { ...l } : undefined;
  }

  /** hostname (lowercase) → address of the active leases that have one; the newest ACK wins. */
  hosts(now: number): Record<string, string> {
    const out: Record<string, { ip: string; at: number }> = {};
    for (const l of this.bound.values()) {
      const h = lower(l.hostname);
      if (!h || l.expiresAt <= now) continue;
      const cur = out[h];
      if (!cur || cur.at < l.boundAt) out[h] = { ip: l.ip, at: l.boundAt };
    }
    return Object.fromEntries(
      Object.entries(out)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([h, v]) => [h, v.ip]),
    );
  }

  /** Every lease record (expired ones too, for stickiness) and quarantine, as a JSON document. */
  snapshot(): LeaseSnapshot {
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      version: LEASE_FILE_VERSION,
      leases: [...this.bound.values()]
        .sort((a, b) => ipToInt(a.ip) - ipToInt(b.ip))
        .map((l) => ({
          ip: l.ip,
          client: l.clientKey,
          chaddr: l.chaddr,
          ...(l.hostname !== undefined ? { hostname: l.hostname } : {}),
          expiresAt: iso(l.expiresAt),
          boundAt: iso(l.boundAt),
        })),
      declined: [...this.declined].map(([ip, until]) => ({ ip, until: iso(until) })),
    };
  }

  /**
   * Replaces the state with a snapshot (validated; throws LeaseSnapshotError). Records that the
   * current configuration does not allow (outside the subnet or range, the gateway, another host's
   * reservation, duplicates: the later expiry wins) are dropped and counted.
   */
  restore(doc: unknown, now: number): { restored: number; dropped: number } {
    const snap = parseLeaseSnapshot(doc);
    this.bound.clear();
    this.byClient.clear();
    this.offers.clear();
    this.offerByClient.clear();
    this.declined.clear();
    let dropped = 0;
    const sorted = [...snap.leases].sort((a, b) => Date.parse(b.expiresAt) - Date.parse(a.expiresAt));
    for (const r of sorted) {
      const client: PoolClient = {
        clientKey: r.client,
        chaddr: r.chaddr.toLowerCase().replace(/-/g, ':'),
        ...(r.hostname !== undefined ? { hostname: r.hostname } : {}),
      };
      // Check against the configuration only (time -Infinity: nothing active yet) plus duplicates.
      const reason = this.refusal(client, r.ip, -Infinity, true);
      if (reason || this.bound.has(r.ip) || this.byClient.has(r.client)) {
        dropped++;
        continue;
      }
      this.bound.set(r.ip, {
        ip: r.ip,
        clientKey: client.clientKey,
        chaddr: client.chaddr,
        ...(client.hostname !== undefined ? { hostname: client.hostname } : {}),
        expiresAt: Date.parse(r.expiresAt),
        boundAt: Date.parse(r.boundAt),
      });
      this.byClient.set(r.client, r.ip);
    }
    for (const d of snap.declined) {
      const until = Date.parse(d.until);
      if (until > now && this.isHostAddress(d.ip)) this.declined.set(d.ip, until);
    }
    this.lastSweep = now;
    return { restored: this.bound.size, dropped };
  }
}
