// DhcpServer: the pool, the lease file, the sockets and the VXLAN flood list put together.
import { errorMessage, type Logger, type Registry } from '@knet/runtime';
import {
  BOOTREPLY,
  BOOTREQUEST,
  clientKeyOf,
  decodeDhcp,
  DhcpDecodeError,
  DhcpMessageType,
  encodeDhcp,
  messageTypeName,
  type DhcpMessage,
  type DhcpOptions,
} from './codec';
import type { VtepFlooder } from './flooder';
import { vxlanBroadcastFrame } from './vxlan-frame';
import { NeighbourTableCheck, type AddressInUseCheck } from './in-use';
import { ANY_ADDRESS as ZERO, LIMITED_BROADCAST, inNetwork, isIPv4, parseNetwork } from './ipv4';
import { LeaseFileWriter, readLeaseFile } from './lease-file';
import { registerDhcpMetrics } from './metrics';
import { LeasePool, type Lease, type LeasePoolConfig, type PoolClient } from './pool';
import { udpSocketFactory, type DhcpSocket, type DhcpSocketFactory, type RemoteInfo } from './transport';

export interface DhcpServerMetric {
  kind: 'received' | 'sent' | 'malformed' | 'ignored';
  /** Message type name for received/sent (`DISCOVER`, `ACK`, …); the reason for malformed/ignored. */
  type: string;
}

export interface DhcpServerStats {
  /** By message type name. */
  received: Record<string, number>;
  sent: Record<string, number>;
  /** Packets that did not decode. */
  malformed: number;
  /** Decoded but not answered: BOOTREPLYs, relayed, other server's, refused (see ignoredBy). */
  ignored: number;
  /** `ignored` by reason (`relayed`, `source outside the overlay`, …). */
  ignoredBy: Record<string, number>;
  /** DISCOVERs that got no offer because no address was free. */
  exhausted: number;
  /** Addresses found in use on the overlay by a client we had not leased them to (set aside). */
  inUse: number;
}

export interface DhcpServerOptions {
  /** The server's address on the serving device (pod-gateway: NET.1); replies are sent from it. */
  serverAddress: string;
  /** Pool configuration; `gateway` defaults to serverAddress. The netmask comes from `network`. */
  pool: Omit<LeasePoolConfig, 'gateway'> & { gateway?: string };
  /** Option 3. Default: serverAddress; null: none. */
  router?: string | null;
  /** Option 6. Default: [serverAddress]; []: none. */
  dnsServers?: readonly string[];
  /** Option 26 (e.g. a WireGuard-sized MTU for the overlay). */
  mtu?: number;
  /** Option 15. */
  domain?: string;
  /** Where leases are kept across restarts (JSON, 0600, written atomically, debounced). */
  leaseFile?: string;
  /** Makes broadcasts reach the client's VTEP (see FdbVtepFlooder). */
  flooder?: VtepFlooder;
  /**
   * The serving device is this VXLAN device: a broadcast reply goes straight to the client's VTEP
   * (`flooder.vtepOf`) as one VXLAN datagram (vxlan-frame.ts), at once and to that client alone;
   * the flood entry is still added, after the reply. Without a known VTEP, the kernel broadcasts.
   */
  vxlan?: { vni: number; port: number; mac: string };
  logger: Logger;
  /** Server port (default 67). */
  port?: number;
  /** Client port replies go to (default 68). */
  clientPort?: number;
  /** Address of the receiving socket (default 0.0.0.0). */
  listenAddress?: string;
  /** Called with hostname → address of the active leases whenever that map changes (and at start). */
  onLeasesChanged?: (hosts: Record<string, string>) => void;
  /** Counter hook (e.g. prom-client counters by kind and type). */
  metrics?: (event: DhcpServerMetric) => void;
  /** Default node:dgram. */
  socketFactory?: DhcpSocketFactory;
  /** Clock in ms (default Date.now). */
  now?: () => number;
  /** Expiry sweep period (default 10 s). */
  sweepIntervalMs?: number;
  /** Lease file write debounce (default 500 ms). */
  persistDebounceMs?: number;
  /** Longest wait for the flooder before broadcasting anyway (default 3 s). */
  flooderTimeoutMs?: number;
  /** Exports `knet_dhcp_*` (packets, ignored by reason, exhaustion, leases, pool) at scrape time. */
  registry?: Registry;
  /**
   * Clients (client keys) that may hold a lease or an offer obtained from one source IP address
   * (default 4); 0.0.0.0 (raw-socket clients) is not limited. One pod cannot exhaust the pool.
   */
  maxClientsPerSource?: number;
  /**
   * Before an address goes to a client that has no record of it: is another MAC using it on the
   * overlay (a pod that kept it after the lease file was lost)? Then it is set aside for
   * `declineHoldSec` and another one offered. Default: the kernel's neighbour table
   * ({@link NeighbourTableCheck}); null: no check.
   */
  inUseCheck?: AddressInUseCheck | null;
}

