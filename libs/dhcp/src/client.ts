// DhcpClient: DISCOVER/OFFER/REQUEST/ACK with retransmission over a plain UDP socket.
import type { IpRoute } from '@knet/host-net';
import { Backoff, errorMessage, silentLogger, type Logger } from '@knet/runtime';
import {
  BOOTREPLY,
  BOOTREQUEST,
  BROADCAST_FLAG,
  decodeDhcp,
  DhcpMessageType,
  encodeDhcp,
  messageTypeName,
  type DhcpMessage,
  type DhcpOptions,
} from './codec';
import { ANY_ADDRESS as ZERO, LIMITED_BROADCAST, isIPv4, netmaskToPrefix, normalizeMac } from './ipv4';
import { udpSocketFactory, type DhcpSocket, type DhcpSocketFactory, type RemoteInfo } from './transport';

const DEFAULT_PRL = [1, 3, 6, 12, 15, 26, 28, 51, 54, 58, 59];

/** What the caller applies to the interface (this client configures nothing). */
export interface DhcpLease {
  interface: string;
  address: string;
  prefixLength: number;
  subnetMask: string;
  /** First router (option 3), if any. */
  router?: string;
  dnsServers: string[];
  /** The server that granted the lease (option 54); renewals go there. */
  serverId: string;
  leaseTimeSec: number;
  /** Seconds after obtainedAt to renew (unicast to serverId). */
  t1: number;
  /** Seconds after obtainedAt to rebind (broadcast). */
  t2: number;
  mtu?: number;
  domain?: string;
  /** ms since the epoch. */
  obtainedAt: number;
}

export interface DhcpClientTimeouts {
  /** First retransmission delay (default 1000 ms); doubles up to maxRetransmitMs. */
  initialRetransmitMs?: number;
  /** Retransmission delay cap (default 8000 ms). */
  maxRetransmitMs?: number;
  /** Each delay is shortened by up to this fraction at random (default 0.25). */
  jitter?: number;
  /** REQUESTs sent after an OFFER before starting over with DISCOVER (default 4). */
  requestAttempts?: number;
  /** Default overall time limit of acquire() (default 60 s) and renew()/rebind() (default 10 s). */
  acquireMs?: number;
  renewMs?: number;
}

export interface DhcpClientOptions {
  /** Interface name, for messages (and the caller's bookkeeping). */
  interface: string;
  /** chaddr: the interface's MAC. */
  mac: string;
  /** Option 12; reservations on the server match it. */
  hostname?: string;
  /** Option 61 as hex (e.g. `01` + MAC, or a stable id so a new MAC keeps the address). */
  clientId?: string;
  /** Client port (default 68). */
  port?: number;
  /** Server port (default 67). */
  serverPort?: number;
  /** Default 0.0.0.0. */
  bindAddress?: string;
  /** Default 255.255.255.255. */
  broadcastAddress?: string;
  logger?: Logger;
  timeouts?: DhcpClientTimeouts;
  /** Option 55 (default 1, 3, 6, 12, 15, 26, 28, 51, 54, 58, 59). */
  parameterRequestList?: number[];
  socketFactory?: DhcpSocketFactory;
  random?: () => number;
  now?: () => number;
}

/** A DHCP client operation failed; one line that names the interface. */
export class DhcpClientError extends Error {
  override readonly name: string = 'DhcpClientError';
  constructor(
    readonly iface: string,
    message: string,
  ) {
    super(`${iface}: ${message}`);
  }
}

/** No lease (or no renewal) within the time limit. The message says what was sent and heard. */
export class DhcpTimeoutError extends DhcpClientError {
  override readonly name = 'DhcpTimeoutError';
}

/** The server refused a renewal/rebinding: the lease is gone, start over with acquire(). */
export class DhcpNakError extends DhcpClientError {
  override readonly name = 'DhcpNakError';
}

interface Tally {
  sent: Record<string, number>;
  heard: Record<string, number>;
  ignored: number;
  garbage: number;
  sendError?: string;
}

