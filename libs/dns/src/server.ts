// The gateway's DNS server (pod-gateway used dnsmasq): UDP and TCP on the vxlan0 gateway address,
// local names from the DHCP leases, a cache of encoded upstream responses, split forwarding, and
// upstreams that follow resolv.conf.
//
// Hot path (UDP, cached name): parse the header and the question from the datagram, look the
// lower-cased question up, copy the stored response, patch ID/RD/question case/TTLs, send. No DNS
// library and no per-query logging on that path.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import {
  createServer,
  isIP,
  type AddressInfo,
  type Server as TcpServer,
  type Socket as TcpSocket,
} from 'node:net';
import { silentLogger, type Logger, type Registry } from '@knet/runtime';
import { attachUdp, type UdpEndpoint } from './fastudp';
import { ResponseCache, serveEntry, type CacheOptions } from './cache';
import type { UpstreamGate } from './gate';
import { LocalNames, type LocalEntry } from './hosts';
import { ResolvConfWatcher, type ResolvConf } from './resolv';
import { SplitTable, type SplitRule } from './split';
import { createStats, registerDnsMetrics, type DnsStats } from './stats';
import { canonicalIp, parseUpstream, upstreamName, type Upstream } from './types';
import { UpstreamClient } from './upstream';
import {
  CLASS_IN,
  DROP,
  RCODE_NOERROR,
  RCODE_SERVFAIL,
  TYPE_A,
  TYPE_PTR,
  buildResponse,
  clientUdpLimit,
  keyToName,
  parseQuery,
  truncatedCopy,
  type AnswerRecord,
  type ParsedQuery,
  type ResponseInfo,
} from './wire';

const TYPE_ANY = 255;
const CLASS_ANY = 255;

export interface ListenAddress {
  /** IPv4 or IPv6 address (production: the vxlan0 gateway address). */
  address: string;
  /** Default 53. */
  port?: number;
}

export interface DnsServerOptions {
  /** Where to answer, each on UDP and TCP. */
  listen: readonly ListenAddress[];
  /** Follow this resolv.conf for the upstreams (the VPN client may rewrite it). */
  resolvConfPath?: string;
  /** Fixed upstreams (`addr` or `addr#port`), used when there is no resolvConfPath. */
  upstreams?: readonly string[];
  /** Port of upstreams given without one, resolv.conf's included (default 53). */
  upstreamPort?: number;
  /** Split forwarding rules (see splitRulesFromSettings). */
  split?: readonly SplitRule[];
  /**
   * Which default upstreams may be asked now (split rules' servers are not gated). Queries that no
   * split rule matches get SERVFAIL while it allows none, counted as `errors_total{kind="blocked"}`.
   * pod-gateway's kill switch uses a {@link RouteUpstreamGate}.
   */
  gate?: UpstreamGate;
  /** Local-names domain: `name.domain` resolves like `name`; PTR answers give `name.domain`. */
  domain?: string;
  /** TTL of local answers in seconds (default 5: leases change, clients re-ask soon). */
  localTtl?: number;
  cache?: CacheOptions;
  /** Time to wait for one upstream before the next (default 2000 ms). */
  upstreamTimeoutMs?: number;
  /**
   * Receive and send client datagrams through Node's UDP handle directly (default true; see
   * fastudp.ts). False uses only the public dgram API.
   */
  fastUdp?: boolean;
  /** UDP sockets per family towards upstreams, each on a random port (default 4). */
  upstreamSockets?: number;
  /** Cache misses waiting for upstreams at most; more are dropped (default 1024). */
  maxPending?: number;
  /** Concurrent TCP clients at most (default 64). */
  tcpMaxConnections?: number;
  /** A TCP client that completes no query for this long is disconnected (default 10 s). */
  tcpIdleMs?: number;
  /** Unanswered queries per TCP connection before reading pauses (default 16). */
  tcpMaxPipelined?: number;
  /** resolv.conf watcher timing. */
  resolvConfDebounceMs?: number;
  resolvConfPollMs?: number;
  logger?: Logger;
  /** Registers the knet_dns_* metrics here. */
  registry?: Registry;
}

/**
 * Where answers go: one per UDP socket, one per TCP connection. The resolve pipeline
 * ({@link DnsServer.onQuery}) is the same for both; a transport only frames and sends.
 */