/** `Web-1.example.` → `web-1`; anything that is not a DNS label → undefined. */
export function sanitizeHostname(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const label = raw.trim().toLowerCase().split('.')[0] ?? '';
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label) ? label : undefined;
}

/**
 * A DHCPv4 server for one directly attached subnet (no relays), made for a VXLAN overlay.
 *
 * - Receives on `listenAddress:port` (0.0.0.0:67, SO_REUSEADDR) and sends from a second socket bound
 *   to `serverAddress:port`: Linux sends a limited broadcast out of the device that owns the bound
 *   source address, so replies leave through the overlay device even though the default route of
 *   the namespace points elsewhere. Unicast requests to serverAddress arrive on that socket too.
 * - Replies go to ciaddr:68 when the client has an address (renewing, INFORM), else to
 *   255.255.255.255:68 after `flooder.ensure(chaddr)`.
 * - DISCOVER, REQUEST (selecting, init-reboot, renewing, rebinding), RELEASE, DECLINE, INFORM;
 *   BOOTREPLYs, relayed requests and undecodable packets are counted and dropped.
 * - Serves the overlay only: requests whose ciaddr or requested address lies outside it, or whose
 *   ciaddr is not their source, are counted and dropped; RELEASE and DECLINE count only from the
 *   lease's own client (client key and chaddr); one source address brings in at most
 *   `maxClientsPerSource` clients; addresses in use by others on the overlay are not offered.
 */
export class DhcpServer {
  readonly pool: LeasePool;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly port: number;
  private readonly clientPort: number;
  private readonly baseOptions: DhcpOptions;
  private readonly writer: LeaseFileWriter | undefined;
  private readonly counters: DhcpServerStats = {
    received: {},
    sent: {},
    malformed: 0,
    ignored: 0,
    ignoredBy: {},
    exhausted: 0,
    inUse: 0,
  };
  private readonly inUseCheck: AddressInUseCheck | undefined;
  private readonly maxClientsPerSource: number;
  /** clientKey → the source address it last got an offer or a lease from (not 0.0.0.0). */
  private readonly sources = new Map<string, string>();
  private exhaustedSinceWarn = 0;
  private lastInUseCheckWarn = -Infinity;
  private sockets: { recv: DhcpSocket; send: DhcpSocket } | undefined;
  /** VXLAN datagrams to client VTEPs (with `vxlan`). */
  private direct: DhcpSocket | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private lastHosts = '';
  private stopping = false;
  private malformedSinceWarn = 0;
  private lastMalformedWarn = -Infinity;
  private lastExhaustedWarn = -Infinity;

