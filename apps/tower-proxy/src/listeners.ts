import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { errorMessage, type Logger } from '@knet/runtime';
import { splice, statusResponse, type TargetName } from '@knet/tunnel';
import type { ProxyMetrics } from './metrics';
import type { SessionRegistry } from './sessions';
import { sourceOf } from './tunnel-server';

/** Subject CN of the client certificate in a cluster's kubeconfig; the listener requires it. */
export function clientCommonName(cluster: string): string {
  return `knet-tower:${cluster}`;
}

export interface ListenerSpec {
  cluster: string;
  kubernetesPort: number;
  kubespherePort: number;
  serving: { certPem: string; keyPem: string };
  caPem: string;
  /**
   * SHA-256 fingerprints (X509Certificate.fingerprint256) of the client certificates the kubernetes
   * listener accepts: the one in the Cluster's current kubeconfig (and, while a renewal is rolled
   * out, the one before). Earlier kubeconfigs of the same cluster name are refused.
   */
  clientCertificates?: string[];
}

/** Limits of each per-cluster listener (each listener of each cluster counts on its own). */
export interface ListenerOptions {
  /** Connections one listener holds at once; more are closed at accept. */
  maxConnections: number;
  /** Connections one source address holds at once on one listener; more are closed at accept. */
  maxConnectionsPerSource: number;
  /** A connection with no bytes either way for this long is closed (ms). */
  idleTimeoutMs: number;
  /** A TLS handshake on the kubernetes listener not finished within this is refused (ms). */
  handshakeTimeoutMs: number;
}

/**
 * The idle timeout is longer than a quiet `kubectl get -w` normally lasts: kube-apiserver ends a
 * watch without `timeoutSeconds` after 30–60 min, and informers re-watch every 5–10 min.
 */
export const DEFAULT_LISTENER_OPTIONS: ListenerOptions = {
  maxConnections: 1000,
  maxConnectionsPerSource: 500,
  idleTimeoutMs: 30 * 60_000,
  handshakeTimeoutMs: 10_000,
};

/** The `reason` label of `tower_proxy_listener_refusals_total`. */
export const LISTENER_REFUSAL_REASONS = [
  'tls',
  'tls-timeout',
  'wrong-cluster',
  'revoked-certificate',
  'no-agent',
  'too-many-connections',
  'too-many-from-source',
  'shed-total',
  'shed-source',
  'request-timeout',
  'idle-timeout',
] as const;
export type ListenerRefusalReason = (typeof LISTENER_REFUSAL_REASONS)[number];

const TARGETS: readonly TargetName[] = ['kubernetes', 'kubesphere'];
const DIRECTIONS = ['to_agent', 'from_agent'] as const;
/** At most one warning per listener and reason in this time; the others are counted in it. */
const WARN_EVERY_MS = 60_000;

/** What a gate did with a new connection. */
type Shed = 'shed-total' | 'shed-source';

/**
 * Counts the connections of one listener, in total and per source address (an IPv6 /64).
 * A connection is _pending_ from its accept until it is admitted (kubernetes: TLS handshake and
 * certificate checks passed; kubesphere: its first bytes arrived). When a cap is reached, a new
 * connection closes the oldest pending one (of its source, for the per-source cap) instead of
 * being refused: a stranger who fills the slots with idle connections cannot lock clients out,
 * he must open them faster than a real handshake completes. Only when every slot is held by an
 * admitted connection is the new one refused.
 */
