import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as SshServer, type Connection, type ServerChannel } from 'ssh2';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '@knet/runtime';
import {
  HELLO_TIMEOUT_MS,
  MAX_MESSAGE,
  PREAUTH_MAX_MESSAGE,
  SSH_ALGORITHMS,
  SUBPROTOCOL,
  TARGETS,
  TARGET_NAMES,
  TUNNEL_PATH,
  decodeHello,
  setMaxMessageSize,
  type AuthorizationFailure,
  type Hello,
  type HelloReply,
  type HostKey,
  type TargetName,
  webSocketDuplex,
} from '@knet/tunnel';
import { AgentSeries, type ProxyMetrics, type SessionSeries } from './metrics';
import type { AgentSession, SessionRegistry } from './sessions';

/**
 * The answer to a hello. `binding` names what the agent was admitted against (the Cluster's UID and
 * its token's digest); the session keeps it, and the controller evicts sessions whose binding is no
 * longer the Cluster's (token rotated, Cluster re-created under the same name). A refusal's reason
 * and message go to the proxy's log and metrics only: the agent is told `unauthorized`.
 */
export type Authorization =
  { ok: true; binding: string } | { ok: false; reason: AuthorizationFailure; message: string };

/** Defaults of the limits on connections that have not had their hello accepted. */
export const HANDSHAKE_LIMITS = {
  timeoutMs: HELLO_TIMEOUT_MS,
  max: 512,
  maxPerSource: 128,
  /** Bytes the proxy may have queued towards a peer before its hello (a peer that does not read). */
  maxBuffered: 64 * 1024,
} as const;

/**
 * The HTTP server's own limits on the agent port. Every connection there is under the handshake
 * deadline from its accept, which counts it (`handshake-timeout`); the HTTP server's head timeout is
 * only a backstop behind it, twice as long, so that the deadline always fires first (node checks
 * its timeouts on an interval: with equal values either could close a silent connection, and one
 * closed by the HTTP server went uncounted).
 */
export function agentPortHttpLimits(handshakeTimeoutMs: number): { headersTimeoutMs: number } {
  return { headersTimeoutMs: 2 * handshakeTimeoutMs };
}

/** What the agent is told for every failed authorization, whatever the detail. */
export const UNAUTHORIZED_MESSAGE =
  "the cluster name or token is not accepted (the proxy's log has the reason)";

export interface TunnelServerOptions {
  hostKey: HostKey;
  registry: SessionRegistry;
  /** Checks a hello's cluster and token (constant-time). */
  authorize: (hello: Hello) => Authorization;
  /** False while this replica does not serve (not the leader): upgrades get 503. */
  isServing: () => boolean;
  logger: Logger;
  metrics: ProxyMetrics;
  version: string;
  /** SSH keepalive towards agents; an agent that misses it twice is dropped. */
  keepaliveMs: number;
  /** One deadline from the TCP accept to an accepted hello (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * Connections without an accepted hello, in all (default 512); a new one sheds the one that has
   * been quiet longest.
   */
  maxHandshakes?: number;
  /** The same per source address (an IPv6 /64) (default 128). */
  maxHandshakesPerSource?: number;
}

/** A connection from its TCP accept until its hello is accepted or it closes. */
interface Pending {
  readonly socket: Duplex;
  readonly source: string;
  readonly timer: NodeJS.Timeout;
  /** A failure was counted (each connection counts once). */
  failed: boolean;
  /** Asked for the tunnel (not a plain HTTP request). */
  upgraded: boolean;
}

/**
 * Accepts agents: the WebSocket upgrade on /v1/tunnel, SSH inside it, the hello, the targets.
 *
 * Everything before an accepted hello is bounded: one deadline from the TCP accept (`handleConnection`,
 * or the upgrade when the HTTP server does not report accepts) covers the upgrade, the SSH handshake
 * and the hello; messages are at most `PREAUTH_MAX_MESSAGE` and the proxy queues at most
 * `maxBuffered` bytes towards the peer; and the number of such connections is capped in all and per
 * source address, a new one shedding the one quiet longest (so a flood of idle connections cannot lock an
 * agent out, and cannot grow memory either). Any failure closes only that connection.
 */
export class TunnelServer {
  private readonly wss: WebSocketServer;
  private readonly ssh: SshServer;
  private readonly connections = new Set<Connection>();
  /** In order of last activity (accept, upgrade, WebSocket message): the first has been quiet longest. */
  private readonly pending = new Map<Duplex, Pending>();
  private readonly pendingBySource = new Map<string, Set<Pending>>();
  private readonly pendingByStream = new WeakMap<Duplex, Pending>();
  private readonly limits: { timeoutMs: number; max: number; maxPerSource: number };
  private readonly series: AgentSeries;