  constructor(private readonly options: DhcpServerOptions) {
    if (!isIPv4(options.serverAddress)) {
      throw new TypeError(`DhcpServer: serverAddress ${JSON.stringify(options.serverAddress)} is not IPv4`);
    }
    const network = parseNetwork(options.pool.network);
    if (!inNetwork(network, options.serverAddress)) {
      throw new TypeError(`DhcpServer: serverAddress ${options.serverAddress} is not in ${network.cidr}`);
    }
    this.pool = new LeasePool({ ...options.pool, gateway: options.pool.gateway ?? options.serverAddress });
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.port = options.port ?? 67;
    this.clientPort = options.clientPort ?? 68;
    const router = options.router === undefined ? options.serverAddress : options.router;
    const dns = options.dnsServers ?? [options.serverAddress];
    this.baseOptions = {
      serverId: options.serverAddress,
      subnetMask: this.pool.netmask,
      ...(router ? { routers: [router] } : {}),
      ...(dns.length ? { dnsServers: [...dns] } : {}),
      ...(options.domain ? { domainName: options.domain } : {}),
      ...(options.mtu !== undefined ? { mtu: options.mtu } : {}),
    };
    // Validate the static reply options once, now, rather than on the first reply.
    encodeDhcp({
      op: BOOTREPLY,
      xid: 0,
      chaddr: '00:00:00:00:00:00',
      messageType: 2,
      options: this.baseOptions,
    });
    this.inUseCheck =
      options.inUseCheck === null ? undefined : (options.inUseCheck ?? new NeighbourTableCheck());
    this.maxClientsPerSource = options.maxClientsPerSource ?? 4;
    if (!Number.isInteger(this.maxClientsPerSource) || this.maxClientsPerSource < 1) {
      throw new TypeError(`DhcpServer: maxClientsPerSource must be a positive integer`);
    }
    if (options.registry) {
      registerDhcpMetrics(options.registry, () => {
        const c = this.counters;
        return {
          received: c.received,
          sent: c.sent,
          ignored: { ...c.ignoredBy, ...(c.malformed ? { malformed: c.malformed } : {}) },
          exhausted: c.exhausted,
          inUse: c.inUse,
          usage: this.pool.usage(this.now()),
        };
      });
    }
    this.writer = options.leaseFile
      ? new LeaseFileWriter(
          options.leaseFile,
          () => this.pool.snapshot(),
          this.logger,
          options.persistDebounceMs,
        )
      : undefined;
  }

  /** Loads the lease file, binds both sockets and starts the expiry sweep. */
  async start(): Promise<void> {
    if (this.sockets) throw new Error('DhcpServer: already started');
    const now = this.now();
    if (this.options.leaseFile) {
      const snap = await readLeaseFile(this.options.leaseFile, this.logger);
      if (snap) {
        const { restored, dropped } = this.pool.restore(snap, now);
        this.logger.info(
          {
            leaseFile: this.options.leaseFile,
            restored,
            dropped,
            active: this.pool.activeLeases(now).length,
          },
          'dhcp: leases restored',
        );
      }
    }
    await this.options.flooder?.start?.();
    const factory = this.options.socketFactory ?? udpSocketFactory;
    const recv = factory();
    const send = factory();
    const direct = this.options.vxlan ? factory() : undefined;
    try {
      await recv.bind(this.port, this.options.listenAddress ?? ZERO);
      await send.bind(this.port, this.options.serverAddress);
      await direct?.bind(0, ZERO);
    } catch (err) {
      await Promise.all([recv.close(), send.close(), direct?.close(), this.options.flooder?.stop?.()]);
      throw err;
    }
    this.direct = direct;
    const onMessage = (buf: Buffer, from: RemoteInfo) => {
      if (this.stopping) return;
      const p = this.handle(buf, from).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    };
    recv.onMessage(onMessage);
    send.onMessage(onMessage);
    this.sockets = { recv, send };
    this.sweepTimer = setInterval(() => this.sweep(), this.options.sweepIntervalMs ?? 10_000);
    this.sweepTimer.unref();
    this.stopping = false;
    this.logger.info(
      {
        serverAddress: this.options.serverAddress,
        port: this.port,
        network: this.pool.network.cidr,
        leaseTimeSec: this.pool.leaseTimeSec,
      },
      'dhcp: server started',
    );
    this.publishHosts(true);
  }

  /** Closes the sockets, waits for replies in progress and writes the lease file. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    const sockets = this.sockets;
    this.sockets = undefined;
    if (sockets) await Promise.all([sockets.recv.close(), sockets.send.close()]);
    await Promise.allSettled([...this.inFlight]);
    await this.direct?.close();
    this.direct = undefined;
    await this.options.flooder?.stop?.();
    await this.writer?.flush();
  }

  /** Counters since start. */
  stats(): DhcpServerStats {
    return structuredClone(this.counters);
  }

  /** hostname → address of the active leases. */
  hosts(): Record<string, string> {
    return this.pool.hosts(this.now());
  }

