import { createServer, type Server } from 'node:http';
import {
  connect as netConnect,
  createServer as createNetServer,
  type AddressInfo,
  type Socket,
} from 'node:net';
import { Server as SshServer, type Connection } from 'ssh2';
import { WebSocketServer } from 'ws';
import { until } from '@knet/testing';
import { AgentConnection, type AgentChannelMetrics } from './agent-connection';
import { generateHostKey } from './hostkey';
import { splice } from './pipe';
import { SUBPROTOCOL, TARGETS } from './protocol';
import { SSH_ALGORITHMS } from './ssh';
import { webSocketDuplex } from './ws';

/** The agent's channel metrics as a gauge that counts: open channels per target, and all served. */
class CountingMetrics implements AgentChannelMetrics {
  readonly open = new Map<string, number>();
  served = 0;
  readonly channels = {
    inc: ({ target }: { target: string }) => void this.open.set(target, (this.open.get(target) ?? 0) + 1),
    dec: ({ target }: { target: string }) => void this.open.set(target, (this.open.get(target) ?? 0) - 1),
  };
  readonly channelsTotal = { inc: () => void this.served++ };
  readonly refusedChannels = { inc: () => undefined };
}

type Behaviour = (s: Socket) => void;

const hostKey = generateHostKey('pipe-spec');

/**
 * A tower in small, on loopback, spliced at both ends as the apps do: a client connects to the
 * listener, the proxy side opens a forwarded channel to the agent (an `AgentConnection` over
 * WebSocket and SSH, with the hello and `tcpip-forward` answered) and splices the client to it;
 * the agent splices the channel to a TCP connection to the target. Counts the channels each side
 * has open (each side's channel `close`).
 */
class Bed {
  readonly metrics = new CountingMetrics();
  proxyOpen = 0;
  proxyOpened = 0;
  private readonly http: Server = createServer((_req, res) => res.writeHead(404).end());
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: () => SUBPROTOCOL });
  private readonly ssh = new SshServer({
    hostKeys: [hostKey.privateKey],
    algorithms: SSH_ALGORITHMS as never,
  });
  private readonly target = createNetServer();
  private readonly listener = createNetServer();
  private readonly sockets = new Set<Socket>();
  private agentSide: Connection | undefined;
  private forwarded!: Promise<void>;
  conn: AgentConnection | undefined;
  targetBehaviour: Behaviour = () => undefined;
  beforeOpen: (s: Socket) => Promise<void> = () => Promise.resolve();
  listenerPort = 0;

  async start(): Promise<void> {
    const track = (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    };
    this.http.on('connection', track);
    this.http.on('upgrade', (req, socket, head) =>
      this.wss.handleUpgrade(req, socket, head, (ws) => this.ssh.injectSocket(webSocketDuplex(ws) as never)),
    );
    let forwarded!: () => void;
    this.forwarded = new Promise((r) => (forwarded = r));
    this.ssh.on('connection', (c) => {
      c.on('error', () => undefined);
      c.on('authentication', (ctx) => ctx.accept());
      c.on('session', (accept) =>
        accept().once('exec', (acceptExec) => {
          const ch = acceptExec();
          ch.end('{"ok":true,"proxyVersion":"test","session":"s1"}\n');
          ch.exit(0);
          ch.close();
        }),
      );
      c.on('request', (accept, _reject, name) => {
        accept?.();
        if (name === 'tcpip-forward') {
          this.agentSide = c;
          forwarded();
        }
      });
    });
    this.target.on('connection', (s) => {
      track(s);
      this.targetBehaviour(s);
    });
    // The proxy's listener: each client gets a channel to the agent's kubesphere, spliced to it.
    this.listener.on('connection', (s) => {
      track(s);
      void this.beforeOpen(s).then(() =>
        this.agentSide?.forwardOut(
          'kubesphere',
          TARGETS.kubesphere,
          '127.0.0.1',
          s.remotePort ?? 0,
          (err, ch) => {
            if (err) return void s.destroy();
            this.proxyOpen++;
            this.proxyOpened++;
            ch.once('close', () => this.proxyOpen--);
            void splice(s, ch);
          },
        ),
      );
    });
    await Promise.all(
      [this.http, this.target, this.listener].map(
        (srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r)),
      ),
    );
    const targetPort = (this.target.address() as AddressInfo).port;
    this.listenerPort = (this.listener.address() as AddressInfo).port;
    this.conn = new AgentConnection({
      url: `ws://127.0.0.1:${(this.http.address() as AddressInfo).port}/v1/tunnel`,
      cluster: 'alpha',
      token: 't'.repeat(64),
      agent: 'pod-1',
      agentVersion: 'test',
      fingerprint: hostKey.fingerprint,
      keepaliveMs: 30_000,
      metrics: this.metrics,
      // As tower-agent serves kubesphere: a byte pipe to the target.
      targets: { kubesphere: (ch) => void splice(ch, netConnect({ host: '127.0.0.1', port: targetPort })) },
    });
    await this.conn.established;
    await this.forwarded;
  }

  /** Connects a client to the listener and runs `client` on it; resolves when its socket is closed. */
  client(client: (s: Socket) => void): Promise<void> {
    return new Promise((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port: this.listenerPort });
      s.on('error', () => undefined);
      s.once('close', () => resolve());
      client(s);
    });
  }

  /** Waits (up to `ms`) until both sides' open channel counts are 0; returns them. */
  async settled(ms = 3_000): Promise<{ agent: number; proxy: number }> {
    const counts = () => ({ agent: this.metrics.open.get('kubesphere') ?? 0, proxy: this.proxyOpen });
    await until('no channel left open', () => counts().agent === 0 && counts().proxy === 0, {
      timeoutMs: ms,
      intervalMs: 20,
    }).catch(() => undefined); // the counts left say what leaked
    return counts();
  }

  async stop(): Promise<void> {
    this.conn?.close();
    await this.conn?.closed;
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    await Promise.all(
      [this.http, this.target, this.listener].map(
        (srv) => new Promise((r) => (srv.listening ? srv.close(r) : r(undefined))),
      ),
    );
  }
}