class ConnectionGate {
  /** Every connection and its source; the pending ones, oldest first. */
  private readonly sources = new Map<Socket, string>();
  private readonly pending = new Set<Socket>();
  private readonly pendingByPeer = new Map<string, Socket>();
  private readonly bySource = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly maxPerSource: number,
    private readonly onShed: (s: Socket, reason: Shed) => void,
  ) {}

  /** Takes `s` in as pending (released when it closes), or says why it is refused. */
  accept(s: Socket): 'too-many-connections' | 'too-many-from-source' | undefined {
    const source = sourceOf(s.remoteAddress);
    if ((this.bySource.get(source) ?? 0) >= this.maxPerSource) {
      const victim = [...this.pending].find((p) => this.sources.get(p) === source);
      if (!victim) return 'too-many-from-source';
      this.shed(victim, 'shed-source');
    }
    if (this.sources.size >= this.max) {
      const victim = this.pending.values().next().value;
      if (!victim) return 'too-many-connections';
      this.shed(victim, 'shed-total');
    }
    this.sources.set(s, source);
    this.bySource.set(source, (this.bySource.get(source) ?? 0) + 1);
    this.pending.add(s);
    const peer = peerOf(s);
    this.pendingByPeer.set(peer, s);
    s.once('close', () => this.release(s, peer));
    return undefined;
  }

  /** The connection from `peer` (address and port) is admitted: it is not shed any more. */
  admit(peer: string): void {
    const s = this.pendingByPeer.get(peer);
    if (!s) return;
    this.pendingByPeer.delete(peer);
    this.pending.delete(s);
  }

  private shed(s: Socket, reason: Shed): void {
    this.release(s, peerOf(s));
    this.onShed(s, reason);
    s.destroy();
  }

  private release(s: Socket, peer: string): void {
    const source = this.sources.get(s);
    if (source === undefined) return;
    this.sources.delete(s);
    this.pending.delete(s);
    if (this.pendingByPeer.get(peer) === s) this.pendingByPeer.delete(peer);
    const left = (this.bySource.get(source) ?? 1) - 1;
    if (left > 0) this.bySource.set(source, left);
    else this.bySource.delete(source);
  }
}