  leases(): Lease[] {
    return this.pool.activeLeases(this.now());
  }

  /** Ends expired leases now (also runs on a timer). */
  sweep(): void {
    const now = this.now();
    const ended = this.pool.sweep(now);
    if (ended.length === 0) return;
    for (const l of ended)
      this.logger.info({ ip: l.ip, chaddr: l.chaddr, hostname: l.hostname }, 'dhcp: lease ended');
    this.changed();
    const active = this.pool.activeLeases(now).map((l) => l.chaddr);
    this.options.flooder?.prune?.(active).catch((err: Error) => {
      this.logger.warn({ error: err.message }, 'dhcp: pruning flood entries failed');
    });
  }

  private count(kind: DhcpServerMetric['kind'], type: string): void {
    if (kind === 'received' || kind === 'sent') {
      const m = this.counters[kind];
      m[type] = (m[type] ?? 0) + 1;
    } else {
      this.counters[kind]++;
      if (kind === 'ignored') this.counters.ignoredBy[type] = (this.counters.ignoredBy[type] ?? 0) + 1;
    }
    this.options.metrics?.({ kind, type });
  }

  private changed(): void {
    this.writer?.schedule();
    this.publishHosts(false);
  }

  private publishHosts(force: boolean): void {
    const hosts = this.pool.hosts(this.now());
    const key = JSON.stringify(hosts);
    if (!force && key === this.lastHosts) return;
    this.lastHosts = key;
    try {
      this.options.onLeasesChanged?.(hosts);
    } catch (err) {
      this.logger.error({ error: errorMessage(err) }, 'dhcp: onLeasesChanged failed');
    }
  }

  private async handle(buf: Buffer, from: RemoteInfo): Promise<void> {
    let msg: DhcpMessage;
    try {
      msg = decodeDhcp(buf);
    } catch (err) {
      const reason = err instanceof DhcpDecodeError ? err.reason : 'unexpected decoder error';
      this.count('malformed', reason);
      this.noteMalformed(reason, from);
      return;
    }
    try {
      await this.dispatch(msg, from);
    } catch (err) {
      this.logger.error(
        {
          error: errorMessage(err),
          xid: msg.xid,
          chaddr: msg.chaddr,
          type: messageTypeName(msg.messageType),
        },
        'dhcp: handling a message failed',
      );
    }
  }

  private noteMalformed(reason: string, from: RemoteInfo): void {
    this.malformedSinceWarn++;
    this.logger.debug({ from: `${from.address}:${from.port}`, reason }, 'dhcp: malformed packet dropped');
    const now = this.now();
    if (now - this.lastMalformedWarn >= 60_000) {
      this.logger.warn(
        { count: this.malformedSinceWarn, lastReason: reason, from: from.address },
        'dhcp: dropping malformed DHCP packets',
      );
      this.lastMalformedWarn = now;
      this.malformedSinceWarn = 0;
    }
  }

  /** Counts and logs (debug) a request that gets no answer. */
  private refuse(msg: DhcpMessage, from: RemoteInfo, reason: string): void {
    this.count('ignored', reason);
    this.logger.debug(
      {
        from: from.address,
        chaddr: msg.chaddr,
        ciaddr: msg.ciaddr,
        type: messageTypeName(msg.messageType),
        reason,
      },
      'dhcp: request ignored',
    );
  }

  /**
   * Why a request is not answered at all, or undefined. Only the overlay is served: no relays, no
   * ciaddr or requested address outside it, and a client with an address (ciaddr) must send from
   * it, so a reply is never aimed at another address. A client without one may send from any
   * source (the kernel picks another interface's address for a device without one).
   */
  private outsideOverlay(msg: DhcpMessage, from: RemoteInfo): string | undefined {
    if (msg.giaddr !== ZERO) return 'relayed';
    if (msg.ciaddr !== ZERO) {
      if (!this.pool.isHostAddress(msg.ciaddr)) return 'ciaddr outside the overlay';
      if (from.address !== msg.ciaddr) return 'source is not ciaddr';
    }
    const requested = msg.options.requestedIp;
    if (requested !== undefined && !this.pool.isHostAddress(requested)) {
      return 'requested address outside the overlay';
    }
    return undefined;
  }