interface Transport {
  /** TCP: answers are never truncated, misses go upstream over TCP. */
  readonly tcp: boolean;
  /** Queries of this transport waiting for an upstream answer. */
  waiting: number;
  /** Sends one answer; `port` and `address` are the UDP client's (a TCP connection has one client). */
  send(response: Buffer, port: number, address: string): void;
}

interface TcpConn extends Transport {
  readonly socket: TcpSocket;
  readonly idle: NodeJS.Timeout;
}

/** A query waiting for an upstream answer, and where that answer goes. */
interface Waiter {
  query: Buffer;
  q: ParsedQuery;
  transport: Transport;
  port: number;
  address: string;
}

/** dgram's per-send address lookup, made synchronous (listen and client addresses are IPs). */
const ipLookup = (
  address: string,
  _family: unknown,
  cb: (err: Error | null, address: string, family: number) => void,
): void => cb(null, address, isIP(address));

export class DnsServer {
  private readonly opts: DnsServerOptions;
  private readonly log: Logger;
  private readonly cache: ResponseCache;
  private readonly local: LocalNames;
  private readonly split: SplitTable;
  private readonly stats_: DnsStats = createStats();
  private readonly upstreamPort: number;
  private readonly localTtl: number;
  private readonly maxPending: number;
  private readonly inflight = new Map<string, Waiter[]>();
  private readonly udpSockets: UdpSocket[] = [];
  private readonly tcpServers: TcpServer[] = [];
  private readonly tcpConns = new Set<TcpConn>();
  private upstream: UpstreamClient;
  private upstreams_: readonly Upstream[] = [];
  private watcher: ResolvConfWatcher | undefined;
  private running = false;
  /** Bumped by flushCache, so answers to queries sent before a flush are not cached. */
  private generation = 0;
  private lastSendWarn = 0;

  constructor(opts: DnsServerOptions) {
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
    this.cache = new ResponseCache(opts.cache);
    this.local = new LocalNames(opts.domain);
    this.upstreamPort = opts.upstreamPort ?? 53;
    this.split = new SplitTable(opts.split ?? [], this.upstreamPort);
    this.localTtl = opts.localTtl ?? 5;
    this.maxPending = opts.maxPending ?? 1024;
    this.upstream = this.newUpstreamClient();
    if (opts.upstreams) this.useUpstreams(this.toUpstreams(opts.upstreams));
    if (opts.registry) {
      registerDnsMetrics(opts.registry, () => ({ stats: this.stats_, cacheEntries: this.cache.size }));
    }
  }

  /** Counters since construction. */
  get stats(): Readonly<DnsStats> {
    return this.stats_;
  }

  /** The current default upstreams (resolv.conf's, minus our own listen addresses). */
  get upstreams(): readonly Upstream[] {
    return this.upstreams_;
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /** Distinct questions waiting for an upstream answer. */
  get pendingQueries(): number {
    return this.inflight.size;
  }

  /** Bound addresses (useful with port 0, where UDP and TCP ports differ). */
  addresses(): { udp: AddressInfo[]; tcp: AddressInfo[] } {
    return {
      udp: this.udpSockets.map((s) => s.address()),
      tcp: this.tcpServers.map((s) => s.address() as AddressInfo),
    };
  }

  /**
   * Binds every listen address (UDP and TCP) and starts following resolv.conf. Rejects, with
   * everything closed again, when a bind fails or resolv.conf cannot be read.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.upstream = this.newUpstreamClient();
    try {
      if (this.opts.resolvConfPath !== undefined) {
        this.watcher = new ResolvConfWatcher({
          path: this.opts.resolvConfPath,
          logger: this.log,
          debounceMs: this.opts.resolvConfDebounceMs,
          pollMs: this.opts.resolvConfPollMs,
          onChange: (conf) => this.onResolvConf(conf, true),
        });
        this.onResolvConf(this.watcher.start(), false);
      }
      for (const l of this.opts.listen) {
        await this.listenUdp(l.address, l.port ?? 53);
        await this.listenTcp(l.address, l.port ?? 53);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.info(
      {
        listen: this.opts.listen.map((l) => `${l.address}#${l.port ?? 53}`),
        upstreams: this.upstreams_.map(upstreamName),
        split: this.split.domains(),
      },
      'DNS server listening',
    );
  }

  /** Closes the sockets, drops TCP clients, abandons queries waiting for upstreams. */
  async stop(): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    this.watcher?.stop();
    this.watcher = undefined;
    this.upstream.close();
    this.inflight.clear();
    for (const c of this.tcpConns) {
      clearTimeout(c.idle);
      c.socket.destroy();
    }
    this.tcpConns.clear();
    const closing: Promise<void>[] = [];
    for (const s of this.udpSockets.splice(0)) {
      closing.push(
        new Promise((resolve) => {
          try {
            s.close(() => resolve());
          } catch {
            resolve(); // never bound
          }
        }),
      );
    }
    for (const s of this.tcpServers.splice(0)) {
      closing.push(new Promise((resolve) => s.close(() => resolve())));
    }
    await Promise.all(closing);
    if (wasRunning) this.log.info({}, 'DNS server stopped');
  }