function describe(t: Tally): string {
  const list = (r: Record<string, number>, names: string[]) =>
    names.map((n) => `${r[n] ?? 0} ${n}`).join(', ');
  const sentNames = Object.keys(t.sent).length ? Object.keys(t.sent) : ['DISCOVER'];
  const heardNames = [
    'OFFER',
    'ACK',
    'NAK',
    ...Object.keys(t.heard).filter((n) => !['OFFER', 'ACK', 'NAK'].includes(n)),
  ];
  return (
    `sent ${list(t.sent, sentNames)}; heard ${list(t.heard, heardNames)}` +
    (t.ignored ? `; ignored ${t.ignored} replies for other transactions` : '') +
    (t.garbage ? `; ${t.garbage} undecodable packets` : '') +
    (t.sendError ? `; last send error: ${t.sendError}` : '')
  );
}

/** Why a server may not have answered a DISCOVER at all, and where to look. */
function noOfferHint(iface: string): string {
  return (
    `; no OFFER: either the server has no free address (pool exhausted: see its ` +
    `knet_dhcp_pool_addresses{state="free"} and knet_dhcp_pool_exhausted_total metrics and its ` +
    `"no address to offer" warning) or it is unreachable over ${iface} (VXLAN port and VNI, the ` +
    `flood entry to its pod IP, knet_dhcp_packets_total{direction="received"} not growing)`
  );
}

type Accept<T> = (msg: DhcpMessage, from: RemoteInfo) => T | undefined;

/** One open socket plus the transaction currently waiting for a reply. */
class Session {
  waiter: ((msg: DhcpMessage, from: RemoteInfo) => boolean) | undefined;

  constructor(
    readonly socket: DhcpSocket,
    readonly tally: Tally,
    mac: string,
  ) {
    socket.onMessage((buf, from) => {
      let msg: DhcpMessage;
      try {
        msg = decodeDhcp(buf);
      } catch {
        tally.garbage++;
        return;
      }
      // Our own broadcasts come back on a shared port; other clients' replies too.
      if (msg.op !== BOOTREPLY || msg.chaddr !== mac) return;
      if (!this.waiter?.(msg, from)) tally.ignored++;
    });
  }
}

/**
 * A DHCPv4 client for one interface over a UDP socket bound to 0.0.0.0:68 (SO_REUSEADDR). It sets
 * the BROADCAST flag when it has no address (a UDP socket cannot receive a unicast to an address the
 * interface does not have yet) and accepts only replies with its xid and chaddr.
 *
 * Sending to 255.255.255.255 needs a route for it when the namespace has no default route through
 * the interface (pod-gateway clients have none): see {@link installBroadcastRoute}.
 */