  /** One source address may not bring in more than `maxClientsPerSource` clients. */
  private tooManyFromSource(client: PoolClient, source: string, now: number): boolean {
    if (source === ZERO || this.sources.get(client.clientKey) === source) return false;
    if (this.pool.leaseOf(client.clientKey, now) || this.pool.offerOf(client.clientKey, now)) return false;
    let holding = 0;
    for (const [key, src] of this.sources) {
      if (this.pool.leaseOf(key, now) || this.pool.offerOf(key, now)) {
        if (src === source) holding++;
      } else {
        this.sources.delete(key);
      }
    }
    return holding >= this.maxClientsPerSource;
  }

  private noteSource(client: PoolClient, source: string): void {
    if (source !== ZERO) this.sources.set(client.clientKey, source);
  }

  private async dispatch(msg: DhcpMessage, from: RemoteInfo): Promise<void> {
    if (msg.op !== BOOTREQUEST) {
      this.count('ignored', 'BOOTREPLY');
      return;
    }
    const type = messageTypeName(msg.messageType);
    this.count('received', type);
    const outside = this.outsideOverlay(msg, from);
    if (outside) return this.refuse(msg, from, outside);
    const hostname = sanitizeHostname(msg.options.hostname);
    const client: PoolClient = {
      clientKey: clientKeyOf(msg),
      chaddr: msg.chaddr,
      ...(hostname !== undefined ? { hostname } : {}),
    };
    const serverId = msg.options.serverId;
    const forOthers = serverId !== undefined && serverId !== this.options.serverAddress;
    switch (msg.messageType) {
      case DhcpMessageType.DISCOVER:
        if (this.tooManyFromSource(client, from.address, this.now())) {
          return this.refuse(msg, from, 'too many clients from one source');
        }
        return this.discover(msg, client, from);
      case DhcpMessageType.REQUEST:
        if (forOthers) {
          this.pool.cancelOffer(client.clientKey);
          this.count('ignored', 'other server');
          return;
        }
        if (this.tooManyFromSource(client, from.address, this.now())) {
          return this.refuse(msg, from, 'too many clients from one source');
        }
        return this.request(msg, client, from);
      case DhcpMessageType.RELEASE:
        if (forOthers) return this.count('ignored', 'other server');
        if (this.pool.release(client, msg.ciaddr, this.now())) {
          this.logger.info({ ip: msg.ciaddr, chaddr: msg.chaddr, hostname }, 'dhcp: lease released');
          this.changed();
        } else {
          this.refuse(msg, from, 'release of a lease not held');
        }
        return;
      case DhcpMessageType.DECLINE: {
        if (forOthers) return this.count('ignored', 'other server');
        const ip = msg.options.requestedIp ?? msg.ciaddr;
        if (this.pool.decline(client, ip, this.now())) {
          this.logger.warn(
            { ip, chaddr: msg.chaddr },
            'dhcp: client declined the address (in use?); quarantined',
          );
          this.changed();
        } else {
          this.refuse(msg, from, 'decline of an address not offered or leased');
        }
        return;
      }
      case DhcpMessageType.INFORM:
        if (msg.ciaddr === ZERO) return this.refuse(msg, from, 'INFORM without ciaddr');
        return this.reply(msg, DhcpMessageType.ACK, { yiaddr: ZERO, inform: true });
      default:
        this.count('ignored', `client sent ${type}`);
        return;
    }
  }

  /**
   * True when `ip` is used on the overlay by another MAC and the pool has no ended lease explaining
   * it (the client we leased it to, gone since): the address is then set aside and counted.
   */
  private async inUseByOther(ip: string, client: PoolClient): Promise<boolean> {
    const check = this.inUseCheck;
    if (!check || this.pool.recordOf(client.clientKey) === ip) return false;
    let holder: string | undefined;
    try {
      holder = await check.holder(ip);
    } catch (err) {
      const now = this.now();
      if (now - this.lastInUseCheckWarn >= 60_000) {
        this.lastInUseCheckWarn = now;
        this.logger.warn({ error: errorMessage(err) }, 'dhcp: cannot check whether addresses are in use');
      }
      return false;
    }
    if (!holder || holder === client.chaddr) return false;
    const now = this.now();
    const record = this.pool.recordAt(ip);
    if (record && record.chaddr === holder && record.expiresAt <= now) return false;
    this.pool.setAside(ip, now);
    this.counters.inUse++;
    this.logger.warn(
      { ip, holder, chaddr: client.chaddr, holdSec: this.pool.declineHoldSec },
      'dhcp: address in use on the overlay by a client we did not lease it to; set aside',
    );
    this.changed();
    return true;
  }