  /**
   * Replaces the local names (lower-case names without trailing dot → IPv4 addresses), answered
   * authoritatively with PTR records for their addresses. Takes effect for the next query.
   */
  setHosts(hosts: ReadonlyMap<string, readonly string[]>): void {
    const { skipped } = this.local.set(hosts);
    if (skipped.length > 0) this.log.warn({ skipped: skipped.slice(0, 10) }, 'local names skipped');
    this.log.debug({ names: this.local.size }, 'local names updated');
  }

  /** Replaces the default upstreams (`addr` or `addr#port`) and flushes the cache. */
  setUpstreams(servers: readonly string[]): void {
    this.useUpstreams(this.toUpstreams(servers));
    this.flushCache();
    this.log.info({ upstreams: this.upstreams_.map(upstreamName) }, 'DNS upstreams set');
  }

  /** Forgets every cached answer (dnsmasq's clear-on-reload). */
  flushCache(): void {
    this.generation++;
    this.cache.clear();
  }

  private useUpstreams(upstreams: readonly Upstream[]): void {
    this.upstreams_ = upstreams;
    this.opts.gate?.upstreamsChanged(upstreams);
  }

  private newUpstreamClient(): UpstreamClient {
    return new UpstreamClient({
      timeoutMs: this.opts.upstreamTimeoutMs,
      socketsPerFamily: this.opts.upstreamSockets,
      logger: this.log,
      stats: this.stats_,
    });
  }

  private onResolvConf(conf: ResolvConf, changed: boolean): void {
    if (changed) {
      this.setUpstreams(conf.nameservers);
    } else {
      this.useUpstreams(this.toUpstreams(conf.nameservers));
    }
    if (this.upstreams_.length === 0) {
      this.log.warn({ path: this.opts.resolvConfPath }, 'resolv.conf has no usable nameserver');
    }
  }

  /** Parses server specs, dropping bad ones and our own listen addresses (forwarding loops). */
  private toUpstreams(specs: readonly string[]): Upstream[] {
    const own = new Set(this.opts.listen.map((l) => `${canonicalIp(l.address)}#${l.port ?? 53}`));
    const out: Upstream[] = [];
    for (const s of specs) {
      let u: Upstream;
      try {
        u = parseUpstream(s, this.upstreamPort);
      } catch (err) {
        this.log.warn({ server: s, err: String(err) }, 'ignoring nameserver');
        continue;
      }
      if (own.has(`${u.canonical}#${u.port}`)) {
        this.log.debug({ server: s }, 'ignoring our own address as upstream');
        continue;
      }
      if (!out.some((x) => x.canonical === u.canonical && x.port === u.port)) out.push(u);
    }
    return out;
  }

