import { readFileSync, statSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { UsageError, errorMessage, type Logger } from '@knet/runtime';
import { statusResponse } from '@knet/tunnel';
import { RequestFramer, ResponseFramer, upstreamHead, type Piece, type ResponseEvent } from './http1';

/** How the agent reaches and authenticates to its own cluster's kube-apiserver. */
export interface Upstream {
  /**
   * The API server; a path (a kubeconfig's `https://host:6443/prefix`, behind a path-routing
   * proxy) is put before every request's path, as client-go does.
   */
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
 * changes on disk (kubelet rotates projected tokens), so rotation needs no reconnect. It is looked
 * at (stat) at most every `recheckMs`: kubelet writes a new token well before the old one expires,
 * and a stat per request was 5% of the agent's CPU at a few thousand requests per second.
 */
export function inClusterUpstream(saDir: string, host: string, port: string, recheckMs = 1000): Upstream {
  const tokenFile = join(saDir, 'token');
  const ca = readFileSync(join(saDir, 'ca.crt'));
  let cached: { mtimeMs: number; size: number; token: string } | undefined;
  let checkedAt = -Infinity;
  const readToken = () => {
    const now = performance.now();
    if (cached && now - checkedAt < recheckMs) return cached.token;
    const st = statSync(tokenFile);
    checkedAt = now;
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

/**
 * Where the agent's credentials come from: `--kubeconfig` (its client-node loader is imported only
 * then; in a cluster the service-account files are all the agent needs), else the service-account
 * directory and the in-cluster API server (`--kubernetes-service`, else the
 * KUBERNETES_SERVICE_HOST/PORT the kubelet sets). Outside a cluster without --kubeconfig, a usage
 * error that says what to pass.
 */
export async function chooseUpstream(
  opts: {
    kubeconfig?: string | undefined;
    serviceAccountDir: string;
    kubernetesService?: { host: string; port: number } | undefined;
  },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Upstream> {
  if (opts.kubeconfig) {
    const { kubeconfigFileUpstream } = await import('./kubeconfig');
    return kubeconfigFileUpstream(opts.kubeconfig);
  }
  const host = opts.kubernetesService?.host ?? env['KUBERNETES_SERVICE_HOST'];
  const port = String(opts.kubernetesService?.port ?? env['KUBERNETES_SERVICE_PORT'] ?? '443');
  if (!host) {
    throw new UsageError(
      'not running in a cluster (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig or --kubernetes-service',
    );
  }
  try {
    return inClusterUpstream(opts.serviceAccountDir, host, port);
  } catch (e) {
    throw new Error(
      `in-cluster credentials in ${opts.serviceAccountDir} unusable: ${errorMessage(e)}; pass --kubeconfig outside a cluster`,
    );
  }
}

/**
 * The agent side of the `kubernetes` target: each channel is one HTTP/1.1 connection of a client of
 * the proxy's listener, and gets one connection of its own to the member's kube-apiserver. Request
 * heads are rewritten (the agent's Host and credentials; the caller's never leave the member
 * cluster); request bodies and all responses pass through as bytes, so watches, chunked responses
 * and upgrades (exec, attach, port-forward) need nothing special, and nothing is copied or
 * re-encoded on the way back. Where requests begin and end is found by `RequestFramer`, which
 * refuses what the API server could frame differently; `ResponseFramer` follows the responses
 * only to learn whether the API server accepted an upgrade (101) before the connection is piped.
 */
export class ApiServerProxy {
  private readonly open = new Set<ChannelForwarder>();

  constructor(
    private readonly upstream: Upstream,
    private readonly logger: Logger,
    private readonly onBytes?: (direction: 'up' | 'down', n: number) => void,
  ) {}

  /** Serves one channel as an HTTP connection. */
  handle(channel: Duplex): void {
    const f = new ChannelForwarder(channel, this.upstream, this.logger, this.onBytes);
    this.open.add(f);
    channel.once('close', () => this.open.delete(f));
  }

  /** Channels served right now. */
  get connections(): number {
    return this.open.size;
  }

  close(): void {
    for (const f of this.open) f.destroy();
    this.open.clear();
  }
}

class ChannelForwarder {
  private readonly framer = new RequestFramer();
  /**
   * Follows the API server's responses, to learn whether it accepted an upgrade request (101:
   * the connection becomes a byte pipe) or not (it stays HTTP, and what the client sent after
   * the upgrade request is framed as requests). Until `following` ends: after a 101, or on a
   * response it cannot frame.
   */
  private readonly responses = new ResponseFramer();
  private following = true;
  /** Pieces framed from held bytes once an upgrade request was answered, to send first. */
  private pending: Piece[] = [];
  private up: Duplex | undefined;
  /** Bytes of a response have reached the client: an error can no longer be answered. */
  private answered = false;
  /** The answer to a refused request, sent once the API server has finished what came before. */
  private refusal: { status: number; message: string } | undefined;
  private queue: Buffer[] = [];
  private busy = false;
  private done = false;
  private waitingForDrain = false;
  /** The server URL's path, put before each request's (`''` for none). */
  private readonly prefix: string;

  constructor(
    private readonly channel: Duplex,
    private readonly upstream: Upstream,
    private readonly logger: Logger,
    private readonly onBytes?: (direction: 'up' | 'down', n: number) => void,
  ) {
    this.prefix = upstream.server.pathname.replace(/\/+$/, '');
    channel.on('data', (chunk: Buffer) => {
      // After a refusal what the client sends is read and dropped: a paused channel would never
      // see its end, so it would never close (and stay counted).
      if (this.refusal) return;
      this.onBytes?.('up', chunk.length);
      this.queue.push(chunk);
      if (!this.busy) void this.forward();
    });
    channel.on('end', () => {
      // The client is done sending: so are we, once what is queued is written.
      this.queue.push(EOF);
      if (!this.busy) void this.forward();
    });
    channel.on('error', () => this.destroy());
    channel.on('close', () => this.destroy());
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    this.channel.destroy();
    this.up?.destroy();
  }

  /**
   * Feeds queued client bytes through the framer to the API server, one chunk at a time; after an
   * upgrade request, nothing more until the API server has answered it.
   */
  private async forward(): Promise<void> {
    this.busy = true;
    try {
      while (!this.done && !this.refusal) {
        if (this.pending.length) {
          const pieces = this.pending;
          this.pending = [];
          if (!(await this.send(pieces))) return;
          continue;
        }
        if (this.framer.awaitingUpgrade || !this.queue.length) break;
        const chunk = this.queue.shift() as Buffer;
        if (chunk === EOF) {
          if (this.up) this.up.end();
          else this.channel.end();
          continue;
        }
        if (!(await this.send(this.framer.push(chunk)))) return;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Writes framed pieces to the API server; false once the connection is refused or over. */
  private async send(pieces: Piece[]): Promise<boolean> {
    for (const p of pieces) {
      let data: Buffer | string;
      if (p.kind === 'refused') {
        this.logger.debug({ status: p.error.status, err: p.error.message }, 'request refused');
        this.refuse(p.error.status, p.error.message);
        return false;
      }
      if (p.kind === 'head') {
        if (p.head.upgrade && !this.following) {
          this.refuse(
            502,
            'agent cannot tell where the API server responses on this connection end; upgrade refused',
          );
          return false;
        }
        let c: UpstreamCredentials;
        try {
          c = await this.upstream.credentials();
        } catch (e) {
          this.refuse(500, `agent cannot read its credentials: ${errorMessage(e)}`);
          return false;
        }
        if (this.done) return false;
        this.up ??= this.connect(c);
        const head =
          this.prefix && p.head.target !== '*' ? { ...p.head, target: this.prefix + p.head.target } : p.head;
        data = upstreamHead(head, this.upstream.server.host, c.authorization);
        if (this.following) this.responses.request(p.head.method, p.head.upgrade);
        // What the client sends next waits for the API server's answer (held by the framer).
        if (p.head.upgrade) this.channel.pause();
      } else data = p.data;
      if (this.up && !this.up.write(data) && !this.waitingForDrain) {
        // Queued chunks are still written meanwhile (the stream buffers them); no more are read.
        this.waitingForDrain = true;
        this.channel.pause();
        this.up.once('drain', () => {
          this.waitingForDrain = false;
          if (!this.refusal && !this.framer.awaitingUpgrade) this.channel.resume();
        });
      }
    }
    return true;
  }

  /** What the response framer found in the API server's bytes. */
  private onResponse(e: ResponseEvent): void {
    if (e.kind === 'unframed') {
      this.following = false;
      this.logger.debug({ err: e.reason }, 'API server responses no longer followed');
      // An upgrade request waiting for its answer cannot be decided: end the connection.
      if (this.framer.awaitingUpgrade) this.destroy();
      return;
    }
    if (e.switched) this.following = false;
    this.pending.push(...this.framer.upgradeAnswered(e.switched));
    if (!this.waitingForDrain && !this.refusal) this.channel.resume();
    if (!this.busy) void this.forward();
  }

  /**
   * Answers a request the agent will not forward with a Status and closes the connection, after
   * the API server has answered the requests before it (it closes once our side is ended).
   */
  private refuse(status: number, message: string): void {
    this.refusal = { status, message };
    this.queue = [];
    if (this.up) this.up.end();
    else this.sendRefusal();
  }

  /** Sends the refusal: at once, or once the API server has ended its side (its answers complete). */
  private sendRefusal(): void {
    const r = this.refusal;
    if (r && !this.done)
      this.channel.end(
        statusResponse(
          r.status,
          REASONS[r.status] ?? 'InternalError',
          r.message,
          STATUS_CODES[r.status] ?? 'Error',
        ),
      );
  }

  private connect(c: UpstreamCredentials): Duplex {
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
    up.on('data', (d: Buffer) => {
      this.answered = true;
      this.onBytes?.('down', d.length);
      const events = this.following ? this.responses.push(d) : [];
      if (!this.channel.write(d)) {
        up.pause();
        this.channel.once('drain', () => up.resume());
      }
      for (const e of events) this.onResponse(e);
    });
    up.on('end', () => {
      if (this.refusal) this.sendRefusal();
      else if (!this.done) this.channel.end();
    });
    up.on('error', (e) => {
      this.logger.debug({ err: e.message }, 'upstream connection failed');
      if (this.answered || this.done) {
        this.destroy();
        return;
      }
      this.refusal = {
        status: 502,
        message: `agent cannot reach the member's kube-apiserver at ${u.host}: ${e.message}`,
      };
      this.queue = [];
      this.sendRefusal();
    });
    up.on('close', () => {
      // After a clean end the channel flushes what it holds, then closes; otherwise tear down now.
      if (this.channel.writableEnded && !this.channel.writableFinished)
        this.channel.once('finish', () => this.destroy());
      else this.destroy();
    });
    return up;
  }
}

/** Marks the client's end of stream in the queue. */
const EOF = Buffer.alloc(0);

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

function isIpLiteral(h: string): boolean {
  return /^[\d.]+$/.test(h) || h.includes(':');
}

/** The Status reason of each status the agent answers with itself. */
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  431: 'RequestHeaderFieldsTooLarge',
  500: 'InternalError',
  501: 'NotImplemented',
  502: 'BadGateway',
  505: 'HTTPVersionNotSupported',
};
