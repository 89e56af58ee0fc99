import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Server as SshServer, type Connection, type ServerChannel } from 'ssh2';
import { WebSocketServer } from 'ws';
import type { Logger } from '@knet/runtime';
import {
  HELLO_TIMEOUT_MS,
  SSH_ALGORITHMS,
  SUBPROTOCOL,
  TARGETS,
  TARGET_NAMES,
  TUNNEL_PATH,
  decodeHello,
  type Hello,
  type HelloReply,
  type HostKey,
  type RefusalReason,
  type TargetName,
  webSocketDuplex,
} from '@knet/tunnel';
import type { ProxyMetrics } from './metrics';
import type { AgentSession, SessionRegistry } from './sessions';

/**
 * The answer to a hello. `binding` names what the agent was admitted against (the Cluster's UID and
 * its token's digest); the session keeps it, and the controller evicts sessions whose binding is no
 * longer the Cluster's (token rotated, Cluster re-created under the same name).
 */
export type Authorization =
  { ok: true; binding: string } | { ok: false; reason: RefusalReason; message: string };

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
  helloTimeoutMs?: number;
}

/**
 * Accepts agents: the WebSocket upgrade on /v1/tunnel, SSH inside it, the hello, the targets.
 * Everything an agent sends before its hello is accepted is bounded (size, time) and any failure
 * closes only that connection.
 */
export class TunnelServer {
  private readonly wss: WebSocketServer;
  private readonly ssh: SshServer;
  private readonly connections = new Set<Connection>();

  constructor(private readonly o: TunnelServerOptions) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: 4 * 1024 * 1024,
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

  /** For the HTTP server's `upgrade` event. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    const refuse = (code: number, reason: string, text: string) => {
      this.o.metrics.handshakeFailures.inc({ reason });
      const body = `${text}\n`;
      socket.end(
        `HTTP/1.1 ${code} ${code === 503 ? 'Service Unavailable' : code === 404 ? 'Not Found' : 'Bad Request'}\r\n` +
          `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
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
      const stream = webSocketDuplex(ws) as Duplex & { remoteAddress?: string; remotePort?: number };
      stream.remoteAddress = req.socket.remoteAddress;
      stream.remotePort = req.socket.remotePort;
      this.ssh.injectSocket(stream as never);
    });
  }

  private onSsh(conn: Connection, ip: string): void {
    // ssh2 keeps the transport it was given; we need it to cut a dead peer off (see 'error').
    const stream = (conn as unknown as { _sock?: Duplex })._sock;
    this.connections.add(conn);
    const log = this.o.logger.child({ remote: ip });
    let session: Session | undefined;
    let helloDone = false;
    const helloTimer = setTimeout(() => {
      this.o.metrics.handshakeFailures.inc({ reason: 'hello-timeout' });
      log.info('agent did not say hello in time; closing');
      conn.end();
    }, this.o.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
    helloTimer.unref();

    conn.on('error', (err: Error & { level?: string }) => {
      if (!helloDone) this.o.metrics.handshakeFailures.inc({ reason: 'ssh' });
      log.debug({ err: err.message }, 'agent connection error');
      // A keepalive timeout means the peer is gone or frozen: no close handshake will complete,
      // so tear the WebSocket down now instead of waiting for its close timeout.
      stream?.destroy();
    });
    conn.on('close', () => {
      clearTimeout(helloTimer);
      this.connections.delete(conn);
      if (session?.registered) {
        this.o.registry.remove(session);
        this.o.metrics.sessions.dec({ cluster: session.cluster });
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
      conn.on('session', (accept) => {
        const ch = accept();
        ch.on('exec', (acceptExec, rejectExec, info) => {
          if (helloDone) return rejectExec();
          const stream = acceptExec();
          const reply = this.hello(info.command, conn, ip);
          stream.write(`${JSON.stringify(reply.reply)}\n`);
          stream.exit(reply.reply.ok ? 0 : 1);
          stream.end();
          if (reply.reply.ok && reply.session) {
            helloDone = true;
            clearTimeout(helloTimer);
            session = reply.session;
          } else {
            // Let the reply reach the agent, then hang up.
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
        if (!session.registered && session.targets.size > 0) {
          // The session becomes usable (and counts for AgentAvailable) with its first target.
          session.registered = true;
          this.o.registry.add(session);
          this.o.metrics.sessions.inc({ cluster: session.cluster });
        }
        accept?.();
      });
    });
  }

  private hello(command: string, conn: Connection, ip: string): { reply: HelloReply; session?: Session } {
    const decoded = decodeHello(command);
    if (!decoded.ok) {
      this.o.metrics.handshakeFailures.inc({ reason: 'bad-hello' });
      return { reply: { ok: false, reason: 'bad-hello', message: decoded.message } };
    }
    const h = decoded.hello;
    const auth = this.o.authorize(h);
    if (!auth.ok) {
      this.o.metrics.handshakeFailures.inc({ reason: auth.reason });
      this.o.logger.warn(
        { remote: ip, cluster: h.cluster, agent: h.agent, reason: auth.reason },
        `agent refused: ${auth.message}`,
      );
      return { reply: auth };
    }
    const session = new Session(conn, h, auth.binding, ip, this.o.metrics);
    this.o.logger.info(
      { remote: ip, cluster: h.cluster, agent: h.agent, session: session.id, agentVersion: h.agentVersion },
      'agent connected',
    );
    return { reply: { ok: true, proxyVersion: this.o.version, session: session.id }, session };
  }

  /** Drops every agent (proxy shutdown or lost leadership). */
  closeAll(reason: string): void {
    for (const c of this.connections) c.end();
    this.o.logger.info({ reason, count: this.connections.size }, 'closing agent connections');
  }

  close(): void {
    this.closeAll('shutdown');
    this.wss.close();
  }
}

class Session implements AgentSession {
  readonly id = randomUUID();
  readonly cluster: string;
  readonly agent: string;
  readonly connectedAt = new Date();
  readonly targets = new Set<TargetName>();
  openChannels = 0;
  registered = false;

  constructor(
    private readonly conn: Connection,
    hello: Hello,
    readonly binding: string,
    readonly remoteAddress: string,
    private readonly metrics: ProxyMetrics,
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
          this.metrics.channelFailures.inc({ cluster: this.cluster, target });
          reject(new Error(`agent ${this.agent} refused a channel to ${target}: ${err.message}`));
          return;
        }
        this.openChannels++;
        this.metrics.channels.inc({ cluster: this.cluster, target });
        this.metrics.channelsTotal.inc({ cluster: this.cluster, target });
        ch.once('close', () => {
          this.openChannels--;
          this.metrics.channels.dec({ cluster: this.cluster, target });
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