  private listenUdp(address: string, port: number): Promise<void> {
    const family = isIP(address);
    if (family === 0) return Promise.reject(new RangeError(`not an IP address: ${address}`));
    const sock = createSocket({
      type: family === 4 ? 'udp4' : 'udp6',
      ipv6Only: family === 6,
      lookup: ipLookup,
    });
    this.udpSockets.push(sock);
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address, port, exclusive: true }, () => {
        sock.off('error', reject);
        sock.on('error', (err) => this.udpError(err));
        try {
          sock.setRecvBufferSize(4 * 1024 * 1024);
          sock.setSendBufferSize(4 * 1024 * 1024);
        } catch {
          // capped by net.core.[rw]mem_max; the defaults work too
        }
        const ep: UdpEndpoint = attachUdp(
          sock,
          (msg, p, a) => this.onQuery(udp, msg, p, a),
          (err) => this.udpError(err),
          this.opts.fastUdp ?? true,
        );
        const udp: Transport = { tcp: false, waiting: 0, send: ep.send };
        resolve();
      });
    });
  }

  private listenTcp(address: string, port: number): Promise<void> {
    const server = createServer({ noDelay: true }, (s) => this.onTcpConnection(s));
    server.maxConnections = this.opts.tcpMaxConnections ?? 64;
    server.on('drop', () => this.stats_.tcpDropped++);
    this.tcpServers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address, port, exclusive: true, ipv6Only: isIP(address) === 6 }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.warn({ err: String(err) }, 'DNS TCP server error'));
        resolve();
      });
    });
  }

  // ── The resolve pipeline (UDP and TCP) ─────────────────────────────────────────────────────

  /**
   * Answers one query: FORMERR/NOTIMP/BADVERS for malformed ones, then local names, then the
   * cache, else upstream. The hot path (UDP, cached name) parses only the header and question,
   * copies the stored response and patches it; no DNS library, no logging.
   */
  private onQuery(t: Transport, msg: Buffer, port: number, address: string): void {
    const q = parseQuery(msg);
    if (q.rcode !== RCODE_NOERROR) {
      this.stats_.malformed++;
      if (q.rcode !== DROP) t.send(buildResponse(msg, q, { rcode: q.rcode }), port, address);
      return;
    }
    if (this.local.size > 0) {
      const e = this.local.lookup(q.key.slice(0, q.qnameLen));
      if (e !== undefined) {
        this.stats_.queriesLocal++;
        t.send(this.localAnswer(msg, q, e, sizeLimit(t, q)), port, address);
        return;
      }
    }
    const now = this.cache.now();
    const e = this.cache.get(q.key, now);
    if (e !== undefined) {
      this.stats_.queriesCache++;
      t.send(fitForClient(serveEntry(e, msg, q, now), t, q), port, address);
      return;
    }
    this.forward({ query: msg, q, transport: t, port, address });
  }

  private udpError(err: Error): void {
    const now = Date.now();
    if (now - this.lastSendWarn < 10_000) return;
    this.lastSendWarn = now;
    this.log.warn({ err: String(err) }, 'DNS UDP socket error (further ones muted for 10 s)');
  }

  // ── TCP framing ────────────────────────────────────────────────────────────────────────────

  private onTcpConnection(socket: TcpSocket): void {
    if (!this.running) {
      socket.destroy();
      return;
    }
    const idleMs = this.opts.tcpIdleMs ?? 10_000;
    const maxPipelined = this.opts.tcpMaxPipelined ?? 16;
    const conn: TcpConn = {
      tcp: true,
      waiting: 0,
      socket,
      idle: setTimeout(() => {
        if (conn.waiting > 0) {
          conn.idle.refresh();
          return;
        }
        this.stats_.tcpDropped++;
        socket.destroy();
      }, idleMs),
      send: (response) => {
        if (socket.destroyed) return;
        const framed = Buffer.allocUnsafe(response.length + 2);
        framed.writeUInt16BE(response.length, 0);
        response.copy(framed, 2);
        socket.write(framed);
        if (conn.waiting < maxPipelined && socket.isPaused()) socket.resume();
      },
    };
    this.tcpConns.add(conn);
    let buffered: Buffer | null = null;
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(conn.idle);
      this.tcpConns.delete(conn);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered !== null && buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (len < 12 || len > 4096) {
          // not a query (or an absurd one): no way to resynchronise the stream
          this.stats_.malformed++;
          socket.destroy();
          return;
        }
        if (buffered.length < 2 + len) break;
        const msg = buffered.subarray(2, 2 + len);
        buffered = buffered.length === 2 + len ? null : buffered.subarray(2 + len);
        conn.idle.refresh();
        this.onQuery(conn, msg, 0, '');
      }
      if (conn.waiting >= maxPipelined) socket.pause();
    });
  }

  // ── Slow path ──────────────────────────────────────────────────────────────────────────────

  private localAnswer(msg: Buffer, q: ParsedQuery, e: LocalEntry, maxSize: number): Buffer {
    const answers: AnswerRecord[] = [];
    if (q.qclass === CLASS_IN || q.qclass === CLASS_ANY) {
      if (q.qtype === TYPE_A || q.qtype === TYPE_ANY)
        for (const rdata of e.a) answers.push({ type: TYPE_A, rdata });
      if (q.qtype === TYPE_PTR || q.qtype === TYPE_ANY)
        for (const rdata of e.ptr) answers.push({ type: TYPE_PTR, rdata });
    }
    return buildResponse(msg, q, { rcode: RCODE_NOERROR, aa: true, answers, ttl: this.localTtl, maxSize });
  }

  /**
   * Sends a cache miss upstream (over the client's transport). Identical questions already on
   * their way wait for the same answer instead of being sent again.
   */
  private forward(waiter: Waiter): void {
    const { query: msg, q, transport: t } = waiter;
    const flightKey = t.tcp ? `${q.key}t` : q.key;
    const waiting = this.inflight.get(flightKey);
    if (waiting !== undefined && waiting.length < 64) {
      this.stats_.queriesForwarded++;
      t.waiting++;
      waiting.push(waiter);
      return;
    }
    if (waiting !== undefined || this.upstream.pending >= this.maxPending) {
      // Too much waiting already: a UDP client will retry; a TCP client must not wait forever.
      this.stats_.overload++;
      if (t.tcp) t.send(buildResponse(msg, q, { rcode: RCODE_SERVFAIL }), waiter.port, waiter.address);
      return;
    }
    this.stats_.queriesForwarded++;
    const split = this.split.match(keyToName(q.key));
    const gate = this.opts.gate;
    const servers = split ?? (gate ? gate.allowed(this.upstreams_) : this.upstreams_);
    if (servers.length === 0) {
      if (split === undefined && gate && this.upstreams_.length > 0) this.stats_.blocked++;
      else this.stats_.servfail++;
      t.send(buildResponse(msg, q, { rcode: RCODE_SERVFAIL }), waiter.port, waiter.address);
      return;
    }
    const waiters = [waiter];
    t.waiting++;
    this.inflight.set(flightKey, waiters);
    const generation = this.generation;
    void this.upstream
      .query(msg.subarray(0, q.end), q.questionEnd, servers, t.tcp ? 'tcp' : 'udp')
      .then((reply) => {
        if (this.inflight.get(flightKey) === waiters) this.inflight.delete(flightKey);
        if (!this.running) return;
        if (reply === null) {
          this.stats_.servfail += waiters.length;
          for (const w of waiters) answer(w, buildResponse(w.query, w.q, { rcode: RCODE_SERVFAIL }));
          return;
        }
        if (generation === this.generation) this.cache.insert(q.key, reply.response, reply.info);
        for (const w of waiters) answer(w, relayed(reply.response, reply.info, w));
      });
  }
}