export class DhcpClient {
  private readonly logger: Logger;
  private readonly mac: string;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly options: DhcpClientOptions) {
    this.mac = normalizeMac(options.mac);
    if (options.clientId !== undefined && !/^([0-9a-f]{2}){2,255}$/i.test(options.clientId)) {
      throw new TypeError('DhcpClient: clientId must be 2..255 bytes of hex');
    }
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  private get iface(): string {
    return this.options.interface;
  }

  private newXid(): number {
    return Math.floor(this.random() * 0x100000000) >>> 0;
  }

  private async open(): Promise<Session> {
    const socket = (this.options.socketFactory ?? udpSocketFactory)();
    try {
      await socket.bind(this.options.port ?? 68, this.options.bindAddress ?? ZERO);
    } catch (err) {
      await socket.close();
      throw new DhcpClientError(this.iface, errorMessage(err));
    }
    return new Session(socket, { sent: {}, heard: {}, ignored: 0, garbage: 0 }, this.mac);
  }

  private message(
    type: DhcpMessageType,
    xid: number,
    started: number,
    o: { ciaddr?: string; broadcast?: boolean; options?: DhcpOptions },
  ): Buffer {
    const withIdentity: DhcpOptions = {
      ...(this.options.hostname ? { hostname: this.options.hostname } : {}),
      ...(this.options.clientId ? { clientId: this.options.clientId.toLowerCase() } : {}),
      ...o.options,
    };
    return encodeDhcp({
      op: BOOTREQUEST,
      xid,
      secs: Math.min(65535, Math.floor((this.now() - started) / 1000)),
      flags: o.broadcast ? BROADCAST_FLAG : 0,
      ciaddr: o.ciaddr ?? ZERO,
      chaddr: this.mac,
      messageType: type,
      options: withIdentity,
    });
  }

  /**
   * Sends `build()` to `dest` now and again after backoff delays until `accept` returns a value, the
   * deadline passes, `maxAttempts` are used up or `signal` aborts (then undefined).
   */
  private retransmit<T>(
    s: Session,
    type: DhcpMessageType,
    build: () => Buffer,
    dest: string,
    accept: Accept<T>,
    deadline: number,
    signal: AbortSignal | undefined,
    maxAttempts = Infinity,
  ): Promise<T | undefined> {
    const t = this.options.timeouts ?? {};
    const backoff = new Backoff({
      baseMs: t.initialRetransmitMs ?? 1000,
      maxMs: Math.max(t.maxRetransmitMs ?? 8000, t.initialRetransmitMs ?? 1000),
      factor: 2,
      jitter: t.jitter ?? 0.25,
      random: this.random,
    });
    const name = messageTypeName(type);
    return new Promise((resolve) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let attempts = 0;
      const finish = (v: T | undefined) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        s.waiter = undefined;
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const onAbort = () => finish(undefined);
      s.waiter = (msg, from) => {
        const v = accept(msg, from);
        if (v === undefined) return false;
        finish(v);
        return true;
      };
      const sendOnce = async (): Promise<void> => {
        if (done) return;
        if (this.now() >= deadline || attempts >= maxAttempts) return finish(undefined);
        attempts++;
        try {
          await s.socket.send(build(), this.options.serverPort ?? 67, dest);
          s.tally.sent[name] = (s.tally.sent[name] ?? 0) + 1;
          this.logger.debug(
            { interface: this.iface, type: name, to: dest, attempt: attempts },
            'dhcp client: sent',
          );
        } catch (err) {
          s.tally.sendError = errorMessage(err);
        }
        if (done) return;
        const delay = Math.max(0, Math.min(backoff.next(), deadline - this.now()));
        timer = setTimeout(() => void sendOnce(), delay);
      };
      if (signal?.aborted) return finish(undefined);
      signal?.addEventListener('abort', onAbort, { once: true });
      void sendOnce();
    });
  }

  private heard(s: Session, msg: DhcpMessage): void {
    const n = messageTypeName(msg.messageType);
    s.tally.heard[n] = (s.tally.heard[n] ?? 0) + 1;
  }

  private toLease(
    ack: DhcpMessage,
    from: RemoteInfo,
    fallback: DhcpOptions,
    fallbackServer: string,
  ): DhcpLease {
    const o = ack.options;
    const serverId =
      o.serverId ?? fallback.serverId ?? (isIPv4(from.address) ? from.address : fallbackServer);
    let mask = o.subnetMask ?? fallback.subnetMask;
    let prefixLength = mask ? netmaskToPrefix(mask) : undefined;
    if (prefixLength === undefined) {
      this.logger.warn(
        { interface: this.iface, subnetMask: mask },
        'dhcp client: no usable subnet mask; assuming /24',
      );
      prefixLength = 24;
      mask = '255.255.255.0';
    }
    const leaseTimeSec = o.leaseTimeSec ?? fallback.leaseTimeSec ?? 3600;
    const routers = o.routers ?? fallback.routers;
    const dns = o.dnsServers ?? fallback.dnsServers ?? [];
    const mtu = o.mtu ?? fallback.mtu;
    const domain = o.domainName ?? fallback.domainName;
    return {
      interface: this.iface,
      address: ack.yiaddr,
      prefixLength,
      subnetMask: mask as string,
      ...(routers?.[0] ? { router: routers[0] } : {}),
      dnsServers: [...dns],
      serverId,
      leaseTimeSec,
      t1: o.renewalTimeSec ?? Math.floor(leaseTimeSec / 2),
      t2: o.rebindingTimeSec ?? Math.floor((leaseTimeSec * 7) / 8),
      ...(mtu !== undefined ? { mtu } : {}),
      ...(domain !== undefined ? { domain } : {}),
      obtainedAt: this.now(),
    };
  }

  /**
   * DISCOVER (retransmitted with backoff) → first OFFER → REQUEST (broadcast, with the chosen
   * server id) → ACK. A NAK, or no answer to `requestAttempts` REQUESTs, starts over. Throws
   * {@link DhcpTimeoutError} after `timeoutMs`.
   */
  async acquire(
    opts: { requestedIp?: string; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<DhcpLease> {
    const timeoutMs = opts.timeoutMs ?? this.options.timeouts?.acquireMs ?? 60_000;
    const started = this.now();
    const deadline = started + timeoutMs;
    const broadcast = this.options.broadcastAddress ?? LIMITED_BROADCAST;
    const prl = this.options.parameterRequestList ?? DEFAULT_PRL;
    const s = await this.open();
    try {
      while (this.now() < deadline && !opts.signal?.aborted) {
        const xid = this.newXid();
        const offer = await this.retransmit(
          s,
          DhcpMessageType.DISCOVER,
          () =>
            this.message(DhcpMessageType.DISCOVER, xid, started, {
              broadcast: true,
              options: {
                parameterRequestList: prl,
                ...(opts.requestedIp ? { requestedIp: opts.requestedIp } : {}),
              },
            }),
          broadcast,
          (m, from) => {
            if (m.xid !== xid || m.messageType !== DhcpMessageType.OFFER) return undefined;
            this.heard(s, m);
            if (m.yiaddr === ZERO) return undefined;
            return { msg: m, serverId: m.options.serverId ?? from.address };
          },
          deadline,
          opts.signal,
        );
        if (!offer) break;
        this.logger.debug(
          { interface: this.iface, offered: offer.msg.yiaddr, serverId: offer.serverId },
          'dhcp client: offer',
        );
        const reply = await this.retransmit(
          s,
          DhcpMessageType.REQUEST,
          () =>
            this.message(DhcpMessageType.REQUEST, xid, started, {
              broadcast: true,
              options: { parameterRequestList: prl, requestedIp: offer.msg.yiaddr, serverId: offer.serverId },
            }),
          broadcast,
          (m, from) => {
            if (
              m.xid !== xid ||
              (m.messageType !== DhcpMessageType.ACK && m.messageType !== DhcpMessageType.NAK)
            ) {
              return undefined;
            }
            if ((m.options.serverId ?? from.address) !== offer.serverId) return undefined;
            this.heard(s, m);
            return { msg: m, from };
          },
          deadline,
          opts.signal,
          this.options.timeouts?.requestAttempts ?? 4,
        );
        if (!reply) continue;
        if (reply.msg.messageType === DhcpMessageType.NAK) {
          this.logger.info(
            { interface: this.iface, serverId: offer.serverId, message: reply.msg.options.message },
            'dhcp client: NAK; starting over',
          );
          continue;
        }
        if (reply.msg.yiaddr === ZERO) continue;
        const lease = this.toLease(reply.msg, reply.from, offer.msg.options, offer.serverId);
        this.logger.info(
          {
            interface: this.iface,
            address: `${lease.address}/${lease.prefixLength}`,
            serverId: lease.serverId,
          },
          'dhcp client: lease acquired',
        );
        return lease;
      }
      throw new DhcpTimeoutError(
        this.iface,
        `no DHCP lease ${opts.signal?.aborted ? 'before abort' : `within ${timeoutMs} ms`}: ${describe(s.tally)}` +
          ((s.tally.heard.OFFER ?? 0) === 0 ? noOfferHint(this.iface) : ''),
      );
    } finally {
      await s.socket.close();
    }
  }

  private async extend(
    lease: DhcpLease,
    mode: 'renew' | 'rebind',
    opts: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<DhcpLease> {
    const timeoutMs = opts.timeoutMs ?? this.options.timeouts?.renewMs ?? 10_000;
    const started = this.now();
    const s = await this.open();
    try {
      const xid = this.newXid();
      const reply = await this.retransmit(
        s,
        DhcpMessageType.REQUEST,
        () =>
          this.message(DhcpMessageType.REQUEST, xid, started, {
            ciaddr: lease.address,
            options: { parameterRequestList: this.options.parameterRequestList ?? DEFAULT_PRL },
          }),
        mode === 'renew' ? lease.serverId : (this.options.broadcastAddress ?? LIMITED_BROADCAST),
        (m, from) => {
          if (
            m.xid !== xid ||
            (m.messageType !== DhcpMessageType.ACK && m.messageType !== DhcpMessageType.NAK)
          ) {
            return undefined;
          }
          this.heard(s, m);
          return { msg: m, from };
        },
        started + timeoutMs,
        opts.signal,
      );
      if (!reply) {
        throw new DhcpTimeoutError(
          this.iface,
          `no answer to ${mode} of ${lease.address} within ${timeoutMs} ms: ${describe(s.tally)}`,
        );
      }
      if (reply.msg.messageType === DhcpMessageType.NAK) {
        const why = reply.msg.options.message ? `: ${reply.msg.options.message}` : '';
        throw new DhcpNakError(
          this.iface,
          `server ${reply.from.address} refused ${mode} of ${lease.address}${why}`,
        );
      }
      const fresh = this.toLease(reply.msg, reply.from, {}, lease.serverId);
      if (fresh.address !== lease.address) {
        throw new DhcpNakError(
          this.iface,
          `server answered the ${mode} of ${lease.address} with ${fresh.address}`,
        );
      }
      return { ...lease, ...fresh, obtainedAt: this.now() };
    } finally {
      await s.socket.close();
    }
  }

  /** RENEWING: REQUEST with ciaddr, unicast to the lease's server. NAK → {@link DhcpNakError}. */
  renew(lease: DhcpLease, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<DhcpLease> {
    return this.extend(lease, 'renew', opts);
  }

  /** REBINDING: REQUEST with ciaddr, broadcast to any server. NAK → {@link DhcpNakError}. */
  rebind(lease: DhcpLease, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<DhcpLease> {
    return this.extend(lease, 'rebind', opts);
  }

  /** RELEASE, unicast to the lease's server (no answer is expected). */
  async release(lease: DhcpLease): Promise<void> {
    await this.sendOnce(
      this.message(DhcpMessageType.RELEASE, this.newXid(), this.now(), {
        ciaddr: lease.address,
        options: { serverId: lease.serverId },
      }),
      lease.serverId,
    );
  }

  /** DECLINE (the address is in use on the link), broadcast (no answer is expected). */
  async decline(lease: DhcpLease): Promise<void> {
    await this.sendOnce(
      this.message(DhcpMessageType.DECLINE, this.newXid(), this.now(), {
        options: { requestedIp: lease.address, serverId: lease.serverId },
      }),
      this.options.broadcastAddress ?? LIMITED_BROADCAST,
    );
  }

  private async sendOnce(buf: Buffer, dest: string): Promise<void> {
    const s = await this.open();
    try {
      await s.socket.send(buf, this.options.serverPort ?? 67, dest);
    } catch (err) {
      throw new DhcpClientError(this.iface, `cannot send to ${dest}: ${errorMessage(err)}`);
    } finally {
      await s.socket.close();
    }
  }
}

/**
 * Installs `255.255.255.255/32 dev <dev>` (ip route replace) so a UDP socket can send DHCP
 * broadcasts out of `dev` in a namespace without a default route through it (pod-gateway clients
 * delete their default route before DHCP). Without it, sending to 255.255.255.255 fails with
 * ENETUNREACH, or leaves through another interface. Run it in the client's namespace, e.g. with
 * `createHostNet(new ExecaRunner()).ip`.
 */
export async function installBroadcastRoute(ip: Pick<IpRoute, 'replaceRoute'>, dev: string): Promise<void> {
  await ip.replaceRoute({ dst: `${LIMITED_BROADCAST}/32`, dev });
}
