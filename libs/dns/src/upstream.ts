// Talking to upstream nameservers: servers tried in order (those that just timed out go last for a
// while), our own random IDs over a small pool of sockets on random ports, replies accepted only
// from the server asked with the ID and question sent, a timeout per attempt, and TCP when the
// client came over TCP.
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket as TcpSocket } from 'node:net';
import { randomFillSync, randomInt } from 'node:crypto';
import type { Logger } from '@knet/runtime';
import { analyzeResponse, RCODE_REFUSED, RCODE_SERVFAIL, sameQuestion, type ResponseInfo } from './wire';
import { canonicalIp, upstreamName, type Upstream } from './types';
import type { DnsStats } from './stats';

export interface UpstreamReply {
  response: Buffer;
  info: ResponseInfo;
  server: Upstream;
}

export interface UpstreamClientOptions {
  /** Time to wait for one server before trying the next (default 2000 ms). */
  timeoutMs?: number;
  /** How long a server that timed out is tried after the others (default 30 s). */
  penaltyMs?: number;
  /** UDP sockets per address family, each on its own random port (default 4). */
  socketsPerFamily?: number;
  logger: Logger;
  stats: DnsStats;
}

/** How one attempt at one server ends (exactly one of the two is called, once). */
interface AttemptEnd {
  /** A reply from the server asked, with the ID and question sent (any RCODE). */
  reply(response: Buffer, info: ResponseInfo): void;
  /** No usable reply: it timed out, or failed (unreachable, connection closed, bad reply). */
  fail(timedOut: boolean, err?: unknown): void;
}

interface Attempt {
  server: Upstream;
  packet: Buffer;
  questionEnd: number;
  timer: NodeJS.Timeout;
  onReply: AttemptEnd['reply'];
  cancel: () => void;
}

interface PoolSocket {
  socket: UdpSocket;
  pending: Map<number, Attempt>;
}

export class UpstreamClient {
  private readonly pools = new Map<4 | 6, PoolSocket[]>();
  private readonly penalizedUntil = new Map<string, number>();
  private readonly tcpSockets = new Set<TcpSocket>();
  private readonly ids = new Uint16Array(256);
  private idPos = this.ids.length;
  private closed = false;
  private inflight = 0;
  readonly timeoutMs: number;