  private async discover(msg: DhcpMessage, client: PoolClient, from: RemoteInfo): Promise<void> {
    const requestedIp = msg.options.requestedIp;
    for (let attempt = 0; ; attempt++) {
      const now = this.now();
      const offer = this.pool.offer({ ...client, ...(requestedIp ? { requestedIp } : {}) }, now);
      if (!offer) {
        this.noteExhausted(msg, client, now);
        return;
      }
      // Bounded: a table full of strangers must not keep one DISCOVER busy.
      if (attempt < 8 && (await this.inUseByOther(offer.ip, client))) continue;
      this.noteSource(client, from.address);
      this.logger.debug({ ip: offer.ip, chaddr: msg.chaddr, xid: msg.xid }, 'dhcp: offering');
      await this.reply(msg, DhcpMessageType.OFFER, { yiaddr: offer.ip });
      return;
    }
  }

  /** Counts a DISCOVER left unanswered for want of an address; warns at most every 10 s. */
  private noteExhausted(msg: DhcpMessage, client: PoolClient, now: number): void {
    this.counters.exhausted++;
    this.exhaustedSinceWarn++;
    if (now - this.lastExhaustedWarn < 10_000) return;
    this.lastExhaustedWarn = now;
    const u = this.pool.usage(now);
    this.logger.warn(
      {
        chaddr: msg.chaddr,
        hostname: client.hostname,
        network: this.pool.network.cidr,
        unanswered: this.exhaustedSinceWarn,
        ...u,
      },
      'dhcp: no address to offer (pool exhausted, or the reserved address is quarantined)',
    );
    this.exhaustedSinceWarn = 0;
  }

  private async request(msg: DhcpMessage, client: PoolClient, from: RemoteInfo): Promise<void> {
    const requested = msg.options.requestedIp;
    const ip = requested ?? (msg.ciaddr !== ZERO ? msg.ciaddr : undefined);
    const state =
      msg.options.serverId !== undefined
        ? 'selecting'
        : requested !== undefined
          ? 'init-reboot'
          : msg.ciaddr !== ZERO
            ? 'renewing/rebinding'
            : 'unknown';
    if (ip === undefined) {
      await this.nak(msg, 'no requested address');
      return;
    }
    const record = this.pool.recordOf(client.clientKey);
    if (state === 'init-reboot' && record === undefined) {
      // RFC 2131 4.3.2: no record of this client → remain silent (it falls back to DISCOVER).
      return this.refuse(msg, from, 'init-reboot of an unknown client');
    }
    if ((state === 'init-reboot' || state === 'renewing/rebinding') && record !== ip) {
      await this.nak(msg, `${ip} is not leased to this client`);
      return;
    }
    if (
      state === 'selecting' &&
      this.pool.offerOf(client.clientKey, this.now()) !== ip &&
      (await this.inUseByOther(ip, client))
    ) {
      await this.nak(msg, `${ip} is in use`);
      return;
    }
    const result = this.pool.request(client, ip, this.now());
    if (result.type === 'nak') {
      this.logger.info({ ip, chaddr: msg.chaddr, state, reason: result.reason }, 'dhcp: NAK');
      await this.nak(msg, result.reason);
      return;
    }
    this.noteSource(client, from.address);
    if (result.replaced) {
      this.logger.warn(
        { ip, hostname: client.hostname, previousChaddr: result.replaced.chaddr, chaddr: msg.chaddr },
        'dhcp: reserved address taken over by a new client with the same hostname',
      );
    }
    this.logger.info(
      { ip, chaddr: msg.chaddr, hostname: client.hostname, client: client.clientKey, state },
      'dhcp: ACK',
    );
    this.changed();
    await this.reply(msg, DhcpMessageType.ACK, { yiaddr: ip, leaseTimeSec: result.leaseTimeSec });
  }