  constructor(private readonly o: TunnelServerOptions) {
    this.series = new AgentSeries(o.metrics);
    // A Cluster no longer served whose last session closed: its series go (the controller calls
    // registry.closeCluster on deletion).
    o.registry.on('forget', (cluster) => this.series.forget(cluster));
    this.limits = {
      timeoutMs: o.handshakeTimeoutMs ?? HANDSHAKE_LIMITS.timeoutMs,
      max: o.maxHandshakes ?? HANDSHAKE_LIMITS.max,
      maxPerSource: o.maxHandshakesPerSource ?? HANDSHAKE_LIMITS.maxPerSource,
    };
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      // Raised to MAX_MESSAGE once the hello is accepted (setMaxMessageSize).
      maxPayload: PREAUTH_MAX_MESSAGE,
      // Nobody needs WebSocket pings answered (liveness is SSH keepalives); a peer flooding pings
      // while never reading would make the proxy queue pongs.
      autoPong: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.ssh = new SshServer(
      {
        hostKeys: [o.hostKey.privateKey],
        ident: `knet-tower-proxy_${o.version}`,
        algorithms: SSH_ALGORITHMS as never,
        keepaliveInterval: o.keepaliveMs,
        keepaliveCountMax: 1,
        highWaterMark: 1024 * 1024,
      },
      (conn, info) => this.onSsh(conn, info.ip),
    );
    this.ssh.on('error', (err: Error) => o.logger.warn({ err: err.message }, 'ssh server error'));
  }

  /** Connections accepted whose hello has not been accepted (yet). */
  get handshakes(): number {
    return this.pending.size;
  }

  /** For the HTTP server's `connection` event: starts the handshake deadline at the TCP accept. */
  handleConnection(socket: Duplex & { remoteAddress?: string | undefined }): void {
    this.admit(socket, socket.remoteAddress);
  }

  /** For the HTTP server's `upgrade` event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const p = this.pending.get(socket) ?? this.admit(socket, req.socket.remoteAddress);
    if (!p || socket.destroyed) return;
    p.upgraded = true;
    this.touch(p);
    const path = (req.url ?? '').split('?')[0];
    const refuse = (code: number, reason: string, text: string) => {
      this.fail(p, reason);
      const body = `${text}\n`;
      // Closed once the answer is written: bytes the client pipelined after its request are not read.
      socket.end(
        `HTTP/1.1 ${code} ${code === 503 ? 'Service Unavailable' : code === 404 ? 'Not Found' : 'Bad Request'}\r\n` +
          `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        () => socket.destroy(),
      );
    };
    if (path !== TUNNEL_PATH)
      return refuse(404, 'bad-path', `no tunnel endpoint at ${path}; agents connect to ${TUNNEL_PATH}`);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket')
      return refuse(400, 'not-websocket', 'expected Upgrade: websocket');
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    if (!protocols.includes(SUBPROTOCOL)) {
      return refuse(
        400,
        'bad-subprotocol',
        `expected Sec-WebSocket-Protocol: ${SUBPROTOCOL} (agent and proxy versions differ?)`,
      );
    }
    if (!this.o.isServing()) return refuse(503, 'not-serving', 'this proxy replica is not the leader; retry');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (!this.pending.has(socket)) {
        ws.terminate(); // shed or timed out during the upgrade
        return;
      }
      ws.on('error', () => this.fail(p, 'bad-frame')); // too large, unmasked, bad opcode…
      const stream = webSocketDuplex(ws) as Duplex & { remoteAddress?: string; remotePort?: number };
      const onMessage = () => {
        if (!this.pending.has(socket)) {
          ws.off('message', onMessage); // hello accepted: nothing to watch any more
          return;
        }
        // Before the hello, the proxy only answers a few handshake packets: a peer that makes it
        // queue more is not reading them. What SSH writes waits in the stream while the WebSocket
        // holds one message the socket cannot take: count both (ws.bufferedAmount alone stays
        // at that one message however much piles up behind it).
        if (ws.bufferedAmount + stream.writableLength > HANDSHAKE_LIMITS.maxBuffered) {
          this.fail(p, 'slow-reader');
          ws.terminate();
          return;
        }
        this.touch(p);
      };
      ws.on('message', onMessage);
      stream.remoteAddress = req.socket.remoteAddress;
      stream.remotePort = req.socket.remotePort;
      this.pendingByStream.set(stream, p);
      (stream as unknown as { ws: WebSocket }).ws = ws;
      this.ssh.injectSocket(stream as never);
    });
  }

  /** Starts tracking a connection (or refuses it when it is already gone); sheds the quietest when full. */
  private admit(socket: Duplex, remoteAddress: string | undefined): Pending | undefined {
    if (socket.destroyed) return undefined;
    const source = sourceOf(remoteAddress);
    const fromSource = this.pendingBySource.get(source);
    if (fromSource && fromSource.size >= this.limits.maxPerSource) {
      const quietest = fromSource.values().next().value;
      if (quietest) this.shed(quietest, 'shed-source');
    }
    while (this.pending.size >= this.limits.max) {
      const quietest = this.pending.values().next().value;
      if (!quietest) break;
      this.shed(quietest, 'shed-total');
    }
    const timer = setTimeout(() => {
      if (!this.pending.has(socket)) return;
      this.fail(p, 'handshake-timeout');
      this.o.logger.debug(
        { remote: remoteAddress },
        'no accepted hello within the handshake deadline; closing',
      );
      socket.destroy();
    }, this.limits.timeoutMs);
    timer.unref();
    const p: Pending = { socket, source, timer, failed: false, upgraded: false };
    this.pending.set(socket, p);
    let set = this.pendingBySource.get(source);
    if (!set) this.pendingBySource.set(source, (set = new Set()));
    set.add(p);
    this.o.metrics.preauthConnections.inc();
    socket.once('close', () => this.release(p));
    return p;
  }