/** A connection's remote address and port: the same on the raw socket and on its TLS socket. */
function peerOf(s: Socket): string {
  return `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;
}

interface Pair {
  spec: ListenerSpec;
  /** Upper-case fingerprints from spec.clientCertificates; undefined: the CN check only. */
  allowed: ReadonlySet<string> | undefined;
  /** The TLS server is not listening itself: `k8s` hands it the connections it admits. */
  tls: TlsServer;
  k8s: TcpServer;
  ks: TcpServer;
  /** Per listener: its connections, and which are still pending. */
  gates: Record<TargetName, ConnectionGate>;
  /** Every accepted socket (raw and TLS), cut when the listeners stop. */
  sockets: Set<Socket>;
  /** Kubernetes connections let through, with their client certificate's fingerprint. */
  clients: Map<TLSSocket, string>;
  stopped: boolean;
  warned: Map<string, { at: number; suppressed: number }>;
}

/**
 * The per-cluster listeners: TLS for the member's kube-apiserver (client certificate required,
 * signed by our CA and issued for *this* cluster, and listed in the spec when it lists any) and
 * plain TCP for ks-apiserver (KubeSphere sends the user's own JWT there). Each accepted connection
 * becomes one channel through an agent, opened when the client sends its first bytes. Both
 * listeners cap their connections (in total and per source), cut idle ones, and the TLS one
 * bounds its handshakes.
 */
export class ClusterListeners {
  private readonly pairs = new Map<string, Pair>();
  private readonly opts: ListenerOptions;

  constructor(
    private readonly registry: SessionRegistry,
    private readonly metrics: ProxyMetrics,
    private readonly logger: Logger,
    private readonly host: string,
    options: Partial<ListenerOptions> = {},
  ) {
    this.opts = { ...DEFAULT_LISTENER_OPTIONS, ...options };
  }

  /**
   * Starts the listeners of a cluster, or updates their certificate and the accepted client
   * certificates in place (cutting connections whose certificate is no longer accepted), or moves
   * them to new ports.
   */
  async ensure(spec: ListenerSpec): Promise<void> {
    const cur = this.pairs.get(spec.cluster);
    if (
      cur &&
      cur.spec.kubernetesPort === spec.kubernetesPort &&
      cur.spec.kubespherePort === spec.kubespherePort
    ) {
      if (cur.spec.serving.certPem !== spec.serving.certPem || cur.spec.caPem !== spec.caPem) {
        cur.tls.setSecureContext(this.secureOptions(spec));
      }
      cur.spec = spec;
      const allowed = fingerprintSet(spec.clientCertificates);
      if (!sameSet(cur.allowed, allowed)) {
        cur.allowed = allowed;
        this.cutRevoked(cur);
      }
      return;
    }
    if (cur) await this.stop(cur);
    const pair = await this.start(spec);
    this.pairs.set(spec.cluster, pair);
    this.logger.info(
      { cluster: spec.cluster, kubernetesPort: spec.kubernetesPort, kubespherePort: spec.kubespherePort },
      'cluster listeners started',
    );
  }

  /** Stops a cluster's listeners, cuts its open connections and drops its metric series. */
  async remove(cluster: string): Promise<void> {
    const p = this.pairs.get(cluster);
    if (!p) return;
    await this.stop(p);
    for (const reason of LISTENER_REFUSAL_REASONS) this.metrics.listenerRefusals.remove({ cluster, reason });
    for (const target of TARGETS)
      for (const direction of DIRECTIONS) this.metrics.bytes.remove({ cluster, target, direction });
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.pairs.values()].map((p) => this.stop(p)));
  }

  private async start(spec: ListenerSpec): Promise<Pair> {
    const { cluster } = spec;
    const tls = createTlsServer({
      ...this.secureOptions(spec),
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: this.opts.handshakeTimeoutMs,
    });
    const gate = (listener: TargetName) =>
      new ConnectionGate(this.opts.maxConnections, this.opts.maxConnectionsPerSource, (s, reason) =>
        this.refuse(pair, reason, `${listener} listener full: the oldest pending connection closed`, {
          remote: s.remoteAddress,
        }),
      );
    const pair: Pair = {
      spec,
      allowed: fingerprintSet(spec.clientCertificates),
      tls,
      k8s: createTcpServer(),
      ks: createTcpServer(),
      gates: { kubernetes: gate('kubernetes'), kubesphere: gate('kubesphere') },
      sockets: new Set(),
      clients: new Map(),
      stopped: false,
      warned: new Map(),
    };
    const accept = (listener: TargetName, s: Socket): boolean => {
      s.on('error', () => s.destroy());
      if (pair.stopped) {
        s.destroy();
        return false;
      }
      const refused = pair.gates[listener].accept(s);
      if (refused) {
        this.refuse(pair, refused, `${listener} listener full: connection refused`, {
          remote: s.remoteAddress,
        });
        s.destroy();
        return false;
      }
      this.track(pair, s);
      // A client that vanished without a FIN (a NAT or load balancer forgot it) is found by TCP.
      s.setKeepAlive(true, 60_000);
      return true;
    };

    pair.k8s.on('connection', (s: Socket) => {
      if (accept('kubernetes', s)) tls.emit('connection', s);
    });
    tls.on('secureConnection', (s: TLSSocket) => {
      s.on('error', () => s.destroy());
      this.track(pair, s);
      this.idle(pair, s);
      this.onKubernetes(pair, s);
    });
    tls.on('tlsClientError', (err: Error & { code?: string }, s: TLSSocket) => {
      s.destroy();
      const reason = err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'tls-timeout' : 'tls';
      this.refuse(pair, reason, 'TLS handshake refused', { remote: s.remoteAddress, err: err.message });
    });

    pair.ks.on('connection', (s: Socket) => {
      if (!accept('kubesphere', s)) return;
      this.idle(pair, s);
      void this.forward(pair, 'kubesphere', s);
    });

    const listen = (srv: TcpServer, port: number) =>
      new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(port, this.host, () => {
          srv.off('error', reject);
          resolve();
        });
      });
    try {
      await listen(pair.k8s, spec.kubernetesPort);
      await listen(pair.ks, spec.kubespherePort);
    } catch (e) {
      await this.stop(pair);
      throw new Error(
        `cluster ${cluster}: cannot listen on ports ${spec.kubernetesPort}/${spec.kubespherePort}: ${errorMessage(e)}`,
      );
    }
    return pair;
  }

  private async stop(p: Pair): Promise<void> {
    const cluster = p.spec.cluster;
    if (this.pairs.get(cluster) === p) this.pairs.delete(cluster);
    const wasListening = p.k8s.listening;
    p.stopped = true;
    for (const s of p.sockets) s.destroy();
    const close = (srv: TcpServer) =>
      new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve()));
    await Promise.all([close(p.k8s), close(p.ks)]);
    if (wasListening) this.logger.info({ cluster }, 'cluster listeners stopped');
  }

  private track(p: Pair, s: Socket): void {
    p.sockets.add(s);
    s.once('close', () => p.sockets.delete(s));
  }

  /** Closes `s` after the idle timeout without bytes either way. */
  private idle(p: Pair, s: Socket): void {
    s.setTimeout(this.opts.idleTimeoutMs, () => {
      this.count(p, 'idle-timeout');
      this.logger.debug(
        { cluster: p.spec.cluster, remote: s.remoteAddress, idleMs: this.opts.idleTimeoutMs },
        'idle connection closed',
      );
      s.destroy();
    });
  }

  private count(p: Pair, reason: ListenerRefusalReason): void {
    // After the listeners stopped their series are gone: the last sockets' errors must not bring them back.
    if (!p.stopped) this.metrics.listenerRefusals.inc({ cluster: p.spec.cluster, reason });
  }

  /** Counts a refusal and warns, at most once a minute per reason (a flood must not flood the log). */
  private refuse(p: Pair, reason: ListenerRefusalReason, msg: string, fields: Record<string, unknown>): void {
    this.count(p, reason);
    const now = Date.now();
    const w = p.warned.get(reason);
    if (w && now - w.at < WARN_EVERY_MS) {
      w.suppressed++;
      return;
    }
    p.warned.set(reason, { at: now, suppressed: 0 });
    this.logger.warn(
      { cluster: p.spec.cluster, ...fields, ...(w?.suppressed ? { alsoRefused: w.suppressed } : {}) },
      msg,
    );
  }

  private secureOptions(spec: ListenerSpec) {
    return {
      cert: spec.serving.certPem,
      key: spec.serving.keyPem,
      ca: [spec.caPem],
      minVersion: 'TLSv1.2' as const,
    };
  }

  private onKubernetes(p: Pair, s: TLSSocket): void {
    const cluster = p.spec.cluster;
    const peer = s.getPeerCertificate();
    const cn = peer?.subject?.CN;
    if (cn !== clientCommonName(cluster)) {
      // Signed by our CA, but issued for another cluster: cluster A's kubeconfig at B's listener.
      this.refuse(p, 'wrong-cluster', 'client certificate is for another cluster; refused', {
        remote: s.remoteAddress,
        cn,
      });
      respond(
        s,
        403,
        'Forbidden',
        `client certificate ${JSON.stringify(cn)} is not valid for cluster ${cluster}`,
      );
      return;
    }
    const fingerprint = (peer.fingerprint256 ?? '').toUpperCase();
    if (p.allowed && !p.allowed.has(fingerprint)) {
      // Issued for this cluster, but not in its current kubeconfig: an earlier one.
      this.refuse(p, 'revoked-certificate', 'client certificate is no longer valid; refused', {
        remote: s.remoteAddress,
        fingerprint,
      });
      respond(s, 403, 'Forbidden', revokedMessage(cluster));
      return;
    }
    p.clients.set(s, fingerprint);
    s.once('close', () => p.clients.delete(s));
    void this.forward(p, 'kubernetes', s);
  }

  /** Cuts the kubernetes connections whose client certificate is no longer accepted. */
  private cutRevoked(p: Pair): void {
    const allowed = p.allowed;
    if (!allowed) return;
    let cut = 0;
    for (const [s, fingerprint] of p.clients) {
      if (allowed.has(fingerprint)) continue;
      p.clients.delete(s);
      this.count(p, 'revoked-certificate');
      s.destroy();
      cut++;
    }
    if (cut > 0)
      this.logger.info(
        { cluster: p.spec.cluster, connections: cut },
        'client certificate no longer valid; its connections cut',
      );
  }

  private async forward(p: Pair, target: TargetName, s: Socket): Promise<void> {
    const cluster = p.spec.cluster;
    // Responses reach us as several writes (one per SSH packet): without this, Nagle holds the
    // tail until the client's delayed ACK, 40 ms on Linux.
    s.setNoDelay(true);
    // HTTP clients speak first: a connection that closes before its first byte (a load balancer's
    // TCP health check, a port scan) costs no channel through the agent. Until then it is pending
    // (the first to go when the listener is full) and has the handshake timeout to speak.
    const sent = await firstBytes(s, this.opts.handshakeTimeoutMs);
    if (sent === 'timeout') {
      this.count(p, 'request-timeout');
      s.destroy();
    }
    if (sent !== 'sent') return;
    p.gates[target].admit(peerOf(s));
    const session = this.registry.pick(cluster, target);
    if (!session) {
      this.count(p, 'no-agent');
      respond(s, 503, 'ServiceUnavailable', `no agent of cluster ${cluster} is connected to the proxy`);
      return;
    }
    let ch: Duplex;
    try {
      ch = await session.openChannel(target, {
        address: s.remoteAddress ?? '0.0.0.0',
        port: s.remotePort ?? 0,
      });
    } catch (e) {
      if (!s.destroyed) respond(s, 502, 'BadGateway', errorMessage(e));
      return;
    }
    // (A client that left while the channel was opening: splice closes the channel at once.)
    // Counted per read: the labelled children are looked up once per connection, not per chunk.
    const toAgent = this.metrics.bytes.labels({ cluster, target, direction: 'to_agent' });
    const fromAgent = this.metrics.bytes.labels({ cluster, target, direction: 'from_agent' });
    await splice(s, ch, (dir, n) => {
      if (!p.stopped) (dir === 'a-to-b' ? toAgent : fromAgent).inc(n);
    });
  }
}

function fingerprintSet(list: string[] | undefined): ReadonlySet<string> | undefined {
  return list ? new Set(list.map((f) => f.toUpperCase())) : undefined;
}

function sameSet(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (!a || !b) return a === b;
  return a.size === b.size && [...a].every((x) => b.has(x));
}

function revokedMessage(cluster: string): string {
  return `client certificate is no longer valid for cluster ${cluster}: a newer kubeconfig was issued (see the Cluster's spec.connection.kubeconfig)`;
}

/**
 * Resolves 'sent' when the client has sent bytes (left unread, the socket paused), 'closed' when
 * it closed first, 'timeout' when it sent nothing within `timeoutMs`.
 */
function firstBytes(s: Socket, timeoutMs: number): Promise<'sent' | 'closed' | 'timeout'> {
  return new Promise((resolve) => {
    const done = (outcome: 'sent' | 'closed' | 'timeout') => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      s.pause();
      s.unshift(chunk);
      done('sent');
    };
    const onClose = () => done('closed');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    if (s.destroyed) return done('closed');
    s.on('data', onData);
    s.once('close', onClose);
  });
}

/**
 * Answers a raw connection with a Kubernetes Status so kubectl prints the reason, then closes it.
 * The answer waits for the request head (clients may drop a response that precedes their request).
 */
function respond(s: Socket, code: number, reason: string, message: string): void {
  const send = () => {
    clearTimeout(timer);
    s.end(statusResponse(code, reason, message));
  };
  const timer = setTimeout(send, 5000);
  s.once('close', () => clearTimeout(timer));
  s.once('data', send);
  s.resume();
}
