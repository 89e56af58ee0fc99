import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { errorMessage, type Logger } from '@knet/runtime';

/** The admission path gateway-admision-controller serves (kept: MutatingWebhookConfigurations name it). */
export const WEBHOOK_PATH = '/wh/mutating/setgateway';
export const HEALTH_PATH = '/wh/health';

/**
 * Bounds for what one client of the HTTPS port may take, before and after TLS. The API server sends
 * small requests at once over a few kept-alive connections; anything slower or larger is not it.
 */
export interface WebhookLimits {
  /** TLS handshake (from the accept). */
  handshakeTimeoutMs: number;
  /** From the accept (or the previous response) to the end of the request head. */
  headersTimeoutMs: number;
  /** A whole request, body included. */
  requestTimeoutMs: number;
  /** Idle time of a kept-alive connection between requests. */
  keepAliveTimeoutMs: number;
  /** Request head size. */
  maxHeaderBytes: number;
  /** Request body size (an AdmissionReview holds one object: the API server caps objects at 3 MiB). */
  maxBodyBytes: number;
  /** Connections open at once; more are closed at accept. */
  maxConnections: number;
  /**
   * Request body bytes held at once, all requests together: a request that would go above it is
   * answered 503 and its connection closed. The API server's reviews are a few KiB each; this
   * bounds what many large bodies arriving together can take.
   */
  maxBufferedBytes: number;
}

export const DEFAULT_WEBHOOK_LIMITS: WebhookLimits = {
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 60_000,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 4 * 1024 * 1024,
  maxConnections: 256,
  maxBufferedBytes: 16 * 1024 * 1024,
};

export interface PostAnswer {
  status: number;
  contentType: string;
  body: string;
}

export interface WebhookServerOptions {
  host: string;
  port: number;
  /** The serving certificate and key at start (PEM); `setCertificate` replaces them. */
  cert: string;
  key: string;
  /** Answers a complete POST body to WEBHOOK_PATH. */
  admit: (body: Buffer) => PostAnswer;
  logger: Logger;
  limits?: Partial<WebhookLimits>;
  /** Every refused or cut-off client, by reason (metrics). */
  onRefused?: (reason: RefusalReason) => void;
}

export const REFUSAL_REASONS = [
  'too-many-connections',
  'tls',
  'timeout',
  'body-too-large',
  'busy',
  'bad-request',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * The webhook's HTTPS server: POST WEBHOOK_PATH (AdmissionReview in, AdmissionReview out), GET
 * HEALTH_PATH (`{"ok":true}`) and `/healthz`. Everything is bounded before a byte is parsed (see
 * WebhookLimits); the certificate can be replaced while serving (`setCertificate`), for renewals.
 */
export class WebhookServer {
  private readonly server: https.Server;
  private readonly limits: WebhookLimits;
  private readonly sockets = new Set<Socket>();
  /** Body bytes held by requests being read (see WebhookLimits.maxBufferedBytes). */
  private buffered = 0;

  constructor(private readonly opts: WebhookServerOptions) {
    this.limits = { ...DEFAULT_WEBHOOK_LIMITS, ...opts.limits };
    const l = this.limits;
    this.server = https.createServer(
      {
        cert: opts.cert,
        key: opts.key,
        minVersion: 'TLSv1.2',
        handshakeTimeout: l.handshakeTimeoutMs,
        headersTimeout: l.headersTimeoutMs,
        requestTimeout: Math.max(l.requestTimeoutMs, l.headersTimeoutMs),
        keepAliveTimeout: l.keepAliveTimeoutMs,
        maxHeaderSize: l.maxHeaderBytes,
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(l.headersTimeoutMs / 4))),
      },
      (req, res) => this.handle(req, res),
    );
    this.server.maxConnections = l.maxConnections;
    this.server.on('drop', () => this.refused('too-many-connections'));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      this.refused(/timed? ?out/i.test(err.message) ? 'timeout' : 'tls');
      opts.logger.debug({ err: err.message }, 'TLS handshake failed');
      socket.destroy();
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT';
      this.refused(timeout ? 'timeout' : 'bad-request');
      if (socket.writable && !timeout) {
        const status =
          err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
  }

  /** Replaces the serving certificate for new connections (renewal, rotated CA, changed files). */
  setCertificate(cert: string, key: string): void {
    this.server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  }

  /** Starts listening; resolves to the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) =>
        reject(
          new Error(`webhook server cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}`),
        );
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        const port = (this.server.address() as AddressInfo).port;
        this.opts.logger.info({ host: this.opts.host, port }, 'webhook server listening (HTTPS)');
        resolve(port);
      });
    });
  }

  /** Connections open now (tests and the hostile-client checks). */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, lets answers in flight finish (up to 2 s), then cuts what is left. */
  close(): Promise<void> {
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), 2000).unref();
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  private refused(reason: RefusalReason): void {
    this.opts.onRefused?.(reason);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === WEBHOOK_PATH) {
      if (req.method !== 'POST')
        return send(res, 405, 'text/plain; charset=utf-8', 'POST only\n', { Allow: 'POST' });
      return this.readBody(req, res);
    }
    if (path === HEALTH_PATH || path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(res, 405, 'text/plain; charset=utf-8', 'GET only\n', { Allow: 'GET, HEAD' });
      }
      const body = path === HEALTH_PATH ? '{"ok":true}\n' : 'ok\n';
      return send(res, 200, path === HEALTH_PATH ? 'application/json' : 'text/plain; charset=utf-8', body);
    }
    req.resume();
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }

  private readBody(req: IncomingMessage, res: ServerResponse): void {
    const max = this.limits.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > max) return this.cutOff(req, res, 413, 'body-too-large');
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const release = () => {
      this.buffered -= size;
      size = 0;
      chunks.length = 0;
    };
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      if (size + chunk.length > max || this.buffered + chunk.length > this.limits.maxBufferedBytes) {
        done = true;
        const tooLarge = size + chunk.length > max;
        release();
        this.cutOff(req, res, tooLarge ? 413 : 503, tooLarge ? 'body-too-large' : 'busy');
        return;
      }
      size += chunk.length;
      this.buffered += chunk.length;
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      const body = Buffer.concat(chunks, size);
      release();
      let answer: PostAnswer;
      try {
        answer = this.opts.admit(body);
      } catch (err) {
        this.opts.logger.error({ err: errorMessage(err) }, 'admission review failed');
        answer = { status: 500, contentType: 'text/plain; charset=utf-8', body: 'internal error\n' };
      }
      send(res, answer.status, answer.contentType, answer.body);
    });
    // Aborted by the client or cut by a deadline: what it held is freed.
    req.on('close', () => {
      if (done) return;
      done = true;
      release();
    });
  }

  /** Answers at once and closes: what the client still sends is not read. */
  private cutOff(req: IncomingMessage, res: ServerResponse, status: 413 | 503, reason: RefusalReason): void {
    this.refused(reason);
    res.shouldKeepAlive = false;
    const text =
      status === 413
        ? `request body larger than ${this.limits.maxBodyBytes} bytes\n`
        : 'too many request bodies in flight, try again\n';
    send(res, status, 'text/plain; charset=utf-8', text, { Connection: 'close' });
    res.once('finish', () => req.socket.destroy());
  }
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