  /**
   * Marks a connection active: shedding takes the one that has been quiet longest, so an agent in
   * the middle of its handshake (a message every few ms) outlives strangers that sent their bytes
   * and went silent, even when they arrived after it.
   */
  private touch(p: Pending): void {
    if (this.pending.get(p.socket) !== p) return;
    this.pending.delete(p.socket);
    this.pending.set(p.socket, p);
    const set = this.pendingBySource.get(p.source);
    set?.delete(p);
    set?.add(p);
  }

  private shed(p: Pending, reason: 'shed-source' | 'shed-total'): void {
    this.fail(p, reason);
    this.release(p);
    p.socket.destroy();
  }

  /** Counts the first failure of a connection. */
  private fail(p: Pending, reason: string): void {
    if (p.failed || !this.pending.has(p.socket)) return;
    p.failed = true;
    this.o.metrics.handshakeFailures.inc({ reason });
  }

  /** Stops tracking: the hello was accepted, or the connection closed. */
  private release(p: Pending): void {
    if (this.pending.get(p.socket) !== p) return;
    clearTimeout(p.timer);
    this.pending.delete(p.socket);
    const set = this.pendingBySource.get(p.source);
    set?.delete(p);
    if (set?.size === 0) this.pendingBySource.delete(p.source);
    this.o.metrics.preauthConnections.dec();
  }

