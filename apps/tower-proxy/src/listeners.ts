import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { errorMessage, type Logger } from '@knet/runtime';
import { splice, statusResponse, type TargetName } from '@knet/tunnel';
import type { ProxyMetrics } from './metrics';
import type { SessionRegistry } from './sessions';

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

interface Pair {
  spec: ListenerSpec;
  k8s: TlsServer;
  ks: TcpServer;
  sockets: Set<Socket>;
}

/**
 * The per-cluster listeners: TLS for the member's kube-apiserver (client certificate required,
 * signed by our CA and issued for *this* cluster) and plain TCP for ks-apiserver (KubeSphere sends
 * the user's own JWT there). Each accepted connection becomes one channel through an agent.
 */
export class ClusterListeners {
  private readonly pairs = new Map<string, Pair>();

  constructor(
    private readonly registry: SessionRegistry,
    private readonly metrics: ProxyMetrics,
    private readonly logger: Logger,
    private readonly host: string,
  ) {}

  /** Starts the listeners of a cluster, or updates their certificate, or moves them to new ports. */
  async ensure(spec: ListenerSpec): Promise<void> {
    const cur = this.pairs.get(spec.cluster);
    if (
      cur &&
      cur.spec.kubernetesPort === spec.kubernetesPort &&
      cur.spec.kubespherePort === spec.kubespherePort
    ) {
      if (cur.spec.serving.certPem !== spec.serving.certPem || cur.spec.caPem !== spec.caPem) {
        cur.k8s.setSecureContext(this.secureOptions(spec));
        cur.spec = spec;
      }
      return;
    }
    if (cur) await this.remove(spec.cluster);
    const sockets = new Set<Socket>();
    const track = (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    };
    const k8s = createTlsServer(
      { ...this.secureOptions(spec), requestCert: true, rejectUnauthorized: true },
      (s) => {
        track(s);
        this.onKubernetes(spec.cluster, s);
      },
    );
    k8s.on('tlsClientError', (err: Error, s: TLSSocket) => {
      this.metrics.listenerRefusals.inc({ cluster: spec.cluster, reason: 'tls' });
      this.logger.info(
        { cluster: spec.cluster, remote: s.remoteAddress, err: err.message },
        'TLS handshake refused',
      );
      s.destroy();
    });
    const ks = createTcpServer((s) => {
      track(s);
      void this.forward(spec.cluster, 'kubesphere', s);
    });
    const listen = (srv: TcpServer | TlsServer, port: number) =>
      new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(port, this.host, () => {
          srv.off('error', reject);
          resolve();
        });
      });
    try {
      await listen(k8s, spec.kubernetesPort);
      await listen(ks, spec.kubespherePort);
    } catch (e) {
      k8s.close();
      ks.close();
      throw new Error(
        `cluster ${spec.cluster}: cannot listen on ports ${spec.kubernetesPort}/${spec.kubespherePort}: ${errorMessage(e)}`,
      );
    }
    this.pairs.set(spec.cluster, { spec, k8s, ks, sockets });
    this.logger.info(
      { cluster: spec.cluster, kubernetesPort: spec.kubernetesPort, kubespherePort: spec.kubespherePort },
      'cluster listeners started',
    );
  }

  /** Stops a cluster's listeners and cuts its open connections. */
  async remove(cluster: string): Promise<void> {
    const p = this.pairs.get(cluster);
    if (!p) return;
    this.pairs.delete(cluster);
    for (const s of p.sockets) s.destroy();
    await Promise.all([new Promise((r) => p.k8s.close(r)), new Promise((r) => p.ks.close(r))]);
    this.logger.info({ cluster }, 'cluster listeners stopped');
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.pairs.keys()].map((c) => this.remove(c)));
  }

  private secureOptions(spec: ListenerSpec) {
    return {
      cert: spec.serving.certPem,
      key: spec.serving.keyPem,
      ca: [spec.caPem],
      minVersion: 'TLSv1.2' as const,
    };
  }

  private onKubernetes(cluster: string, s: TLSSocket): void {
    const cn = s.getPeerCertificate()?.subject?.CN;
    if (cn !== clientCommonName(cluster)) {
      // Signed by our CA, but issued for another cluster: cluster A's kubeconfig at B's listener.
      this.metrics.listenerRefusals.inc({ cluster, reason: 'wrong-cluster' });
      this.logger.warn(
        { cluster, remote: s.remoteAddress, cn },
        'client certificate is for another cluster; refused',
      );
      respond(
        s,
        403,
        'Forbidden',
        `client certificate ${JSON.stringify(cn)} is not valid for cluster ${cluster}`,
      );
      return;
    }
    void this.forward(cluster, 'kubernetes', s);
  }

  private async forward(cluster: string, target: TargetName, s: Socket): Promise<void> {
    s.on('error', () => s.destroy());
    // Responses reach us as several writes (one per SSH packet): without this, Nagle holds the
    // tail until the client's delayed ACK, 40 ms on Linux.
    s.setNoDelay(true);
    const session = this.registry.pick(cluster, target);
    if (!session) {
      this.metrics.listenerRefusals.inc({ cluster, reason: 'no-agent' });
      respond(s, 503, 'ServiceUnavailable', `no agent of cluster ${cluster} is connected to the proxy`);
      return;
    }
    s.pause();
    let ch;
    try {
      ch = await session.openChannel(target, {
        address: s.remoteAddress ?? '0.0.0.0',
        port: s.remotePort ?? 0,
      });
    } catch (e) {
      respond(s, 502, 'BadGateway', errorMessage(e));
      return;
    }
    // Counted per read: the labelled children are looked up once per connection, not per chunk.
    const toAgent = this.metrics.bytes.labels({ cluster, target, direction: 'to_agent' });
    const fromAgent = this.metrics.bytes.labels({ cluster, target, direction: 'from_agent' });
    await splice(s, ch, (dir, n) => (dir === 'a-to-b' ? toAgent : fromAgent).inc(n));
  }
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
  s.once('data', send);
  s.resume();
}