  constructor(private readonly opts: UpstreamClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

  /** Queries waiting for an upstream. */
  get pending(): number {
    return this.inflight;
  }

  /**
   * Sends `packet` (a query whose ID this overwrites; it is not modified otherwise) to each server
   * in turn until one gives a reply other than SERVFAIL/REFUSED; null when none did or the client
   * was closed. `questionEnd`: end of the question in `packet`.
   */
  query(
    packet: Buffer,
    questionEnd: number,
    servers: readonly Upstream[],
    transport: 'udp' | 'tcp',
  ): Promise<UpstreamReply | null> {
    const order = this.order(servers);
    return new Promise((resolve) => {
      let i = 0;
      this.inflight++;
      const finish = (r: UpstreamReply | null) => {
        this.inflight--;
        resolve(r);
      };
      const next = () => {
        const server = order[i++];
        if (this.closed || server === undefined) return finish(null);
        const end: AttemptEnd = {
          reply: (response, info) => {
            if (info.rcode === RCODE_SERVFAIL || info.rcode === RCODE_REFUSED) {
              this.opts.logger.debug(
                { server: upstreamName(server), rcode: info.rcode },
                'upstream failed; next',
              );
              next();
            } else {
              finish({ response, info, server });
            }
          },
          fail: (timedOut, err) => {
            if (timedOut) {
              this.opts.stats.upstreamTimeouts++;
              this.penalizedUntil.set(upstreamKey(server), Date.now() + (this.opts.penaltyMs ?? 30_000));
            } else {
              this.opts.stats.upstreamErrors++;
            }
            this.opts.logger.debug(
              { server: upstreamName(server), err: err === undefined ? undefined : String(err) },
              timedOut ? 'upstream timed out' : 'upstream error',
            );
            next();
          },
        };
        if (transport === 'udp') this.sendUdp(packet, questionEnd, server, end);
        else this.sendTcp(packet, questionEnd, server, end);
      };
      next();
    });
  }

  /** Cancels every pending query (they resolve null) and closes the sockets. */
  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) {
      for (const p of pool) {
        for (const a of p.pending.values()) a.cancel();
        p.pending.clear();
        try {
          p.socket.close();
        } catch {
          // already closed
        }
      }
    }
    this.pools.clear();
    for (const s of this.tcpSockets) s.destroy();
    this.tcpSockets.clear();
  }

  /** Servers in the given order, those penalized for a recent timeout moved to the end. */
  private order(servers: readonly Upstream[]): readonly Upstream[] {
    if (this.penalizedUntil.size === 0) return servers;
    const now = Date.now();
    const bad = (s: Upstream) => {
      const k = upstreamKey(s);
      const until = this.penalizedUntil.get(k);
      if (until === undefined) return false;
      if (until > now) return true;
      this.penalizedUntil.delete(k);
      return false;
    };
    const good: Upstream[] = [];
    const late: Upstream[] = [];
    for (const s of servers) (bad(s) ? late : good).push(s);
    return late.length === 0 ? servers : [...good, ...late];
  }

  private randomId(): number {
    if (this.idPos >= this.ids.length) {
      randomFillSync(this.ids);
      this.idPos = 0;
    }
    return this.ids[this.idPos++] as number;
  }

  private pool(family: 4 | 6): PoolSocket[] {
    let pool = this.pools.get(family);
    if (pool) return pool;
    pool = [];
    const n = Math.max(1, this.opts.socketsPerFamily ?? 4);
    for (let i = 0; i < n; i++) {
      const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6 });
      const entry: PoolSocket = { socket, pending: new Map() };
      socket.on('message', (msg, rinfo) => this.onUdpReply(entry, msg, rinfo));
      socket.on('error', (err) => this.opts.logger.warn({ err: String(err) }, 'upstream socket error'));
      socket.unref();
      pool.push(entry);
    }
    this.pools.set(family, pool);
    return pool;
  }

  private sendUdp(query: Buffer, questionEnd: number, server: Upstream, end: AttemptEnd): void {
    const pool = this.pool(server.family);
    const entry = pool[pool.length === 1 ? 0 : randomInt(pool.length)] as PoolSocket;
    let id = this.randomId();
    for (let tries = 0; entry.pending.has(id) && tries < 16; tries++) id = this.randomId();
    if (entry.pending.has(id)) return end.fail(false, 'no free query ID');
    const packet = Buffer.from(query);
    packet.writeUInt16BE(id, 0);
    let settled = false;
    /** Settles the attempt once: no timer, no pending entry, then `then`. */
    const finish = (then: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(attempt.timer);
      entry.pending.delete(id);
      then();
    };
    const attempt: Attempt = {
      server,
      packet,
      questionEnd,
      timer: setTimeout(() => finish(() => end.fail(true)), this.timeoutMs),
      onReply: (response, info) => finish(() => end.reply(response, info)),
      cancel: () => finish(() => end.fail(false, 'closed')),
    };
    entry.pending.set(id, attempt);
    entry.socket.send(packet, server.port, server.address, (err) => {
      if (err) finish(() => end.fail(false, err));
    });
  }

  private onUdpReply(entry: PoolSocket, msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length < 12) return;
    const attempt = entry.pending.get(msg.readUInt16BE(0));
    const accepted = attempt !== undefined && this.accept(attempt, msg, rinfo);
    if (!accepted) this.opts.stats.upstreamRejected++;
  }

  /** Source, ID and question must match what was sent; then the reply goes to the attempt. */
  private accept(a: Attempt, msg: Buffer, rinfo: RemoteInfo): boolean {
    if (rinfo.port !== a.server.port) return false;
    const from = rinfo.family === 'IPv6' ? canonicalIp(rinfo.address) : rinfo.address;
    if (from !== a.server.canonical) return false;
    const info = analyzeResponse(msg);
    if (!(info.ok || (info.truncated && info.questionEnd > 0))) return false;
    if (!sameQuestion(msg, info.questionEnd, a.packet, a.questionEnd)) return false;
    a.onReply(msg, info);
    return true;
  }

  private sendTcp(query: Buffer, questionEnd: number, server: Upstream, end: AttemptEnd): void {
    const id = this.randomId();
    const framed = Buffer.allocUnsafe(query.length + 2);
    framed.writeUInt16BE(query.length, 0);
    query.copy(framed, 2);
    framed.writeUInt16BE(id, 2);
    const sent = framed.subarray(2);
    let settled = false;
    let buffered: Buffer = Buffer.alloc(0);
    const sock = connect({ host: server.address, port: server.port });
    this.tcpSockets.add(sock);
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.tcpSockets.delete(sock);
      sock.destroy();
      fn();
    };
    const timer = setTimeout(() => done(() => end.fail(true)), this.timeoutMs);
    sock.on('connect', () => sock.write(framed));
    sock.on('error', (err) => done(() => end.fail(false, err)));
    sock.on('close', () => done(() => end.fail(false, 'connection closed')));
    sock.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const len = buffered.readUInt16BE(0);
      if (buffered.length < 2 + len) return;
      const msg = Buffer.from(buffered.subarray(2, 2 + len));
      const info = analyzeResponse(msg);
      const good = info.ok && info.id === id && sameQuestion(msg, info.questionEnd, sent, questionEnd);
      if (!good) {
        this.opts.stats.upstreamRejected++;
        return done(() => end.fail(false, 'bad reply'));
      }
      done(() => end.reply(msg, info));
    });
  }
}

function upstreamKey(s: Upstream): string {
  return `${s.canonical}#${s.port}`;
}