  private onSsh(conn: Connection, ip: string): void {
    // ssh2 keeps the transport it was given; we need it to cut a dead peer off (see 'error').
    const stream = (conn as unknown as { _sock?: Duplex & { ws?: WebSocket } })._sock;
    const pending = stream ? this.pendingByStream.get(stream) : undefined;
    this.connections.add(conn);
    const log = this.o.logger.child({ remote: ip });
    let session: Session | undefined;
    let sessionChannel = false;
    let helloTried = false;

    conn.on('error', (err: Error & { level?: string }) => {
      if (pending) this.fail(pending, 'ssh');
      log.debug({ err: err.message }, 'agent connection error');
      // A keepalive timeout means the peer is gone or frozen: no close handshake will complete,
      // so tear the WebSocket down now instead of waiting for its close timeout.
      stream?.destroy();
    });
    conn.on('close', () => {
      this.connections.delete(conn);
      if (session?.series) {
        session.series.sessionDown();
        this.o.registry.remove(session);
        log.info(
          { cluster: session.cluster, agent: session.agent, session: session.id },
          'agent disconnected',
        );
      }
    });
    conn.on('authentication', (ctx) => {
      // Identity is proven in the hello, after the agent has verified our host key.
      if (ctx.method === 'none') ctx.accept();
      else ctx.reject(['none']);
    });
    conn.on('ready', () => {
      conn.on('session', (accept, reject) => {
        // One session channel, for the one hello.
        if (sessionChannel) return reject();
        sessionChannel = true;
        const ch = accept();
        ch.on('exec', (acceptExec, rejectExec, info) => {
          if (helloTried) {
            log.info('agent sent a second hello on one connection; refused');
            return rejectExec();
          }
          helloTried = true;
          const out = acceptExec();
          const r = this.hello(info.command, conn, ip);
          out.write(`${JSON.stringify(r.reply)}\n`);
          out.exit(r.reply.ok ? 0 : 1);
          out.end();
          if (r.reply.ok && r.session) {
            session = r.session;
            if (pending) this.release(pending);
            if (stream?.ws) setMaxMessageSize(stream.ws, MAX_MESSAGE);
          } else {
            if (pending && r.failure) this.fail(pending, r.failure);
            // Let the reply reach the agent, then hang up (the deadline cuts a peer that lingers).
            setTimeout(() => conn.end(), 200).unref();
          }
        });
      });
      conn.on('tcpip', (_accept, reject) => reject()); // agents may not open tunnels into the host
      conn.on('request', (accept, reject, name, info) => {
        if (!session || (name !== 'tcpip-forward' && name !== 'cancel-tcpip-forward')) return reject?.();
        const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number };
        const target = TARGET_NAMES.find((t) => t === bindAddr && TARGETS[t] === bindPort);
        if (!target) {
          log.info({ bindAddr, bindPort }, 'agent advertised an unknown target; refused');
          return reject?.();
        }
        if (name === 'tcpip-forward') session.targets.add(target);
        else session.targets.delete(target);
        if (!session.series && session.targets.size > 0) {
          // The session becomes usable (and counts for AgentAvailable) with its first target; it
          // counts in the series of its cluster's generation at that time.
          session.series = this.series.session(session.cluster);
          session.series.sessionUp();
          this.o.registry.add(session);
        }
        accept?.();
      });
    });
  }

  private hello(
    command: string,
    conn: Connection,
    ip: string,
  ): { reply: HelloReply; session?: Session; failure?: string } {
    const decoded = decodeHello(command);
    if (!decoded.ok) {
      return { reply: { ok: false, reason: 'bad-hello', message: decoded.message }, failure: 'bad-hello' };
    }
    const h = decoded.hello;
    const auth = this.o.authorize(h);
    if (!auth.ok) {
      this.o.logger.warn(
        { remote: ip, cluster: h.cluster, agent: h.agent, reason: auth.reason },
        `agent refused: ${auth.message}`,
      );
      // The same answer whatever the reason, so that a stranger learns no Cluster names.
      return {
        reply: { ok: false, reason: 'unauthorized', message: UNAUTHORIZED_MESSAGE },
        failure: auth.reason,
      };
    }
    const session = new Session(conn, h, auth.binding, ip);
    this.o.logger.info(
      { remote: ip, cluster: h.cluster, agent: h.agent, session: session.id, agentVersion: h.agentVersion },
      'agent connected',
    );
    return { reply: { ok: true, proxyVersion: this.o.version, session: session.id }, session };
  }

  /** Drops every agent (proxy shutdown or lost leadership), and every tunnel still in its handshake. */
  closeAll(reason: string): void {
    for (const c of this.connections) c.end();
    for (const p of [...this.pending.values()]) {
      if (!p.upgraded) continue; // plain HTTP (probes, scrapes) ends with the HTTP server
      this.release(p);
      p.socket.destroy();
    }
    this.o.logger.info({ reason, count: this.connections.size }, 'closing agent connections');
  }

  close(): void {
    this.closeAll('shutdown');
    this.wss.close();
  }
}

/**
 * The key the per-source cap counts by: the IPv4 address (also when IPv4-mapped), or the /64 of an
 * IPv6 address (one host usually owns a whole /64).
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return address;
  const [left = '', right = ''] = address.split('::');
  const l = left ? left.split(':') : [];
  const r = address.includes('::') ? (right ? right.split(':') : []) : [];
  const groups = [...l, ...Array<string>(Math.max(0, 8 - l.length - r.length)).fill('0'), ...r];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

class Session implements AgentSession {
  readonly id = randomUUID();
  readonly cluster: string;
  readonly agent: string;
  readonly connectedAt = new Date();
  readonly targets = new Set<TargetName>();
  openChannels = 0;
  /** Set when the session registers (with its first target): what it counts in its cluster's series. */
  series: SessionSeries | undefined;

  constructor(
    private readonly conn: Connection,
    hello: Hello,
    readonly binding: string,
    readonly remoteAddress: string,
  ) {
    this.cluster = hello.cluster;
    this.agent = hello.agent;
  }

  openChannel(target: TargetName, origin: { address: string; port: number }): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (!this.targets.has(target)) {
        reject(new Error(`agent ${this.agent} does not serve ${target}`));
        return;
      }
      this.conn.forwardOut(target, TARGETS[target], origin.address, origin.port, (err, ch: ServerChannel) => {
        if (err) {
          this.series?.channelFailed(target);
          reject(new Error(`agent ${this.agent} refused a channel to ${target}: ${err.message}`));
          return;
        }
        const series = this.series;
        this.openChannels++;
        series?.channelOpened(target);
        ch.once('close', () => {
          this.openChannels--;
          series?.channelClosed(target);
        });
        resolve(ch);
      });
    });
  }

  close(reason: string): void {
    void reason;
    this.conn.end();
  }
}
