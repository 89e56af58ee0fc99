/**
 * How CAPEM reaches the fake Metal API. CAPEM v0.9 has no endpoint setting: its client is
 * equinix-sdk-go's `metalv1.NewConfiguration()`, whose only server is
 * `https://api.equinix.com/metal/v1` (no flag, no env var; pkg/cloud/packet/client.go). What it
 * does honour is Go's standard environment: `net/http`'s default transport takes `HTTPS_PROXY`,
 * and `crypto/x509` on Linux takes its roots from `SSL_CERT_FILE`. So CAPEM runs unmodified with
 * `HTTPS_PROXY` = this proxy on 127.0.0.1 and `SSL_CERT_FILE` = this proxy's CA alone.
 *
 * The proxy accepts only `CONNECT api.equinix.com:443` (anything else: 403), never resolves or
 * dials that name, terminates TLS itself with a certificate for it from a CA made per run, and
 * hands each request below `/metal/v1/` to the fake on loopback, headers and body as they came.
 *
 * One documented rewrite ({@link MetalTlsProxy.rewrites}): CAPEM's `CreateIP` always sends both
 * `facility` and `metro` on `POST /projects/{id}/ips`, the one it does not use as `""` (a pointer
 * to an empty string, which the SDK serialises). The real API took that (CAPEM's metro e2e ran
 * against it); FakeMetalApi refuses both keys together with 422, which would leave CAPEM's
 * PacketCluster never ready. The proxy drops the empty one and counts each time it did.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';

/** The only host CAPEM's client talks to. */
export const METAL_API_HOST = 'api.equinix.com';
const BASE = '/metal/v1/';
/** Request bodies above this are refused (413), as the fake itself does. */
const MAX_BODY = 1024 * 1024;

export class MetalTlsProxy {
  /** Tunnels opened, requests forwarded, CONNECTs or requests refused. */
  readonly stats = { tunnels: 0, requests: 0, refused: 0 };
  /** `facility: ""` dropped from IP reservation requests (see the file comment). */
  rewrites = 0;
  /** Open tunnels, cut by `close`. */
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly outer: http.Server,
    private readonly inner: http.Server,
    private readonly agent: http.Agent,
    /** `http://127.0.0.1:PORT`: the value for HTTPS_PROXY. */
    readonly url: string,
    /** The CA that signed the proxy's certificate for api.equinix.com: the value for SSL_CERT_FILE. */
    readonly caPem: string,
  ) {}

  /** Listens on 127.0.0.1 and forwards to `target` (the fake's `url`, `http://127.0.0.1:P/metal/v1`). */
  static async start(target: string): Promise<MetalTlsProxy> {
    const upstream = new URL(target);
    if (upstream.hostname !== '127.0.0.1' || upstream.protocol !== 'http:') {
      throw new Error(`MetalTlsProxy: the target must be http://127.0.0.1:PORT/…, got ${target}`);
    }
    const ca = await createCertificateAuthority('knet-bench-capi-metal-proxy-ca', 1);
    const leaf = await issueCertificate(ca, {
      commonName: METAL_API_HOST,
      dnsNames: [METAL_API_HOST],
      usage: 'server',
      validityDays: 1,
    });
    const context = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    // The handlers need the instance, which needs the port: listen first, then make it.
    const ref: { proxy?: MetalTlsProxy } = {};
    const inner = http.createServer((req, res) => ref.proxy?.forward(req, res, upstream));
    const outer = http.createServer((_req, res) => {
      // Plain-HTTP proxying (`GET http://…`): CAPEM only speaks https.
      if (ref.proxy) ref.proxy.stats.refused++;
      res.writeHead(403, { 'Content-Type': 'text/plain' }).end('only CONNECT api.equinix.com:443\n');
    });
    outer.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      if (req.url !== `${METAL_API_HOST}:443`) {
        if (ref.proxy) ref.proxy.stats.refused++;
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const proxy = ref.proxy;
      if (proxy) {
        proxy.stats.tunnels++;
        proxy.sockets.add(socket);
        socket.once('close', () => proxy.sockets.delete(socket));
      }
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) socket.unshift(head);
      const secure = new tls.TLSSocket(socket, {
        isServer: true,
        secureContext: context,
        ALPNProtocols: ['http/1.1'],
      });
      secure.on('error', () => socket.destroy());
      inner.emit('connection', secure);
    });
    const port = await new Promise<number>((resolve, reject) => {
      outer.once('error', reject);
      outer.listen(0, '127.0.0.1', () => resolve((outer.address() as AddressInfo).port));
    });
    ref.proxy = new MetalTlsProxy(outer, inner, agent, `http://127.0.0.1:${port}`, ca.certPem);
    return ref.proxy;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, upstream: URL): void {
    const path = req.url ?? '/';
    if (!path.startsWith(BASE)) {
      this.stats.refused++;
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":["Not found"]}');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) {
        res.writeHead(413, { Connection: 'close' }).end();
        return;
      }
      this.stats.requests++;
      const body = this.rewrite(req.method ?? 'GET', path, Buffer.concat(chunks));
      const headers = { ...req.headers, host: upstream.host, 'content-length': String(body.length) };
      const out = http.request(
        { host: '127.0.0.1', port: upstream.port, method: req.method, path, headers, agent: this.agent },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      out.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end(`MetalTlsProxy: the fake did not answer: ${e.message}\n`);
      });
      out.end(body);
    });
  }

  /** Drops an empty `facility` next to a `metro` in `POST /projects/{id}/ips` (see the file comment). */
  private rewrite(method: string, path: string, body: Buffer): Buffer {
    if (method !== 'POST' || !/^\/metal\/v1\/projects\/[^/]+\/ips(\?|$)/.test(path)) return body;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return body;
    }
    if (typeof parsed !== 'object' || parsed === null) return body;
    const o = parsed as Record<string, unknown>;
    if (o['facility'] !== '' || typeof o['metro'] !== 'string' || o['metro'] === '') return body;
    delete o['facility'];
    this.rewrites++;
    return Buffer.from(JSON.stringify(o));
  }

  /** Stops listening and cuts open tunnels. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.agent.destroy();
    await Promise.all(
      [this.outer, this.inner].map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }
}