const N = 20;

/** Reads everything the socket gets (so the far side is never held up by it). */
const drain = (s: Socket) => void s.resume();

describe('splice between an SSH channel and a socket', () => {
  let bed: Bed;
  beforeEach(async () => {
    bed = new Bed();
    await bed.start();
  });
  afterEach(() => bed.stop());

  it.each<[string, Behaviour, (s: Socket) => void]>([
    [
      "the target answers and closes first (the proxy side's channel ends first)",
      (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'),
      drain,
    ],
    ['the target resets the connection', (s) => s.resetAndDestroy(), drain],
    [
      'the target resets the connection while the client is still sending',
      (s) => {
        s.resume();
        setTimeout(() => s.resetAndDestroy(), 20);
      },
      (s) => {
        drain(s);
        const timer = setInterval(() => s.write(Buffer.alloc(16 * 1024)), 2);
        s.once('close', () => clearInterval(timer));
      },
    ],
    [
      "the client closes first (the agent side's channel ends first)",
      drain,
      (s) => s.end('GET / HTTP/1.1\r\n\r\n'),
    ],
    [
      'the client resets the connection once it got an answer',
      (s) => s.write('hello'),
      (s) => s.once('data', () => s.resetAndDestroy()),
    ],
  ])('every channel closes on both sides when %s', async (_what, target, client) => {
    bed.targetBehaviour = target;
    await Promise.all(Array.from({ length: N }, () => bed.client(client)));
    expect(bed.metrics.served).toBe(N);
    expect(bed.proxyOpened).toBe(N);
    expect(await bed.settled()).toEqual({ agent: 0, proxy: 0 });
  });

  it('closes a channel spliced to a client that is already gone (it left while the channel was opening)', async () => {
    bed.targetBehaviour = drain;
    // The proxy side opens each channel only once its client's socket is closed.
    bed.beforeOpen = (s) => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
    await Promise.all(
      Array.from({ length: N }, () => bed.client((s) => s.once('connect', () => s.resetAndDestroy()))),
    );
    await until('every channel open on both sides', () => bed.metrics.served === N && bed.proxyOpened === N);
    expect(await bed.settled()).toEqual({ agent: 0, proxy: 0 });
  });
});