  private nak(msg: DhcpMessage, reason: string): Promise<void> {
    return this.reply(msg, DhcpMessageType.NAK, { yiaddr: ZERO, nak: reason.slice(0, 255) });
  }

  private async reply(
    req: DhcpMessage,
    type: DhcpMessageType,
    o: { yiaddr: string; leaseTimeSec?: number; nak?: string; inform?: boolean },
  ): Promise<void> {
    let options: DhcpOptions;
    if (o.nak !== undefined) {
      options = { serverId: this.options.serverAddress, message: o.nak.replace(/[^\x20-\x7e]/g, '?') };
    } else {
      const lease = o.inform ? undefined : (o.leaseTimeSec ?? this.pool.leaseTimeSec);
      options = {
        ...this.baseOptions,
        ...(lease !== undefined
          ? {
              leaseTimeSec: lease,
              renewalTimeSec: Math.floor(lease / 2),
              rebindingTimeSec: Math.floor((lease * 7) / 8),
            }
          : {}),
      };
    }
    const buf = encodeDhcp({
      op: BOOTREPLY,
      xid: req.xid,
      flags: req.flags,
      ciaddr: type === DhcpMessageType.NAK ? ZERO : req.ciaddr,
      yiaddr: o.yiaddr,
      siaddr: type === DhcpMessageType.NAK ? ZERO : this.options.serverAddress,
      giaddr: req.giaddr,
      chaddr: req.chaddr,
      messageType: type,
      options,
    });
    const sockets = this.sockets;
    if (!sockets) return;
    let dest: string;
    // Unicast only to a client's own overlay address (dispatch checked it is the source too).
    if (type !== DhcpMessageType.NAK && req.ciaddr !== ZERO && this.pool.isHostAddress(req.ciaddr)) {
      dest = req.ciaddr;
    } else {
      dest = LIMITED_BROADCAST;
      if (await this.sendDirect(req.chaddr, buf)) {
        this.count('sent', messageTypeName(type));
        // The kernel's own broadcasts to the client (ARP) still need the flood entry: after the reply.
        const p = this.flood(req.chaddr).finally(() => this.inFlight.delete(p));
        this.inFlight.add(p);
        return;
      }
      await this.flood(req.chaddr);
    }
    try {
      await sockets.send.send(buf, this.clientPort, dest);
      this.count('sent', messageTypeName(type));
    } catch (err) {
      this.logger.warn(
        { error: errorMessage(err), to: `${dest}:${this.clientPort}`, type: messageTypeName(type) },
        'dhcp: cannot send reply',
      );
    }
  }

  /** Sends a broadcast reply as a VXLAN datagram to the client's VTEP; false when it cannot. */
  private async sendDirect(chaddr: string, reply: Buffer): Promise<boolean> {
    const { vxlan, flooder } = this.options;
    const direct = this.direct;
    if (!vxlan || !direct || !flooder?.vtepOf) return false;
    try {
      const vtep = await flooder.vtepOf(chaddr);
      if (!vtep) return false;
      const frame = vxlanBroadcastFrame({
        vni: vxlan.vni,
        srcMac: vxlan.mac,
        srcIp: this.options.serverAddress,
        payload: reply,
        srcPort: this.port,
        dstPort: this.clientPort,
      });
      await direct.send(frame, vxlan.port, vtep);
      return true;
    } catch (err) {
      this.logger.warn(
        { chaddr, error: errorMessage(err) },
        'dhcp: cannot send the reply to the client VTEP',
      );
      return false;
    }
  }

  private async flood(chaddr: string): Promise<void> {
    const flooder = this.options.flooder;
    if (!flooder) return;
    let timer: NodeJS.Timeout | undefined;
    const limit = this.options.flooderTimeoutMs ?? 3000;
    try {
      await Promise.race([
        flooder.ensure(chaddr),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${limit} ms`)), limit);
        }),
      ]);
    } catch (err) {
      this.logger.warn(
        { chaddr, error: errorMessage(err) },
        'dhcp: could not add the client VTEP to the flood list',
      );
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
}
