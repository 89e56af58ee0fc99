import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/** A request a `ScriptedHttpServer` received, its body read whole. */
export interface ScriptedExchange {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: string;
}

export type ScriptedHandler = (req: ScriptedExchange, res: ServerResponse) => void | Promise<void>;

/**
 * An HTTP(S) server on 127.0.0.1 whose answers a spec scripts, for testing an API client against
 * exact bytes, statuses and headers (the fakes in this library model a whole service; this models
 * nothing). Every request is read whole and handed to `handle`; a handler that throws or rejects
 * drops the connection. Counts requests in flight and the most at once. The API clients' specs
 * (libs/metal, libs/twingate) build their servers on it.
 */
export class ScriptedHttpServer {
  /** Requests being answered now, and the most there ever were at once. */
  inFlight = 0;
  maxInFlight = 0;
  private listeningPort = 0;

  private constructor(
    private readonly server: Server,
    private readonly scheme: 'http' | 'https',
  ) {}

  static async start(
    handle: ScriptedHandler,
    options: { tls?: { certPem: string; keyPem: string } } = {},
  ): Promise<ScriptedHttpServer> {
    const { tls } = options;
    const server = tls ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem }) : createHttpServer();
    const s = new ScriptedHttpServer(server, tls ? 'https' : 'http');
    server.on('request', (req, res) => {
      s.inFlight++;
      s.maxInFlight = Math.max(s.maxInFlight, s.inFlight);
      let done = false;
      const finished = () => {
        if (!done) s.inFlight--;
        done = true;
      };
      res.on('finish', finished);
      res.on('close', finished);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const exchange: ScriptedExchange = {
          method: req.method ?? '',
          url: new URL(req.url ?? '/', 'http://127.0.0.1'),
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        Promise.resolve()
          .then(() => handle(exchange, res))
          .catch((e: unknown) => res.destroy(e instanceof Error ? e : undefined));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    s.listeningPort = (server.address() as AddressInfo).port;
    return s;
  }

  /** The port it listens on (kept after `close`, to test a refused connection). */
  get port(): number {
    return this.listeningPort;
  }

  /** `http://127.0.0.1:<port>` (or https). */
  get origin(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  /** Drops every open connection (keep-alive ones too): a clean start for the next test. */
  dropConnections(): void {
    this.server.closeAllConnections();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A JSON answer with its length; `headers` may replace the content type. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Answers the requests in turn with `replies`; later requests get the last one. */
export function inTurn<R>(
  ...replies: ((req: R, res: ServerResponse) => void | Promise<void>)[]
): (req: R, res: ServerResponse) => void | Promise<void> {
  let i = 0;
  return (req, res) => {
    const reply = replies[Math.min(i++, replies.length - 1)];
    return reply?.(req, res);
  };
}