/** The largest answer a transport's client takes: the UDP client's limit; TCP's framing limit. */
function sizeLimit(t: Transport, q: ParsedQuery): number {
  return t.tcp ? 65535 : clientUdpLimit(q);
}

/** The answer itself, or its TC-only copy when it is too large for the client. */
function fitForClient(response: Buffer, t: Transport, q: ParsedQuery): Buffer {
  return response.length > sizeLimit(t, q) ? truncatedCopy(response, q.questionEnd, q) : response;
}

/** Sends the answer to a waiting query. */
function answer(w: Waiter, response: Buffer): void {
  w.transport.waiting--;
  w.transport.send(fitForClient(response, w.transport, w.q), w.port, w.address);
}

/** An upstream reply for one client: its ID, RD bit and question bytes; TC-only if cut short. */
function relayed(response: Buffer, info: ResponseInfo, w: Waiter): Buffer {
  if (!info.ok) {
    // truncated mid-record: send the clean TC header+question so the client retries over TCP
    const out = truncatedCopy(response, info.questionEnd, w.q);
    out.writeUInt16BE(w.q.id, 0);
    w.query.copy(out, 12, 12, w.q.questionEnd);
    return out;
  }
  const out = Buffer.from(response.subarray(0, info.end));
  out.writeUInt16BE(w.q.id, 0);
  out[2] = ((out[2] as number) & 0xfe) | ((w.q.flags >> 8) & 1);
  w.query.copy(out, 12, 12, w.q.questionEnd);
  return out;
}
