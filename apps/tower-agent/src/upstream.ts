import { readFileSync, statSync } from 'node:fs';
import {
  request as httpRequest,
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import type { Logger } from '@knet/runtime';
import { splice } from '@knet/tunnel';

/** How the agent reaches and authenticates to its own cluster's kube-apiserver. */
export interface Upstream {
  readonly server: URL;
  /** TLS material and the Authorization header, fresh for each request (tokens rotate on disk). */
  credentials(): Promise<UpstreamCredentials>;
}

export interface UpstreamCredentials {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  rejectUnauthorized?: boolean;
  authorization?: string;
}

/**
 * In-cluster credentials from a service-account directory. The token file is re-read whenever it
 * changes on disk (kubelet rotates projected tokens), so rotation needs no reconnect.
 */
export function inClusterUpstream(saDir: string, host: string, port: string): Upstream {
  const tokenFile = join(saDir, 'token');
  const ca = readFileSync(join(saDir, 'ca.crt'));
  let cached: { mtimeMs: number; size: number; token: string } | undefined;
  const readToken = () => {
    const st = statSync(tokenFile);
    if (!cached || cached.mtimeMs !== st.mtimeMs || cached.size !== st.size) {
      cached = { mtimeMs: st.mtimeMs, size: st.size, token: readFileSync(tokenFile, 'utf8').trim() };
    }
    return cached.token;
  };
  readToken(); // fail at startup, not on the first request, when the token is missing
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    server: new URL(`https://${h}:${port}`),
    credentials: async () => ({ ca, authorization: `Bearer ${readToken()}` }),
  };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers for the upstream: hop-by-hop and the caller's Authorization removed, ours added. */
export function upstreamHeaders(
  h: IncomingHttpHeaders,
  upstreamHost: string,
  authorization: string | undefined,
  keepUpgrade: boolean,
): Record<string, string | string[]> {
  const listed = new Set(
    String(h.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k === 'host' || k === 'authorization') continue;
    if (!keepUpgrade && (HOP_BY_HOP.has(k) || listed.has(k))) continue;
    if (
      keepUpgrade &&
      (k === 'keep-alive' ||
        k === 'proxy-authorization' ||
        k === 'proxy-authenticate' ||
        k === 'te' ||
        k === 'trailer')
    )
      continue;
    out[k] = v;
  }
  out['host'] = upstreamHost;
  if (authorization) out['authorization'] = authorization;
  return out;
}

/**
 * The agent side of the `kubernetes` target: each channel is an HTTP/1.1 connection from a client of
 * the proxy's listener. Requests are forwarded to the member's kube-apiserver with the agent's own
 * credentials (they never leave the member cluster); responses stream back (watches, chunked), and
 * upgrades (exec, attach, port-forward) become raw byte pipes.
 */
export class ApiServerProxy {
  private readonly http: Server;
  private agent: { tls: UpstreamCredentials; agent: HttpsAgent } | undefined;

  constructor(
    private readonly upstream: Upstream,
    private readonly logger: Logger,
    private readonly onBytes?: (direction: 'up' | 'down', n: number) => void,
  ) {
    this.http = createServer(
      { requestTimeout: 0, keepAliveTimeout: 0 },
      (req, res) => void this.forward(req, res),
    );
    this.http.on(
      'upgrade',
      (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.forwardUpgrade(req, socket, head),
    );
    this.http.on('clientError', (_err, socket: Duplex) => socket.destroy());
  }

  /** Serves one channel as an HTTP connection. */
  handle(channel: Duplex): void {
    const s = channel as Duplex & {
      setTimeout?: unknown;
      setNoDelay?: unknown;
      setKeepAlive?: unknown;
      remoteAddress?: string;
    };
    // node:http expects a net.Socket; an SSH channel has no socket options to set.
    s.setTimeout ??= () => s;
    s.setNoDelay ??= () => s;
    s.setKeepAlive ??= () => s;
    s.remoteAddress ??= 'tunnel';
    this.http.emit('connection', s);
  }

  /**
   * The keep-alive pool for the current TLS material; a new pool when it changes (a rotated client
   * certificate). Compared by identity first: in-cluster credentials hand out the same CA buffer on
   * every request, so the common case costs no byte comparison at all.
   */
  private httpsAgent(c: UpstreamCredentials): HttpsAgent {
    const cur = this.agent;
    if (
      cur &&
      sameMaterial(cur.tls.ca, c.ca) &&
      sameMaterial(cur.tls.cert, c.cert) &&
      sameMaterial(cur.tls.key, c.key) &&
      cur.tls.rejectUnauthorized === c.rejectUnauthorized
    )
      return cur.agent;
    cur?.agent.destroy();
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 256, ...tlsOpts(c) });
    const { ca, cert, key, rejectUnauthorized } = c;
    this.agent = { tls: { ca, cert, key, rejectUnauthorized }, agent };
    return agent;
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let c: UpstreamCredentials;
    try {
      c = await this.upstream.credentials();
    } catch (e) {
      return fail(res, 500, `agent cannot read its credentials: ${(e as Error).message}`);
    }
    const u = this.upstream.server;
    const secure = u.protocol === 'https:';
    const send = secure ? httpsRequest : httpRequest;
    const up = send(
      {
        hostname: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port || (secure ? 443 : 80),
        method: req.method,
        path: req.url,
        headers: upstreamHeaders(req.headers, u.host, c.authorization, false),
        ...(secure ? { agent: this.httpsAgent(c) } : {}),
      },
      (pres) => {
        const headers: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(pres.headers))
          if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
        res.writeHead(pres.statusCode ?? 502, headers);
        if (this.onBytes) pres.on('data', (b: Buffer) => this.onBytes?.('down', b.length));
        pres.pipe(res);
      },
    );
    up.on('error', (e) => {
      this.logger.debug({ err: e.message, path: req.url }, 'upstream request failed');
      fail(res, 502, `agent cannot reach the member's kube-apiserver at ${u.host}: ${e.message}`);
    });
    res.on('close', () => up.destroy()); // the client went away: end the (possibly endless) watch upstream
    if (this.onBytes) req.on('data', (b: Buffer) => this.onBytes?.('up', b.length));
    req.pipe(up);
  }

  private async forwardUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    let c: UpstreamCredentials;
    try {
      c = await this.upstream.credentials();
    } catch {
      socket.destroy();
      return;
    }
    const u = this.upstream.server;
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const up: Duplex =
      u.protocol === 'https:'
        ? tlsConnect({
            host,
            port,
            servername: isIpLiteral(host) ? undefined : host,
            ALPNProtocols: ['http/1.1'],
            noDelay: true,
            ...tlsOpts(c),
          } as ConnectionOptions)
        : netConnect({ host, port, noDelay: true });
    up.on('error', (e) => {
      this.logger.debug({ err: e.message }, 'upstream upgrade failed');
      socket.destroy();
    });
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (const [k, v] of Object.entries(upstreamHeaders(req.headers, u.host, c.authorization, true))) {
      for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${one}`);
    }
    up.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length) up.write(head);
    await splice(socket, up);
  }

  close(): void {
    this.http.close();
    this.agent?.agent.destroy();
  }
}

function tlsOpts(
  c: UpstreamCredentials,
): Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> {
  return {
    ...(c.ca ? { ca: c.ca } : {}),
    ...(c.cert ? { cert: c.cert } : {}),
    ...(c.key ? { key: c.key } : {}),
    ...(c.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
  };
}

function sameMaterial(a: string | Buffer | undefined, b: string | Buffer | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  // Buffer.from(buffer) would copy: only strings are converted (a kubeconfig's material is
  // compared on every request).
  const bytes = (x: string | Buffer) => (typeof x === 'string' ? Buffer.from(x) : x);
  return bytes(a).equals(bytes(b));
}

function isIpLiteral(h: string): boolean {
  return /^[\d.]+$/.test(h) || h.includes(':');
}

function fail(res: ServerResponse, code: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    code,
    reason: code === 502 ? 'BadGateway' : 'InternalError',
    message,
  });
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
